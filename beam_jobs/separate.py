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
import itertools
import logging
import os
import sys
import time
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from beam_jobs import jsonl_shards, outputs, progress, run_summary, storage
from beam_jobs.options import (EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, ConfigurationError, add_limit_args,
                               limits_of, pipeline_options)
from beam_jobs.outputs import OutputSettings
from audio.limits import Limits
from model.model_dir import BUNDLED_MODEL_DIR
from reports.separation import INDEX_FILE, write_track_page

DEAD_LETTER = "dead_letter"
_COUNTERS = "separate"
log = logging.getLogger(__name__)


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


def track_name(path: str) -> str:
    """File name without its extension, and without `.stem` for MUSDB-style `.stem.mp4` files, made safe
    to use as a folder name (outputs.safe_name: unicode, spaces and quotes stay)."""
    name = os.path.splitext(storage.basename(path))[0]
    return outputs.safe_name(name[: -len(".stem")] if name.endswith(".stem") else name)


def input_patterns(known: argparse.Namespace) -> list[str]:
    patterns = list(known.inputs)
    if known.input_list:
        lines = storage.read_text(known.input_list).splitlines()
        patterns += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [storage.absolute(pattern) for pattern in patterns]


def failure(path: str, stage: str, reason: str, track: str | None = None,
            run_id: str | None = None) -> beam.pvalue.TaggedOutput:
    Metrics.counter(_COUNTERS, "tracks_failed").inc()
    progress.advance(run_id)
    record = {"input": path, "track": track if track is not None else track_name(path),
              "stage": stage, "reason": reason}
    return beam.pvalue.TaggedOutput(DEAD_LETTER, record)


def matching_files(pattern: str) -> list[str]:
    """Files a path, folder or glob names (a folder: the files directly in it)."""
    if storage.is_local(pattern) and os.path.isdir(pattern):
        # listed directly: Beam's `*` skips names holding a backslash, and no file may go unnoticed
        return sorted(entry.path for entry in os.scandir(pattern) if entry.is_file())
    matched = FileSystems.match([pattern])[0].metadata_list
    return [m.path for m in matched if not (storage.is_local(m.path) and os.path.isdir(m.path))]


class ExpandPattern(beam.DoFn):
    """One path or glob -> (track, path) per matching file; a pattern matching nothing is a failure."""

    def process(self, pattern: str) -> Iterator[Any]:
        try:
            files = matching_files(pattern)
        except Exception as error:  # noqa: BLE001 - a bad pattern must not stop the others
            yield failure(pattern, "expand", f"cannot list: {error}")
            return
        if not files:
            yield failure(pattern, "expand", "no file matches this path or pattern")
        for path in files:
            yield track_name(path), path


class PickOnePerTrack(beam.DoFn):
    """Of several files with one track name, keep the first path; refuse names that leave the prefix."""

    def __init__(self, settings: OutputSettings, stems: tuple[str, ...], run_id: str | None):
        self.settings, self.stems, self.run_id = settings, stems, run_id

    def process(self, element: tuple[str, Any]) -> Iterator[Any]:
        track, paths = element
        first, *others = sorted(set(paths))
        for path in others:
            yield failure(path, "expand", f"track name {track!r} is already taken by {first}", track, self.run_id)
        try:
            files = outputs.track_files(track, self.stems, self.settings)
        except outputs.UnsafePath as error:
            yield failure(first, "expand", str(error), track, self.run_id)
            return
        yield track, first
        for file in files.values():  # claims, to find names two tracks would share
            yield beam.pvalue.TaggedOutput("claims", (file.lower(), (track, first)))


def losers(element: tuple[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, claimants) -> (track, reason) for every claimant but the first (sorted by track)."""
    name, claimants = element
    (winner, _), *others = sorted(set(claimants))
    for track, _ in others:
        yield track, f"output {name!r} (names compared ignoring case) is already taken by track {winner!r}"


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
        from beam_jobs.separate_track import Stages, previous_record, separate_track

        track, path = element
        stages = Stages()
        try:
            with stages.stage("check"):
                previous = None if self.force else previous_record(self.separator, track, self.settings)
            if previous is not None:
                Metrics.counter(_COUNTERS, "tracks_skipped").inc()
                progress.advance(self.run_id)
                skipped = {**previous, "status": "skipped", "input": path}
                write_track_page(skipped, self.settings.output, storage.write_text_atomic)
                yield skipped
                return
            record = separate_track(self.separator, track, path, self.settings, stages, self.limits)
        except Exception as error:  # noqa: BLE001 - one bad song must never stop the catalogue
            yield failure(path, stages.current, f"{type(error).__name__}: {error}", track, self.run_id)
            return
        write_track_page(record, self.settings.output, storage.write_text_atomic)
        Metrics.counter(_COUNTERS, "tracks_ok").inc()
        # counters hold integers: whole seconds here, exact durations are in the manifest
        Metrics.counter(_COUNTERS, "audio_seconds").inc(round(record["duration_s"]))
        progress.advance(self.run_id, record["duration_s"])
        yield record


def build(pipeline: beam.Pipeline, known: argparse.Namespace, started: float | None = None,
          run_id: str | None = None) -> None:
    """Add the labelled steps: expand -> claim names -> reshuffle -> separate -> manifest, dead letters."""
    settings = settings_of(known)
    started = time.time() if started is None else started
    stems = stem_names(storage.absolute(known.model_dir))
    expanded = (pipeline
                | "ListPatterns" >> beam.Create(input_patterns(known))
                | "ExpandInputs" >> beam.ParDo(ExpandPattern()).with_outputs(DEAD_LETTER, main="files"))
    picked = (expanded.files
              | "GroupByTrack" >> beam.GroupByKey()
              | "OnePathPerTrack" >> beam.ParDo(PickOnePerTrack(settings, stems, run_id))
              .with_outputs(DEAD_LETTER, "claims", main="tracks"))
    collisions = (picked.claims
                  | "GroupByOutputName" >> beam.GroupByKey()
                  | "LaterClaimants" >> beam.FlatMap(losers))
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
                                   beam.pvalue.AsList(manifest_shards), beam.pvalue.AsList(dead_letter_shards)))


def stem_names(model_dir: str) -> tuple[str, ...]:
    """The stems an exported model writes, from its config.json (no TensorFlow needed)."""
    from model.config import CONFIG_FILE, RESIDUAL, Config

    config = Config.from_json(storage.read_text(storage.join(model_dir, CONFIG_FILE)))
    return (*config.network.heads, RESIDUAL)


def _progress_total(known: argparse.Namespace, options: Any) -> int | None:
    """How many files the bar counts to, for local in-process runs on a terminal; None: no bar."""
    if not progress.shown_for(options):
        return None
    total = 0
    for pattern in input_patterns(known):
        try:
            total += len(matching_files(pattern))
        except Exception:  # noqa: BLE001 - the pipeline reports bad patterns itself
            pass
    return total


def run(argv: list[str] | None = None,
        test_pipeline: beam.Pipeline | None = None) -> beam.runners.runner.PipelineResult:
    """Build and run the job; returns the finished PipelineResult (its metrics hold the counters)."""
    started = time.time()
    known, pipeline_args = parse_args(argv)
    model_config = storage.join(storage.absolute(known.model_dir), "config.json")
    if not storage.exists(model_config):
        raise ConfigurationError(f"no exported model at {known.model_dir} (missing {model_config})")
    if storage.is_local(known.model_dir):  # a remote one is checked where it is staged, on the workers
        from model.model_dir import ModelDirError, check_model_dir

        try:
            check_model_dir(known.model_dir)
        except ModelDirError as error:
            raise ConfigurationError(str(error)) from None
    options = pipeline_options(pipeline_args)
    total = None if test_pipeline is not None else _progress_total(known, options)
    with progress.bar(total is not None, total, "separate") as run_id:
        pipeline = test_pipeline or beam.Pipeline(options=options)
        build(pipeline, known, started, run_id)
        result = pipeline.run()
        result.wait_until_finish()
    return result


def report(output: str, limit: int = 20) -> str:
    """What a person wants to read at the end: where the first tracks' outputs are, the first failures, the
    summary (the manifest and dead-letter shards are read only as far as `limit` lines)."""
    output = storage.absolute(output)
    summary = run_summary.read_summary(output)
    lines = []
    for record in itertools.islice(run_summary.read_records(output, run_summary.MANIFEST), limit):
        audio = [record["outputs"][stem] for stem in record["stems"]]
        lines.append(f"{record['track']} ({record['status']}): stems {', '.join(audio)}")
        lines.append(f"    plot {record['outputs'].get(outputs.PLOT, '-')}")
    for record in itertools.islice(run_summary.read_records(output, run_summary.DEAD_LETTER), limit):
        lines.append(f"failed: {record['input']}: {record['reason']}")
    hidden = (max(0, summary["separated"] + summary["skipped"] - limit) + max(0, summary["failed"] - limit))
    if hidden:
        lines.append(f"... and {hidden} more: see {storage.join(output, run_summary.MANIFEST)}-*.jsonl and "
                     f"{run_summary.DEAD_LETTER}-*.jsonl")
    lines.append(f"report: {storage.join(output, INDEX_FILE)}")
    lines.append(run_summary.summary_line(summary))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # the runner's chatter hides the report
    known, _ = parse_args(argv)
    try:
        run(argv)
    except ConfigurationError as error:
        print(f"separate: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(report(known.output))
    failed = run_summary.read_summary(storage.absolute(known.output))["failed"]
    return EXIT_INPUTS_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
