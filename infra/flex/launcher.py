"""Flex Template entry: turn Dataflow's `--name=value` template parameters into the job's own command line.

Dataflow's launcher runs FLEX_TEMPLATE_PYTHON_PY_FILE (preprocess_main.py or separate_main.py) with every
template parameter as `--name=value`. Most map one to one; two kinds need translating:
  positional arguments (separate's INPUTs)   --inputs=a,b      ->  a b
  on/off flags (store_true, e.g. --force)    --force=true      ->  --force      (false: left out)
Then the job's `run()` builds the pipeline; inside a template launch, DataflowRunner writes the job
file instead of waiting for the job, so `run()` returns as soon as the graph is handed over.

Worker sizing (docs/cloud.md says why): unless the launch names them, each job gets its machine type, its
SDK processes per VM and its harness threads from SIZING, with the threads matched to the machine's vCPUs;
preprocess, which holds whole songs in memory, is refused when its --max_seconds cannot fit the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import re
import sys

JOBS = {"preprocess": "beam_jobs.preprocess", "separate": "beam_jobs.separate"}
WORKER_IMAGE_ENV = "ATSEP_WORKER_IMAGE"  # set in infra/Dockerfile: workers run the launcher's own image
ONE_PROCESS = "no_use_multiple_sdk_containers"  # Dataflow experiment: one SDK process per VM, not one per vCPU
GB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Sizing:
    """How a job's Dataflow workers are shaped.

    one_process: one SDK process per VM, whose harness threads (songs_per_core per vCPU) share one model
    and TensorFlow's pools over all the cores; else Dataflow's default, one SDK process per vCPU, each
    with songs_per_core threads. Memory: process_gb per SDK process (TensorFlow and Beam imported) plus,
    per song in flight, song_gb, or song_gb_per_second times the job's --max_seconds for a job that
    holds whole songs (measured: docs/cloud.md)."""

    machine_type: str
    one_process: bool
    songs_per_core: int
    process_gb: float
    song_gb: float = 0.0
    song_gb_per_second: float = 0.0


SIZING = {
    # streamed songs (~0.13 GB each), one model copy; two songs per vCPU cover the waits on storage and ffmpeg
    "separate": Sizing("n2-highcpu-8", one_process=True, songs_per_core=2, process_gb=1.6, song_gb=0.13),
    # whole songs: ~3 MB per second of 44.1 kHz stereo (five stems decoded, resampled and cut), 5.3 GB at
    # the 30-minute cap; 8 GB per vCPU holds one per vCPU with room for the process
    "preprocess": Sizing("n2-highmem-4", one_process=False, songs_per_core=1, process_gb=1.2,
                         song_gb_per_second=0.003),
}
SYSTEM_GB = 1.0  # the VM's own share: OS, Dataflow's worker and its shuffle buffers
GB_PER_CPU = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
N1_GB_PER_CPU = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__("parser captured")
        self.parser = parser


def job_parser(job: str) -> argparse.ArgumentParser:
    """The job's real argparse parser: its `build_parser()` if it has one, else the parser that its
    `parse_args` builds, caught on its way to parsing (so no option list is ever copied by hand)."""
    module = importlib.import_module(JOBS[job])
    if hasattr(module, "build_parser"):
        return module.build_parser()
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        module.parse_args([])
    except _Captured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise RuntimeError(f"{JOBS[job]}.parse_args built no argparse parser")


def job_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The job's own options, without --help."""
    return [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]


def parameter_name(action: argparse.Action) -> str:
    """The template parameter's name: the long option without dashes, or a positional's dest."""
    longs = [option for option in action.option_strings if option.startswith("--")]
    return longs[0][2:] if longs else action.dest


def translate(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Template parameters (`--name=value`) -> the job's command line; other options pass unchanged."""
    kinds = {parameter_name(action): action for action in job_actions(parser)}
    positional, rest = [], []
    for arg in argv:
        name, equals, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        action = kinds.get(name) if equals else None
        if action is not None and not action.option_strings:
            positional += [item.strip() for item in value.split(",") if item.strip()]
        elif action is not None and isinstance(action, argparse._StoreTrueAction):
            if value.strip().lower() not in ("true", "false"):
                raise SystemExit(f"--{name} takes true or false, not {value!r}")
            rest += [f"--{name}"] if value.strip().lower() == "true" else []
        else:
            rest.append(arg)
    return positional + rest


def worker_defaults(argv: list[str]) -> list[str]:
    """Workers run this same image and its installed SDK, unless the launch says otherwise."""
    extra = []
    image = os.environ.get(WORKER_IMAGE_ENV)
    if image and not any(arg.startswith("--sdk_container_image") for arg in argv):
        extra.append(f"--sdk_container_image={image}")
    if not any(arg.startswith("--sdk_location") for arg in argv):
        extra.append("--sdk_location=container")
    return argv + extra


def machine_shape(machine_type: str) -> tuple[int, float] | None:
    """(vCPUs, GB of memory) of a Compute Engine machine type; None for a kind this table does not know
    (shared-core e2-medium and the like)."""
    custom = re.fullmatch(r"(?:[a-z0-9]+-)?custom-(\d+)-(\d+)(?:-ext)?", machine_type)
    if custom:
        return int(custom[1]), int(custom[2]) / 1024
    named = re.fullmatch(r"([a-z0-9]+)-(standard|highmem|highcpu)-(\d+)(?:-lssd)?", machine_type)
    if not named:
        return None
    per_cpu = (N1_GB_PER_CPU if named[1] == "n1" else GB_PER_CPU)[named[2]]
    return int(named[3]), int(named[3]) * per_cpu


def _values(argv: list[str], *names: str) -> list[str]:
    """Every value given to the options `names` in argv, as `--name=value` or `--name value`, in order."""
    values = []
    for index, arg in enumerate(argv):
        for name in names:
            if arg.startswith(f"--{name}="):
                values.append(arg.split("=", 1)[1])
            elif arg == f"--{name}" and index + 1 < len(argv):
                values.append(argv[index + 1])
    return values


def worker_sizing(job: str, argv: list[str], max_seconds: float) -> list[str]:
    """Options that give `job` its machine type, SDK processes and harness threads where argv leaves them
    out; raises SystemExit when the songs in flight would not fit the machine's memory."""
    sizing, extra, log = SIZING[job], [], logging.getLogger(__name__)
    machines = _values(argv, "machine_type", "worker_machine_type")
    machine = machines[-1] if machines else sizing.machine_type
    if not machines:
        extra.append(f"--machine_type={machine}")
    experiments = {item for value in _values(argv, "experiments", "experiment") for item in value.split(",")}
    one_process = ONE_PROCESS in experiments or (
        sizing.one_process and "use_multiple_sdk_containers" not in experiments)
    if one_process and ONE_PROCESS not in experiments:
        extra.append(f"--experiments={ONE_PROCESS}")
    shape = machine_shape(machine)
    if shape is None:  # nothing to size from: Dataflow's own thread count, no memory check
        log.warning("%s: unknown machine type %s, harness threads and memory left to Dataflow", job, machine)
        return extra
    cores, memory = shape
    given = _values(argv, "number_of_worker_harness_threads")
    threads = int(given[-1]) if given else sizing.songs_per_core * (cores if one_process else 1)
    if not given:
        extra.append(f"--number_of_worker_harness_threads={threads}")
    processes = 1 if one_process else cores
    songs = threads * processes
    need = (SYSTEM_GB + processes * sizing.process_gb
            + songs * (sizing.song_gb + sizing.song_gb_per_second * max_seconds))
    if need > memory:
        raise SystemExit(f"{job} on {machine} ({memory:g} GB): {songs} songs in flight at --max_seconds "
                         f"{max_seconds:g} need about {need:.0f} GB; choose a machine type with more memory "
                         "per vCPU (e.g. custom-4-65536-ext), fewer --number_of_worker_harness_threads or a "
                         "lower --max_seconds")
    log.info("%s workers: %s (%d vCPU, %g GB), %d SDK process(es) x %d thread(s), at most about %.0f GB",
             job, machine, cores, memory, processes, threads, need)
    return extra


def launch(job: str, argv: list[str] | None = None):
    """Run `job` from template parameters; returns its PipelineResult."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = job_parser(job)
    command = worker_defaults(translate(argv, parser))
    known, _ = parser.parse_known_args(command)
    command += worker_sizing(job, command, known.max_seconds)
    logging.getLogger(__name__).info("%s %s", JOBS[job], " ".join(command))
    return importlib.import_module(JOBS[job]).run(command)
