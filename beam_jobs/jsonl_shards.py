"""Records as sharded JSON-lines files: written by Beam's text sink, read back by the names a run's summary
file lists, and the shards an earlier run left beside them removed.

    OUT/<prefix>-<tag>-SSSSS-of-NNNNN.jsonl   one JSON object per line; the shard count is the runner's choice,
                                              the tag is new for every run, so two runs at once on one
                                              output never write over each other's shards

Used by separate (manifest, dead letter) and preprocess (track list, dead letter), so that no step
gathers a catalogue's records onto one worker.
"""
from __future__ import annotations

import io
import json
import uuid
from typing import Any, Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs import storage

SUFFIX = ".jsonl"
DEAD_LETTER = "dead_letter"  # every job's failed inputs: OUT/dead_letter-*.jsonl, one line each with the reason


class WriteRecords(beam.PTransform):
    """Records -> OUT/<prefix>-<tag>-SSSSS-of-NNNNN.jsonl, one JSON object per line; yields the shards' paths."""

    def __init__(self, output: str, prefix: str):
        super().__init__()
        self.output, self.prefix, self.tag = output, prefix, uuid.uuid4().hex[:12]

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (records
                | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
                | "WriteShards" >> beam.io.WriteToText(storage.join(self.output, f"{self.prefix}-{self.tag}"),
                                                       file_name_suffix=SUFFIX))


def names(paths: Iterable[str]) -> list[str]:
    """The shards' names relative to the output folder, as a summary file lists them."""
    return sorted(storage.basename(path) for path in paths)


def read(output: str, shard_names: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Every record of the named shards, streamed shard by shard (a reader may stop early)."""
    for name in shard_names:
        with FileSystems.open(storage.join(output, name), compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            for line in io.TextIOWrapper(raw, encoding="utf-8"):
                if line.strip():
                    yield json.loads(line)


def delete_stale(output: str, prefixes: Iterable[str], keep: Iterable[str], written_before: float) -> None:
    """Delete OUT/<prefix>-*-of-*.jsonl shards not in `keep` (paths or names) last written before
    `written_before` (this run's start, epoch seconds): earlier runs'. A run going on beside this one keeps
    its shards, which its own summary may name. Best effort."""
    kept = set(names(keep))
    patterns = [storage.join(output, f"{prefix}-*-of-*{SUFFIX}") for prefix in prefixes]
    storage.delete_quietly([m.path for result in FileSystems.match(patterns) for m in result.metadata_list
                            if storage.basename(m.path) not in kept
                            and m.last_updated_in_seconds < written_before])
