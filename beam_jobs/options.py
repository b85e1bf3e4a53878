"""Pipeline options, and the input limits options, shared by the Beam jobs."""
from __future__ import annotations

import argparse
import logging
import sys

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, SetupOptions, StandardOptions

from audio.limits import Limits
from beam_jobs import storage

# Beam's DirectRunner first tries to download the Prism runner; FnApiRunner is the same local
# portable runner without that step (this workplace, like many CI machines, has no route to it).
LOCAL_RUNNER = "FnApiRunner"

# Exit statuses of `atsep separate` and `atsep preprocess` (argparse's own usage errors exit 2 too).
EXIT_OK = 0  # every input was separated, skipped or preprocessed
EXIT_INPUTS_FAILED = 1  # the run completed, but some inputs are in the dead letter
EXIT_USAGE = 2  # bad options or configuration (a missing or foreign model folder): nothing ran
EXIT_RUN_FAILED = 3  # the run stopped before it completed (storage gone, a runner failure): rerun to resume


class ConfigurationError(ValueError):
    """A job's options name something unusable (e.g. no model at --model_dir); the message says what."""


def run_failed(job: str, error: Exception) -> int:
    """Say on stderr that a run stopped before it completed, and why (the error's last line: a runner's
    error text holds whole tracebacks), and that a rerun resumes; the full error goes to the log at DEBUG."""
    logging.getLogger(job).debug("the run failed", exc_info=error)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    why = f"{type(error).__name__}: {lines[-1] if lines else ''}"[:400]
    print(f"{job}: the run stopped before it completed: {why}\n"
          f"{job}: what finished is kept; the same command resumes from there", file=sys.stderr)
    return EXIT_RUN_FAILED


def check_output(output: str) -> None:
    """Refuse an output folder this process cannot write (read-only, forbidden), before any work."""
    try:
        storage.check_writable(output)
    except Exception as error:  # noqa: BLE001 - whatever the file system says, the run cannot go on
        raise ConfigurationError(f"cannot write to the output folder {output}: {error}") from None


def pipeline_options(pipeline_args: list[str], local_mode: str = "multi_threading") -> PipelineOptions:
    """Beam options from the command line; with no runner named, run locally in `local_mode` (unless the
    command line names a mode or worker count).

    multi_threading on all cores suits the separate job: decoding waits on ffmpeg and inference releases the
    GIL, and its elements are paths and small records (a run still fails if one goes missing: finish_run).
    Jobs whose elements are megabytes of audio (preprocess) pass in_memory. In the modes with a gRPC data
    plane (multi_threading, multi_processing, the portable runner), Beam 2.77's runner flushes each output
    stream from a timer thread that does not lock out the writer (TimeBasedBufferingClosableOutputStream in
    apache_beam/runners/worker/data_plane.py), so a chunk written between its copy and its clear is dropped
    without an error: two preprocess runs of musdb18-7 lost 2 and 13 of 188 records of 5 MB. in_memory has
    no data plane, lost none and was faster on two cores."""
    options = PipelineOptions(pipeline_args)
    options.view_as(SetupOptions).save_main_session = False  # workers import the DoFns by module
    standard = options.view_as(StandardOptions)
    if standard.runner in (None, "DirectRunner"):
        standard.runner = LOCAL_RUNNER
        if not any(arg.startswith(("--direct_running_mode", "--direct_num_workers")) for arg in pipeline_args):
            options.view_as(DirectOptions).direct_running_mode = local_mode
            options.view_as(DirectOptions).direct_num_workers = 0 if local_mode == "multi_threading" else 1
    return options


def add_limit_args(parser: argparse.ArgumentParser, defaults: Limits) -> None:
    """--max_seconds, --max_channels, --max_sample_rate: inputs beyond them become dead letters, refused
    from their metadata before decoding (so a header claiming hours costs milliseconds, not memory)."""
    parser.add_argument("--max_seconds", type=float, default=defaults.max_seconds,
                        help="refuse songs longer than this (seconds; declared or decoded)")
    parser.add_argument("--max_channels", type=int, default=defaults.max_channels, help="refuse wider songs")
    parser.add_argument("--max_sample_rate", type=int, default=defaults.max_sample_rate,
                        help="refuse songs sampled faster (Hz)")


def limits_of(args: argparse.Namespace) -> Limits:
    return Limits(max_seconds=args.max_seconds, max_channels=args.max_channels,
                  max_sample_rate=args.max_sample_rate)
