"""`atsep preprocess`: MUSDB18 songs (local or gs://) -> deterministic sharded TFRecords for training.

Reads `.stem.mp4` files, MUSDB18-HQ folders (`<split>/<track>/<stem>.wav`) or plain folders of stem
files under `--input`, and writes under `--output`:
  <split>/<split>-00000-of-0000N.tfrecord[.gz]  patches of every stem at the records' rate (model.frontend)
  dataset.json                                 splits (counts, shard files), the config used
  tracks-*.jsonl                               one line per track used (split, duration, patches, stems)
  dead_letter-*.jsonl                          one line per track that could not be used, with the reason
Steps: ListFiles -> GroupByTrack -> Reshuffle -> Decode -> Validate -> Resample -> CutPatches ->
EncodePatches -> WriteShards, with the track lists and dead letters beside them. Every step
works per track, per shard or through a combiner: none gathers the catalogue onto one worker.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter

from beam_jobs import progress, storage
from beam_jobs.options import (EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, ConfigurationError, add_limit_args,
                                check_output, limits_of, pipeline_options, run_failed)
from beam_jobs.preprocess_shards import (
    COMPRESSIONS, DATASET_FILE, DEAD_LETTER, TRACKS, SplitTotals, WriteShards, write_dataset)
from beam_jobs.preprocess_tracks import (
    DEAD, NAMESPACE, DecodeTrack, EncodePatch, ListFiles, ValidateSong, count_failed, cut_patches,
    keyed_by_track, resample_song, summarize, tracks_of_group)
from beam_jobs.jsonl_shards import WriteRecords
from model.config import CONFIG_FILE, Config
from model.frontend import records_rate
from audio.limits import Limits
from audio.musdb import MUSDB_STREAMS, MUSDB_VALIDATION_TRACKS

# whole songs are held in memory here (every stem, float32), so the default length cap is shorter than
# the separation job's: 30 min of 44.1 kHz stereo is ~1.3 GB for a five-stem track
LIMITS = Limits(max_seconds=1800.0)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Job options, and the rest for Beam (--runner, --direct_running_mode, --setup_file, ...)."""
    parser = argparse.ArgumentParser(
        prog="atsep preprocess", description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Other options go to Beam (--runner, --setup_file, ...). The DirectRunner runs "
               "--direct_running_mode in_memory unless told otherwise (see beam_jobs/options.py).")
    parser.add_argument("--input", default="data/musdb-synth", help="songs root, local or gs://")
    parser.add_argument("--output", default="data/records", help="records folder, local or gs://")
    parser.add_argument("--config", default="", help="config.json (or its folder); default Config()")
    parser.add_argument("--sample_rate", type=int, default=0,
                        help="override audio.sample_rate, the model's rate (0: keep the config's); the "
                             "records are at data.rate_factor times it")
    parser.add_argument("--shard_mb", type=float, default=64.0, help="target shard size in MiB")
    parser.add_argument("--compression", choices=sorted(COMPRESSIONS), default="none")
    add_limit_args(parser, LIMITS)
    return parser.parse_known_args(argv)


def load_config(args: argparse.Namespace) -> Config:
    config = Config()
    if args.config:
        path = args.config if args.config.endswith(".json") else storage.join(args.config, CONFIG_FILE)
        config = Config.from_json(storage.read_text(path))
    if args.sample_rate:
        config = config.replace(audio__sample_rate=args.sample_rate)
    return config


def build(pipeline: beam.Pipeline, args: argparse.Namespace, config: Config,
          run_id: str | None = None) -> None:
    """Add the preprocess steps to `pipeline`; `run_id` names the progress bar the steps advance."""
    started = time.time()  # track lists older than this are an earlier run's
    root, output = storage.absolute(args.input).rstrip("/"), storage.absolute(args.output)
    rate = records_rate(config)
    patch_samples = round(config.data.patch_seconds * rate)
    validation = config.data.validation_tracks or MUSDB_VALIDATION_TRACKS
    found = (pipeline
             | "ListFiles" >> ListFiles(root)
             | "KeyByTrack" >> beam.FlatMap(keyed_by_track, root)
             | "GroupByTrack" >> beam.GroupByKey()
             | "FindTracks" >> beam.FlatMap(tracks_of_group, root, tuple(validation)))
    _ = (found
         | "CountTracks" >> beam.combiners.Count.Globally()
         | "ProgressTotal" >> beam.Map(_total_found, run_id))
    tracks = found | "Reshuffle" >> beam.Reshuffle()
    decoded = tracks | "Decode" >> beam.ParDo(DecodeTrack(limits_of(args))).with_outputs(DEAD, main="songs")
    valid = decoded.songs | "Validate" >> beam.ParDo(ValidateSong(config.audio.channels)).with_outputs(
        DEAD, main="songs")
    songs = valid.songs | "Resample" >> beam.Map(resample_song, rate)
    shards = (songs
              | "CutPatches" >> beam.FlatMap(cut_patches, patch_samples)
              | "EncodePatches" >> beam.ParDo(EncodePatch())
              | "WriteShards" >> WriteShards(output, args.shard_mb, args.compression)
              | "CollectShards" >> beam.combiners.ToList())  # one small dict per shard file
    dead = ((decoded[DEAD], valid[DEAD])
            | "DeadLetters" >> beam.Flatten()
            | "CountFailed" >> beam.Map(count_failed)
            | "ProgressFailed" >> beam.Map(_advanced, run_id))
    dead_count = dead | "CountDeadLetters" >> beam.combiners.Count.Globally()
    dead_files = dead | "WriteDeadLetters" >> WriteRecords(output, DEAD_LETTER)
    entries = (songs
               | "Summarize" >> beam.Map(summarize, patch_samples)
               | "ProgressDone" >> beam.Map(_advanced, run_id))
    track_files = entries | "WriteTrackList" >> WriteRecords(output, TRACKS)
    _ = (entries
         | "SplitTotals" >> beam.CombineGlobally(SplitTotals())
         | "WriteDatasetJson" >> beam.Map(
             write_dataset, output, _header(args, config, root, patch_samples),
             beam.pvalue.AsSingleton(shards), beam.pvalue.AsSingleton(dead_count),
             beam.pvalue.AsList(track_files), beam.pvalue.AsList(dead_files), started))


def _total_found(total: int, run_id: str | None) -> None:
    progress.set_total(run_id, total)


def _advanced(record: dict, run_id: str | None) -> dict:
    """One track is through (a dataset.json entry, or a dead letter): move the bar on."""
    progress.advance(run_id, record.get("duration_s", 0.0))
    return record


def _header(args: argparse.Namespace, config: Config, root: str, patch_samples: int) -> dict:
    from model.records import SCHEMA_VERSION  # noqa: PLC0415 - imports TensorFlow

    return {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": records_rate(config),
        "channels": config.audio.channels,
        "patch_seconds": config.data.patch_seconds,
        "patch_samples": patch_samples,
        "stems": list(MUSDB_STREAMS),
        "compression": args.compression,
        "input": root,
        "config": json.loads(config.to_json()),
    }


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None):
    """Build and run the job; returns the finished PipelineResult."""
    args, pipeline_args = parse_args(argv)
    config = load_config(args)
    check_output(storage.absolute(args.output))
    options = pipeline_options(pipeline_args, local_mode="in_memory")  # its records are megabytes each
    # the bar's total is set once the tracks are found
    with progress.bar(test_pipeline is None and progress.shown_for(options), None, "preprocess") as run_id:
        pipeline = test_pipeline or beam.Pipeline(options=options)
        build(pipeline, args, config, run_id)
        result = pipeline.run()
        result.wait_until_finish()
    return result


def counters(result) -> dict[str, int]:
    """tracks_ok, tracks_failed and patches of a finished run."""
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    return {counter.key.metric.name: counter.committed for counter in found}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args, _ = parse_args(argv)
    try:
        totals = counters(run(argv))
    except ConfigurationError as error:
        print(f"preprocess: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - a failed run is reported in one line, not a traceback
        return run_failed("preprocess", error)
    print(f"preprocess: {totals.get('tracks_ok', 0)} tracks, {totals.get('patches', 0)} patches, "
          f"{totals.get('tracks_failed', 0)} failed -> {storage.join(args.output, DATASET_FILE)}")
    return EXIT_INPUTS_FAILED if totals.get("tracks_failed", 0) else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
