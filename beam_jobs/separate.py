"""Catalogue separation: songs (local or gs://, any format ffmpeg reads) -> stems, plots and a manifest.

    python -m beam_jobs.separate 'songs/*.mp3' gs://bucket/more/*.wav -o OUT [--force] [beam options]

Per track (names from --filename, default `{track}/{stem}.{ext}`): one file per stem (the model's heads
plus `residual`, at the input's rate and channel count) as wav/flac/mp3/ogg, `plot.png`, and
`track.json` written last. Songs stream through in blocks, so memory is bounded whatever their length.
Every file is written under a temporary name and renamed into place. A rerun skips tracks whose
track.json names the same model version and outputs, unless --force. Each track's page is written beside
its record as it is separated. The run's manifest (one line per track) and dead letter (one line per
input that failed, with the stage and reason) are Beam's sharded sinks, OUT/manifest-*.jsonl and
OUT/dead_letter-*.jsonl; OUT/summary.json and OUT/index.html come from a combiner of bounded accumulators
(beam_jobs/run_summary.py). No step holds the whole catalogue; failures never stop the run.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from audio.limits import Limits
from beam_jobs import jsonl_shards, outputs, progress, run_summary, separate_inputs, separate_report, storage
from beam_jobs.options import (EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, ConfigurationError, add_limit_args,
                               check_output, limits_of, pipeline_options, run_failed)
from beam_jobs.outputs import OutputSettings
from beam_jobs.run_summary import DEAD_LETTER
from beam_jobs.separate_track import Stages, separate_or_skip
from model.model_dir import BUNDLED_MODEL_DIR

_COUNTERS = "separate"


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Split the job's own arguments from Beam's pipeline options (runner, project, ...)."""
    parser = argparse.ArgumentParser(prog="separate", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="file paths or globs, local or gs://")
    parser.add_argument("--input_list", help="a file with one input path or glob per line")
    parser.add_argument("--output", "-o", required=True, help="output folder, local or gs://")
    parser.add_argument("--model_dir", default=BUNDLED_MODEL_DIR,
                        help="exported model folder (default: the model bundled with the package)")
    parser.add_argument("--force", action="store_true", help="redo tracks already done with this model")
    parser.add_argument("--format", default="wav", choices=("wav", "flac", "mp3", "ogg"), help="stem format")
    parser.add_argument("--subtype", default=outputs.AUTO, choices=(outputs.AUTO, "PCM_16", "PCM_24", "FLOAT"),
                        help="sample format of wav (all) and flac (auto, PCM_16, PCM_24); auto: FLOAT wav (PCM_24 "
                             "flac) for a float input, which may be louder than full scale, else PCM_16")
    parser.add_argument("--bitrate", default="192k", help="mp3 and ogg bitrate, e.g. 128k")
    parser.add_argument("--filename", default=outputs.DEFAULT_TEMPLATE,
                        help="output names under OUT, with {track}, {stem} and {ext} (default: %(default)s)")
    add_limit_args(parser, Limits())
    known, pipeline_args = parser.parse_known_args(argv)
    if not known.inputs and not known.input_list:
        parser.error("give at least one INPUT or --input_list")
    try:
        outputs.check_settings(settings_of(known))
    except ValueError as error:
        parser.error(str(error))
    return known, pipeline_args


def settings_of(known: argparse.Namespace) -> OutputSettings:
    return OutputSettings(storage.absolute(known.output), known.filename, known.format, known.subtype,
                          known.bitrate)


def failure(path: str, stage: str, reason: str, track: str | None = None,
            run_id: str | None = None) -> beam.pvalue.TaggedOutput:
    Metrics.counter(_COUNTERS, "tracks_failed").inc()
    progress.advance(run_id)
    record = {"input": path, "track": track if track is not None else separate_inputs.track_name(path),
              "stage": stage, "reason": reason}
    return beam.pvalue.TaggedOutput(DEAD_LETTER, record)


class ExpandPattern(beam.DoFn):
    """One path or glob -> (track, path) per matching file outside the output folder; a pattern matching
    nothing is a failure."""

    def __init__(self, output: str):
        self.output = output

    def process(self, pattern: str) -> Iterator[Any]:
        files, problem = separate_inputs.expand(pattern, self.output)
        if problem:
            yield failure(pattern, "expand", problem)
        for path in files:
            yield separate_inputs.track_name(path), path


class PickOnePerTrack(beam.DoFn):
    """(track, paths) -> (track, first path), refusing the others and names that leave the prefix; claims
    each output name (tagged `claims`), to find names two tracks would share."""

    def __init__(self, settings: OutputSettings, stems: tuple[str, ...], run_id: str | None):
        self.settings, self.stems, self.run_id = settings, stems, run_id

    def process(self, element: tuple[str, Any]) -> Iterator[Any]:
        track, paths = element
        first, files, refused = separate_inputs.pick_one(track, paths, self.stems, self.settings)
        for path, reason in refused:
            yield failure(path, "expand", reason, track, self.run_id)
        if files is not None:
            yield track, first
            for file in files.values():
                yield beam.pvalue.TaggedOutput("claims", (file.lower(), (track, first)))


class DropCollisions(beam.DoFn):
    """(track, {tracks: [path], collisions: [reason]}) -> (track, path), or a dead letter when the track's
    output names clash with an earlier track's (a join, so no worker holds every collision)."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id

    def process(self, element: tuple[str, dict]) -> Iterator[Any]:
        track, joined = element
        for path in joined["tracks"]:
            if joined["collisions"]:
                yield failure(path, "expand", min(joined["collisions"]), track, self.run_id)
            else:
                yield track, path


class SeparateTrack(beam.DoFn):
    """(track, path) -> manifest record. One model per worker process, shared by its threads (whose
    concurrent songs share network calls); every error is caught and dead-lettered."""

    def __init__(self, settings: OutputSettings, model_dir: str, force: bool = False,
                 run_id: str | None = None, limits: Limits = Limits()):
        self.settings, self.model_dir, self.force, self.run_id = settings, model_dir, force, run_id
        self.limits = limits
        self._shared = Shared()

    def setup(self) -> None:
        def load() -> Any:
            from model.separator import Separator  # TensorFlow loads here, on the worker, not at import

            return Separator.load(storage.stage_tree(self.model_dir))

        self.separator = self._shared.acquire(load, tag=self.model_dir)

    def process(self, element: tuple[str, str]) -> Iterator[Any]:
        track, path = element
        stages = Stages()
        try:
            record = separate_or_skip(self.separator, track, path, self.settings, stages, self.force, self.limits)
        except Exception as error:  # noqa: BLE001 - one bad song must never stop the catalogue
            yield failure(path, stages.current, f"{type(error).__name__}: {error}", track, self.run_id)
            return
        if record["status"] == "skipped":
            Metrics.counter(_COUNTERS, "tracks_skipped").inc()
            progress.advance(self.run_id)
        else:
            Metrics.counter(_COUNTERS, "tracks_ok").inc()
            # counters hold integers: whole seconds here, exact durations are in the manifest
            Metrics.counter(_COUNTERS, "audio_seconds").inc(round(record["duration_s"]))
            progress.advance(self.run_id, record["duration_s"])
        yield record


def build(pipeline: beam.Pipeline, known: argparse.Namespace, patterns: list[str], started: float | None = None,
          run_id: str | None = None) -> None:
    """Add the labelled steps: expand -> claim names -> reshuffle -> separate -> manifest, dead letters."""
    settings = settings_of(known)
    started = time.time() if started is None else started
    stems = separate_inputs.stem_names(storage.absolute(known.model_dir))
    expanded = (pipeline
                | "ListPatterns" >> beam.Create(patterns)
                | "ExpandInputs" >> beam.ParDo(ExpandPattern(settings.output))
                .with_outputs(DEAD_LETTER, main="files"))
    files = expanded.files | "DistinctFiles" >> beam.Distinct()  # a file two patterns match is one input
    inputs = ((files, expanded[DEAD_LETTER])
              | "AllInputs" >> beam.Flatten()
              | "CountInputs" >> beam.combiners.Count.Globally())
    picked = (files
              | "GroupByTrack" >> beam.GroupByKey()
              | "OnePathPerTrack" >> beam.ParDo(PickOnePerTrack(settings, stems, run_id))
              .with_outputs(DEAD_LETTER, "claims", main="tracks"))
    collisions = (picked.claims
                  | "GroupByOutputName" >> beam.GroupByKey()
                  | "LaterClaimants" >> beam.FlatMap(separate_inputs.losers))
    checked = ({"tracks": picked.tracks, "collisions": collisions}
               | "JoinCollisions" >> beam.CoGroupByKey()
               | "DropCollisions" >> beam.ParDo(DropCollisions(run_id)).with_outputs(DEAD_LETTER, main="tracks"))
    separated = (checked.tracks
                 | "Reshuffle" >> beam.Reshuffle()
                 | "Separate" >> beam.ParDo(SeparateTrack(settings, storage.absolute(known.model_dir),
                                                          known.force, run_id, limits_of(known)))
                 .with_outputs(DEAD_LETTER, main="manifest"))
    failures = ((expanded[DEAD_LETTER], picked[DEAD_LETTER], checked[DEAD_LETTER], separated[DEAD_LETTER])
                | "AllFailures" >> beam.Flatten())
    manifest_shards = separated.manifest | "WriteManifest" >> jsonl_shards.WriteRecords(
        settings.output, run_summary.MANIFEST)
    dead_letter_shards = failures | "WriteDeadLetter" >> jsonl_shards.WriteRecords(
        settings.output, run_summary.DEAD_LETTER)
    _ = ((separated.manifest, failures)
         | "AllRecords" >> beam.Flatten()
         | "Summarise" >> beam.CombineGlobally(run_summary.RunSummary())
         | "FinishRun" >> beam.Map(run_summary.finish_run, settings.output, started,
                                   beam.pvalue.AsList(manifest_shards), beam.pvalue.AsList(dead_letter_shards),
                                   beam.pvalue.AsSingleton(inputs)))


def run(argv: list[str] | None = None,
        test_pipeline: beam.Pipeline | None = None) -> beam.runners.runner.PipelineResult:
    """Build and run the job; returns the finished PipelineResult (its metrics hold the counters)."""
    started = time.time()
    known, pipeline_args = parse_args(argv)
    separate_inputs.check_model(storage.absolute(known.model_dir))
    check_output(storage.absolute(known.output))
    options = pipeline_options(pipeline_args)
    patterns = separate_inputs.input_patterns(known.inputs, known.input_list)  # read once: the count and the job agree
    total = None  # no bar: an injected pipeline, or a run that is not local and in-process on a terminal
    if test_pipeline is None and progress.shown_for(options):
        total = separate_inputs.count_files(patterns, storage.absolute(known.output))
    with progress.bar(total is not None, total, "separate") as run_id:
        pipeline = test_pipeline or beam.Pipeline(options=options)
        build(pipeline, known, patterns, started, run_id)
        result = pipeline.run()
        result.wait_until_finish()
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # the runner's chatter hides the report
    known, _ = parse_args(argv)
    try:
        run(argv)
    except ConfigurationError as error:
        print(f"separate: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - a failed run is reported in one line, not a traceback
        return run_failed("separate", error)
    output = storage.absolute(known.output)
    summary = run_summary.read_summary(output)
    print(separate_report.report(output, summary))
    return EXIT_INPUTS_FAILED if summary["failed"] else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
