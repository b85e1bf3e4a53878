"""Catalogue separation: songs (local or gs://, any format ffmpeg reads) -> stems, plots and a manifest.

    python -m beam_jobs.separate 'songs/*.mp3' gs://bucket/more/*.wav -o OUT [--force] [beam options]

Per track, under OUT/<track>/: one wav per stem (the model's heads plus `residual`, at the input's
rate and channel count), `plot.png`, and `track.json` written last. Every file is written under a
temporary name and renamed into place. A rerun skips tracks whose track.json names the same model
version, unless --force. At the end OUT/manifest.jsonl has one line per track (sorted by track) and
OUT/dead_letter.jsonl one line per input that failed, with the reason; failures never stop the run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
from typing import Any, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_jobs import storage
from beam_jobs.options import pipeline_options
from model.codec import decode, encode

DEAD_LETTER = "dead_letter"
MANIFEST_FILE = "manifest.jsonl"
DEAD_LETTER_FILE = "dead_letter.jsonl"
TRACK_FILE = "track.json"
PLOT_FILE = "plot.png"
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
_COUNTERS = "separate"
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Split the job's own arguments from Beam's pipeline options (runner, project, ...)."""
    parser = argparse.ArgumentParser(prog="separate", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="file paths or globs, local or gs://")
    parser.add_argument("--input_list", help="a file with one input path or glob per line")
    parser.add_argument("--output", "-o", required=True, help="output folder, local or gs://")
    parser.add_argument("--model_dir", default="models/default", help="exported model folder")
    parser.add_argument("--force", action="store_true", help="redo tracks already done with this model")
    parser.add_argument("--subtype", default="PCM_16", choices=SUBTYPES, help="wav sample format")
    known, pipeline_args = parser.parse_known_args(argv)
    if not known.inputs and not known.input_list:
        parser.error("give at least one INPUT or --input_list")
    return known, pipeline_args


def track_name(path: str) -> str:
    """File name without its extension, and without `.stem` for MUSDB-style `.stem.mp4` files."""
    name = os.path.splitext(storage.basename(path))[0]
    return name[: -len(".stem")] if name.endswith(".stem") else name


def input_patterns(known: argparse.Namespace) -> list[str]:
    patterns = list(known.inputs)
    if known.input_list:
        lines = storage.read_text(known.input_list).splitlines()
        patterns += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [storage.absolute(pattern) for pattern in patterns]


def failure(path: str, stage: str, reason: str, track: str | None = None) -> beam.pvalue.TaggedOutput:
    Metrics.counter(_COUNTERS, "tracks_failed").inc()
    record = {"input": path, "track": track if track is not None else track_name(path),
              "stage": stage, "reason": reason}
    return beam.pvalue.TaggedOutput(DEAD_LETTER, record)


class ExpandPattern(beam.DoFn):
    """One path or glob -> (track, path) per matching file; a pattern matching nothing is a failure."""

    def process(self, pattern: str) -> Iterator[Any]:
        if storage.is_local(pattern) and os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as error:  # noqa: BLE001 - a bad pattern must not stop the others
            yield failure(pattern, "expand", f"cannot list: {error}")
            return
        files = [m.path for m in matched if not (storage.is_local(m.path) and os.path.isdir(m.path))]
        if not files:
            yield failure(pattern, "expand", "no file matches this path or pattern")
        for path in files:
            yield track_name(path), path


class PickOnePerTrack(beam.DoFn):
    """Tracks are folders named after files: of several files with one name, keep the first path."""

    def process(self, element: tuple[str, Any]) -> Iterator[Any]:
        track, paths = element
        first, *others = sorted(set(paths))
        yield track, first
        for path in others:
            yield failure(path, "expand", f"track name {track!r} is already taken by {first}", track)


class _Stages:
    """Times named stages and remembers the current one, so a failure can say where it happened."""

    def __init__(self) -> None:
        self.current, self.started = "start", time.monotonic()
        self.seconds: dict[str, float] = {}

    def summary(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.monotonic() - self.started, 3)}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.current, start = name, time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - start, 3)


class SeparateTrack(beam.DoFn):
    """(track, path) -> manifest record; the model is loaded once per worker, every error is caught."""

    def __init__(self, output: str, model_dir: str, force: bool = False, subtype: str = "PCM_16"):
        self.output, self.model_dir, self.force, self.subtype = output, model_dir, force, subtype

    def setup(self) -> None:
        from model.separator import Separator  # TensorFlow loads here, on the worker, not at import

        self.separator = Separator.load(storage.stage_tree(self.model_dir))

    def process(self, element: tuple[str, str]) -> Iterator[Any]:
        track, path = element
        stages = _Stages()
        try:
            with stages.stage("check"):
                previous = None if self.force else self._previous(track)
            if previous is not None:
                Metrics.counter(_COUNTERS, "tracks_skipped").inc()
                yield {**previous, "status": "skipped", "input": path}
                return
            record = self._separate(track, path, stages)
        except Exception as error:  # noqa: BLE001 - one bad song must never stop the catalogue
            yield failure(path, stages.current, f"{type(error).__name__}: {error}", track)
            return
        Metrics.counter(_COUNTERS, "tracks_ok").inc()
        # counters hold integers: whole seconds here, exact durations are in the manifest
        Metrics.counter(_COUNTERS, "audio_seconds").inc(round(record["duration_s"]))
        yield record

    def _previous(self, track: str) -> dict | None:
        """The stored record if this model version already produced every output of the track."""
        path = storage.join(self.output, track, TRACK_FILE)
        if not storage.exists(path):
            return None
        record = json.loads(storage.read_text(path))
        if record.get("model_version") != self.separator.version or not record.get("files"):
            return None
        outputs = {name: storage.join(self.output, track, file) for name, file in record["files"].items()}
        if not all(storage.exists(output) for output in outputs.values()):
            return None
        return {**record, "outputs": outputs}

    def _separate(self, track: str, path: str, stages: _Stages) -> dict:
        from beam_jobs.plots import render_track  # matplotlib: only where plots are drawn

        with stages.stage("decode"), storage.staged_input(path) as local:
            mix, rate = decode(local, stream=0)  # stream 0 of a .stem.mp4 is the mixture
        with stages.stage("separate"):
            stems = self.separator.separate(mix, rate)
            bad = [name for name, waveform in stems.items() if not np.all(np.isfinite(waveform))]
            if bad:
                raise ValueError(f"separation produced NaN or Inf in {', '.join(bad)}")
        files = {name: f"{name}.wav" for name in stems}
        folder = storage.join(self.output, track)
        with stages.stage("write"):
            for name, waveform in stems.items():
                with storage.atomic_output(storage.join(folder, files[name])) as local:
                    encode(local, waveform, rate, subtype=self.subtype)
        with stages.stage("plot"):
            png = render_track(mix, stems, rate, f"{track} ({self.separator.version})")
            storage.write_bytes_atomic(storage.join(folder, PLOT_FILE), png)
        files["plot"] = PLOT_FILE
        record = {
            "track": track, "input": path, "status": "ok", "duration_s": round(mix.shape[0] / rate, 3),
            "sample_rate": rate, "channels": int(mix.shape[1]), "samples": int(mix.shape[0]),
            "stems": list(stems), "subtype": self.subtype, "model_version": self.separator.version,
            "files": files, "outputs": {name: storage.join(folder, file) for name, file in files.items()},
            "timings_s": stages.summary(),
        }
        storage.write_text_atomic(storage.join(folder, TRACK_FILE), json.dumps(record, indent=2) + "\n")
        return record


def write_jsonl(records: list[dict], path: str, key: str) -> int:
    """Write records sorted by `key`, one JSON object per line, atomically as one unsharded file."""
    lines = [json.dumps(record, sort_keys=True) + "\n" for record in sorted(records, key=lambda r: r[key])]
    storage.write_text_atomic(path, "".join(lines))
    return len(lines)


def write_manifest(manifest: list[dict], output: str, failures: list[dict]) -> str:
    """Write OUT/manifest.jsonl and log the one-line run summary (returned for tests and callers)."""
    write_jsonl(manifest, storage.join(output, MANIFEST_FILE), key="track")
    statuses = [record["status"] for record in manifest]
    seconds = sum(record["duration_s"] for record in manifest if record["status"] == "ok")
    line = (f"separate: {statuses.count('ok')} separated ({seconds:.1f} s of audio), "
            f"{statuses.count('skipped')} skipped, {len(failures)} failed -> {output}")
    log.info(line)
    return line


def build(pipeline: beam.Pipeline, known: argparse.Namespace) -> None:
    """Add the labelled steps: expand -> reshuffle -> separate -> manifest and dead-letter files."""
    output = storage.absolute(known.output)
    expanded = (pipeline
                | "ListPatterns" >> beam.Create(input_patterns(known))
                | "ExpandInputs" >> beam.ParDo(ExpandPattern()).with_outputs(DEAD_LETTER, main="files"))
    picked = (expanded.files
              | "GroupByTrack" >> beam.GroupByKey()
              | "OnePathPerTrack" >> beam.ParDo(PickOnePerTrack()).with_outputs(DEAD_LETTER, main="tracks"))
    separated = (picked.tracks
                 | "Reshuffle" >> beam.Reshuffle()
                 | "Separate" >> beam.ParDo(SeparateTrack(output, storage.absolute(known.model_dir),
                                                          known.force, known.subtype))
                 .with_outputs(DEAD_LETTER, main="manifest"))
    failures = ((expanded[DEAD_LETTER], picked[DEAD_LETTER], separated[DEAD_LETTER])
                | "AllFailures" >> beam.Flatten()
                | "CollectFailures" >> beam.combiners.ToList())
    _ = failures | "WriteDeadLetter" >> beam.Map(
        write_jsonl, storage.join(output, DEAD_LETTER_FILE), key="input")
    _ = (separated.manifest
         | "CollectManifest" >> beam.combiners.ToList()
         | "WriteManifest" >> beam.Map(write_manifest, output, beam.pvalue.AsSingleton(failures)))


def run(argv: list[str] | None = None,
        test_pipeline: beam.Pipeline | None = None) -> beam.runners.runner.PipelineResult:
    """Build and run the job; returns the finished PipelineResult (its metrics hold the counters)."""
    known, pipeline_args = parse_args(argv)
    model_config = storage.join(storage.absolute(known.model_dir), "config.json")
    if not storage.exists(model_config):
        raise SystemExit(f"no exported model at {known.model_dir} (missing {model_config})")
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(pipeline_args))
    build(pipeline, known)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
