"""Deterministic TFRecord shards, dataset.json and the sharded track and dead-letter lists of the preprocess job.

Beam's WriteToTFRecord deals records to shards from a random start, so its files differ per run.
Here each record carries a stable key (a hash of track and offset); a split's shard count follows from
its encoded bytes (summed by a combiner), a record's shard from its key's hash, and each shard file holds
its records sorted by key: the same input gives the same bytes whatever the runner, workers or bundling,
and no step holds more than one shard's records. dataset.json is written only once every patch cut is
counted in exactly one shard (check_shards): a runner that drops or splits records fails the run instead
of leaving a training set short of them. The per-track entries and the dead letters go through
Beam's sharded text sink (tracks-*.jsonl, dead_letter-*.jsonl, named in dataset.json), so nothing grows
on one worker with the catalogue.
"""
from __future__ import annotations

import collections
import json
import math
from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs import jsonl_shards, storage
from beam_jobs.jsonl_shards import DEAD_LETTER
from model.config import DATASET_FILE

SPLITS = ("train", "valid", "test")
COMPRESSIONS = {"none": CompressionTypes.UNCOMPRESSED, "gzip": CompressionTypes.GZIP}
FRAMING_BYTES = 16  # TFRecord framing per record: length, its CRC, the data's CRC
TRACKS = "tracks"  # OUT/tracks-*.jsonl

ShardKey = tuple[str, int, int]  # (split, shard index, shard count)


def keyed_size(element: tuple[str, str, bytes]) -> tuple[str, tuple[int, int]]:
    split, _, record = element
    return split, (len(record) + FRAMING_BYTES, 1)


def add_sizes(sizes) -> tuple[int, int]:
    """(bytes, records) pairs -> their sums: a split's size, combined in a tree across workers."""
    total_bytes = total_records = 0
    for size, records in sizes:
        total_bytes, total_records = total_bytes + size, total_records + records
    return total_bytes, total_records


def shard_count(total_bytes: int, records: int, shard_mb: float) -> int:
    """Enough shards to keep each near `shard_mb`, but never more shards than records."""
    return max(1, min(records, math.ceil(total_bytes / (shard_mb * 2**20))))


def split_shards(element: tuple[str, tuple[int, int]], shard_mb: float) -> tuple[str, int]:
    split, (total_bytes, records) = element
    return split, shard_count(total_bytes, records, shard_mb)


def assign_shard(element: tuple[str, str, bytes], counts: dict[str, int]) -> tuple[ShardKey, tuple]:
    """A record goes to the shard its key's hash names (keys are sha256 hex digests: uniform)."""
    split, key, record = element
    count = counts[split]
    return (split, int(key[:16], 16) % count, count), (key, record)


def every_shard(split_count: tuple[str, int]) -> Iterator[tuple[ShardKey, None]]:
    """One empty entry per shard, so that every shard file of the count is written (even if empty)."""
    split, count = split_count
    for index in range(count):
        yield (split, index, count), None


def shard_name(split: str, index: int, count: int, compression: str) -> str:
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    return f"{split}/{split}-{index:05d}-of-{count:05d}{suffix}"


class WriteShard(beam.DoFn):
    """Write one shard: records sorted by key, TFRecord framing (Beam's), under a temporary name
    that is renamed into place when complete."""

    def __init__(self, output: str, compression: str):
        self._output, self._compression = output, compression

    def process(self, element: tuple[ShardKey, Iterable]) -> Iterator[dict]:
        (split, index, count), values = element
        records = sorted(value for value in values if value is not None)
        name = shard_name(split, index, count, self._compression)
        with storage.atomic_output(storage.join(self._output, name)) as local:
            with FileSystems.create(local, compression_type=COMPRESSIONS[self._compression]) as handle:
                for _, record in records:
                    tfrecordio._TFRecordUtil.write_record(handle, record)  # noqa: SLF001 - Beam's framing
        yield {"split": split, "file": name, "records": len(records)}


class SplitTotals(beam.CombineFn):
    """Track entries -> per split: track count, patch count, audio seconds (a few numbers per split)."""

    def create_accumulator(self) -> dict:
        return {split: [0, 0, 0.0] for split in SPLITS}

    def add_input(self, accumulator: dict, track: dict) -> dict:
        totals = accumulator.setdefault(track["split"], [0, 0, 0.0])
        totals[0] += 1
        totals[1] += track["patches"]
        totals[2] += track["duration_s"]
        return accumulator

    def merge_accumulators(self, accumulators) -> dict:
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for split, (tracks, patches, seconds) in accumulator.items():
                totals = merged.setdefault(split, [0, 0, 0.0])
                totals[0], totals[1], totals[2] = totals[0] + tracks, totals[1] + patches, totals[2] + seconds
        return merged

    def extract_output(self, accumulator: dict) -> dict:
        return {split: {"track_count": tracks, "patch_count": patches, "audio_seconds": round(seconds, 3)}
                for split, (tracks, patches, seconds) in accumulator.items()}


def check_shards(shards: list[dict], totals: dict) -> None:
    """Raise unless each shard file was written once and each split's shards hold every patch cut for it."""
    twice = sorted(name for name, times in collections.Counter(s["file"] for s in shards).items() if times > 1)
    if twice:
        raise RuntimeError(f"the runner grouped shard(s) {', '.join(twice)} in more than one part; rerun the job")
    for split in SPLITS:
        records = sum(shard["records"] for shard in shards if shard["split"] == split)
        patches = totals.get(split, {}).get("patch_count", 0)
        if records != patches:
            raise RuntimeError(f"{split}: the shards hold {records} records for {patches} patches cut: the runner "
                               "lost records (see beam_jobs/options.py); rerun the job")


def write_dataset(totals: dict, output: str, header: dict, shards: list[dict], dead_letters: int,
                  track_lists: list[str], dead_letter_lists: list[str], started: float) -> dict:
    """dataset.json: what the trainer needs to read the shards; every path in it is relative to it."""
    check_shards(shards, totals)
    splits = {split: {**totals.get(split, {"track_count": 0, "patch_count": 0, "audio_seconds": 0.0}),
                      "shards": sorted(s["file"] for s in shards if s["split"] == split)} for split in SPLITS}
    dataset = {**header, "splits": splits, "dead_letters": dead_letters,
               TRACKS + "_files": jsonl_shards.names(track_lists),
               DEAD_LETTER + "_files": jsonl_shards.names(dead_letter_lists)}
    _delete_stale_shards(output, {s["file"] for s in shards})
    jsonl_shards.delete_stale(output, (TRACKS, DEAD_LETTER), [*track_lists, *dead_letter_lists], started)
    storage.write_text_atomic(storage.join(output, DATASET_FILE), json.dumps(dataset, indent=2) + "\n")
    return dataset


def read_list(output: str, kind: str) -> list[dict]:
    """Every entry of a finished run's `tracks` or `dead_letter` list (sorted by split, then track)."""
    dataset = json.loads(storage.read_text(storage.join(output, DATASET_FILE)))
    return sorted(jsonl_shards.read(output, dataset[kind + "_files"]), key=lambda entry: (entry["split"], entry.get("name", entry.get("track")), json.dumps(entry)))


def _delete_stale_shards(output: str, keep: set[str]) -> None:
    """Shards of an earlier run into the same folder (another shard count or compression) would
    otherwise sit beside the new ones."""
    prefix = output.rstrip("/") + "/"
    patterns = [storage.join(output, split, f"{split}-*-of-*.tfrecord*") for split in SPLITS]
    stale = [m.path for result in FileSystems.match(patterns) for m in result.metadata_list
             if m.path[len(prefix):] not in keep]
    if stale:
        FileSystems.delete(stale)


class WriteShards(beam.PTransform):
    """(split, key, record) -> one dict per shard file written: {split, file, records}."""

    def __init__(self, output: str, shard_mb: float, compression: str):
        super().__init__()
        self._output, self._shard_mb, self._compression = output, shard_mb, compression

    def expand(self, records):
        counts = (records
                  | "RecordSizes" >> beam.Map(keyed_size)
                  | "SplitSizes" >> beam.CombinePerKey(add_sizes)
                  | "ShardCounts" >> beam.Map(split_shards, self._shard_mb))
        keyed = records | "AssignShards" >> beam.Map(assign_shard, beam.pvalue.AsDict(counts))
        empty = counts | "EveryShard" >> beam.FlatMap(every_shard)
        return ((keyed, empty)
                | "FlattenShards" >> beam.Flatten()
                | "GroupByShard" >> beam.GroupByKey()
                | "WriteShard" >> beam.ParDo(WriteShard(self._output, self._compression)))
