"""Deterministic TFRecord shards, dataset.json and dead_letter.jsonl for the preprocess job.

Beam's WriteToTFRecord deals records to shards from a random start, so its files differ per run.
Here each record carries a stable key (a hash of track and offset); a split's shard count follows from
its encoded bytes, its sorted keys are cut into that many equal runs, and each shard file holds its
records sorted by key: the same input gives the same bytes whatever the runner, workers or bundling.
"""
from __future__ import annotations

import bisect
import json
import math
from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs import storage

SPLITS = ("train", "valid", "test")
COMPRESSIONS = {"none": CompressionTypes.UNCOMPRESSED, "gzip": CompressionTypes.GZIP}
FRAMING_BYTES = 16  # TFRecord framing per record: length, its CRC, the data's CRC
DATASET_FILE = "dataset.json"
DEAD_LETTER_FILE = "dead_letter.jsonl"

ShardKey = tuple[str, int, int]  # (split, shard index, shard count)


def keyed_size(element: tuple[str, str, bytes]) -> tuple[str, tuple[str, int]]:
    split, key, record = element
    return split, (key, len(record) + FRAMING_BYTES)


def shard_count(total_bytes: int, records: int, shard_mb: float) -> int:
    """Enough shards to keep each near `shard_mb`, but never more shards than records."""
    return max(1, min(records, math.ceil(total_bytes / (shard_mb * 2**20))))


class ShardStarts(beam.CombineFn):
    """A split's (key, size) pairs -> the first key of shards 1..n-1: equal record counts per shard,
    with no empty shard (patches are all about the same size, so shards are too)."""

    def __init__(self, shard_mb: float):
        self._shard_mb = shard_mb

    def create_accumulator(self) -> list[tuple[str, int]]:
        return []

    def add_input(self, accumulator: list, element: tuple[str, int]) -> list:
        accumulator.append(element)
        return accumulator

    def merge_accumulators(self, accumulators) -> list:
        return [element for accumulator in accumulators for element in accumulator]

    def extract_output(self, accumulator: list) -> list[str]:
        keys = sorted(key for key, _ in accumulator)
        count = shard_count(sum(size for _, size in accumulator), len(keys), self._shard_mb)
        return [keys[len(keys) * index // count] for index in range(1, count)]


def assign_shard(element: tuple[str, str, bytes], starts: dict[str, list[str]]) -> tuple[ShardKey, tuple]:
    split, key, record = element
    bounds = starts[split]
    return (split, bisect.bisect_right(bounds, key), len(bounds) + 1), (key, record)


def every_shard(split_starts: tuple[str, list[str]]) -> Iterator[tuple[ShardKey, None]]:
    """One empty entry per shard, so that every shard file of the count is written (even if empty)."""
    split, bounds = split_starts
    for index in range(len(bounds) + 1):
        yield (split, index, len(bounds) + 1), None


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


def write_dead_letters(letters: list[dict], output: str) -> int:
    """dead_letter.jsonl, one JSON object per bad track (always written, so no stale file stays)."""
    lines = [json.dumps(letter, sort_keys=True) + "\n"
             for letter in sorted(letters, key=lambda letter: (letter["split"], letter["track"]))]
    storage.write_text_atomic(storage.join(output, DEAD_LETTER_FILE), "".join(lines))
    return len(lines)


def write_dataset(tracks: list[dict], output: str, header: dict, shards: list[dict],
                  normalisation: dict, dead_letters: list[dict]) -> dict:
    """dataset.json: what the trainer needs to read the shards; shard paths are relative to it."""
    splits = {}
    for split in SPLITS:
        entries = sorted((t for t in tracks if t["split"] == split), key=lambda t: (t["name"], t["source"]))
        splits[split] = {
            "track_count": len(entries),
            "patch_count": sum(t["patches"] for t in entries),
            "audio_seconds": round(sum(t["duration_s"] for t in entries), 3),
            "shards": sorted(s["file"] for s in shards if s["split"] == split),
            "tracks": [{k: v for k, v in t.items() if k != "split"} for t in entries],
        }
    dataset = {**header, "splits": splits, "normalisation": {**header["normalisation"], **normalisation},
               "dead_letters": len(dead_letters)}
    _delete_stale_shards(output, {s["file"] for s in shards})
    storage.write_text_atomic(storage.join(output, DATASET_FILE), json.dumps(dataset, indent=2) + "\n")
    return dataset


def _delete_stale_shards(output: str, keep: set[str]) -> None:
    """Shards of an earlier run into the same folder (another shard count or compression) would
    otherwise sit beside the new ones."""
    prefix = output.rstrip("/") + "/"
    for split in SPLITS:
        pattern = storage.join(output, split, f"{split}-*-of-*.tfrecord*")
        found = FileSystems.match([pattern])[0].metadata_list
        stale = [m.path for m in found if m.path[len(prefix):] not in keep]
        if stale:
            FileSystems.delete(stale)


class WriteShards(beam.PTransform):
    """(split, key, record) -> one dict per shard file written: {split, file, records}."""

    def __init__(self, output: str, shard_mb: float, compression: str):
        super().__init__()
        self._output, self._shard_mb, self._compression = output, shard_mb, compression

    def expand(self, records):
        starts = (records
                  | "RecordSizes" >> beam.Map(keyed_size)
                  | "ShardStarts" >> beam.CombinePerKey(ShardStarts(self._shard_mb)))
        keyed = records | "AssignShards" >> beam.Map(assign_shard, beam.pvalue.AsDict(starts))
        empty = starts | "EveryShard" >> beam.FlatMap(every_shard)
        return ((keyed, empty)
                | "FlattenShards" >> beam.Flatten()
                | "GroupByShard" >> beam.GroupByKey()
                | "WriteShard" >> beam.ParDo(WriteShard(self._output, self._compression)))
