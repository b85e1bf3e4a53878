"""What a separation run writes beside the stems, built so that no step grows with the catalogue.

    OUT/manifest-SSSSS-of-NNNNN.jsonl     one line per track separated or skipped (Beam's sharded text sink)
    OUT/dead_letter-SSSSS-of-NNNNN.jsonl  one line per input that failed: input, track, stage, reason
    OUT/summary.json                      counts, audio seconds, speed, the shards' names, and bounded lists:
                                          the slowest tracks and the first failures (by input), `limit` each
    OUT/index.html                        rendered from summary.json (reports.separation.render_index)

The summary comes from `RunSummary`, a combiner whose accumulators hold counts and at most `limit`
entries per list, so Beam merges it in a tree across workers. The manifest's shards are named in
summary.json, which is written after them: shards an earlier run left behind (a run with another shard
count) are deleted then, and readers go by summary.json's list.
"""
from __future__ import annotations

import heapq
import json
import logging
import time
from typing import Any, Iterator

import apache_beam as beam

from beam_jobs import jsonl_shards, storage
from beam_jobs.jsonl_shards import DEAD_LETTER
from reports.separation import INDEX_FILE, SUMMARY_FILE, page_path, render_index

MANIFEST = "manifest"
LIMIT = 100  # tracks and failures listed by name in summary.json and on the index page
MAX_REASON = 500  # characters of a failure's reason kept in the summary (the dead letter has it whole)
log = logging.getLogger(__name__)


class RunSummary(beam.CombineFn):
    """Manifest records and dead letters -> the run's counts, the slowest tracks and the first failures.

    An accumulator is [counts, audio seconds, slowest heap, failures heap, model versions], each list
    capped at `limit` (heap items are (sort key, entry as JSON)): its size never depends on how many songs
    the run has."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit

    def create_accumulator(self) -> list:
        return [{"ok": 0, "skipped": 0, "failed": 0}, 0.0, [], [], []]

    def add_input(self, accumulator: list, record: dict) -> list:
        counts, _, slowest, failures, versions = accumulator
        status = record.get("status", "failed")
        counts[status] = counts.get(status, 0) + 1
        if status == "failed":
            entry = {"input": str(record.get("input")), "track": record.get("track"),
                     "stage": record.get("stage"), "reason": str(record.get("reason"))[:MAX_REASON]}
            # a max-heap on the input path (negated through the key): keeps the `limit` smallest inputs
            self._push(failures, (_descending(entry["input"]), json.dumps(entry, sort_keys=True)))
            return accumulator
        if status == "ok":
            accumulator[1] += float(record.get("duration_s") or 0.0)
            counts["warned"] = counts.get("warned", 0) + bool(record.get("warnings"))
            seconds = float((record.get("timings_s") or {}).get("total") or 0.0)
            entry = {"track": record.get("track"), "page": page_path(record),
                     "duration_s": record.get("duration_s"), "seconds": seconds}
            self._push(slowest, ((seconds, str(entry["track"])), json.dumps(entry, sort_keys=True)))
        version = record.get("model_version")
        if version and version not in versions and len(versions) < self.limit:
            versions.append(version)
        return accumulator

    def _push(self, heap: list, item: tuple) -> None:
        if len(heap) < self.limit:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)

    def merge_accumulators(self, accumulators) -> list:
        merged = self.create_accumulator()
        for counts, seconds, slowest, failures, versions in accumulators:
            for status, count in counts.items():
                merged[0][status] = merged[0].get(status, 0) + count
            merged[1] += seconds
            for item in slowest:
                self._push(merged[2], item)
            for item in failures:
                self._push(merged[3], item)
            merged[4].extend(v for v in versions if v not in merged[4] and len(merged[4]) < self.limit)
        return merged

    def extract_output(self, accumulator: list) -> dict:
        counts, seconds, slowest, failures, versions = accumulator
        return {"separated": counts.get("ok", 0), "skipped": counts.get("skipped", 0),
                "failed": counts.get("failed", 0), "warned": counts.get("warned", 0),
                "audio_seconds": round(seconds, 3),
                "slowest": [json.loads(entry) for _, entry in sorted(slowest, reverse=True)],
                "failures": [json.loads(entry) for _, entry in sorted(failures, reverse=True)],
                "model_versions": sorted(versions), "limit": self.limit}


def _descending(text: str) -> tuple[int, ...]:
    """A key that orders strings in reverse, so a min-heap on it drops the largest first."""
    return tuple(-ord(char) for char in text) + (1,)


def finish_run(summary: dict, output: str, started: float, manifest_shards: list[str],
               dead_letter_shards: list[str], inputs: int) -> str:
    """Write OUT/summary.json and OUT/index.html, delete shards an earlier run left; returns the summary line.

    Runs once, on one worker, after both sinks finished (their file names come in as side inputs). Raises
    unless each of the `inputs` (distinct files, and patterns that failed) ended in the manifest or the dead
    letter: a runner that drops records (beam_jobs/options.py) fails the run, whose rerun skips what is done."""
    outcomes = summary["separated"] + summary["skipped"] + summary["failed"]
    if outcomes != inputs:
        raise RuntimeError(f"{inputs} inputs, but {outcomes} in the manifest and dead letter: the runner lost "
                           "records; rerun the job (tracks already separated are skipped)")
    wall = max(time.time() - started, 1e-6)
    summary = {**summary, "wall_seconds": round(wall, 3),
               "realtime_factor": round(summary["audio_seconds"] / wall, 2), "output": output,
               MANIFEST + "_shards": jsonl_shards.names(manifest_shards),
               DEAD_LETTER + "_shards": jsonl_shards.names(dead_letter_shards)}
    storage.write_text_atomic(storage.join(output, SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
    jsonl_shards.delete_stale(output, (MANIFEST, DEAD_LETTER), [*manifest_shards, *dead_letter_shards], started)
    storage.write_text_atomic(storage.join(output, INDEX_FILE), render_index(summary, output))
    line = summary_line(summary)
    log.info(line)
    return line


def summary_line(summary: dict) -> str:
    clipped = f", {summary['warned']} clipped (see their pages)" if summary.get("warned") else ""
    return (f"separate: {summary['separated']} separated ({summary['audio_seconds']:.1f} s of audio), "
            f"{summary['skipped']} skipped, {summary['failed']} failed{clipped} in {summary['wall_seconds']:.1f} s "
            f"({summary['realtime_factor']:.1f}x realtime) -> {summary['output']}")


def read_summary(output: str) -> dict:
    return json.loads(storage.read_text(storage.join(output, SUMMARY_FILE)))


def read_records(output: str, kind: str = MANIFEST, summary: dict | None = None) -> Iterator[dict[str, Any]]:
    """Every record of a finished run's manifest (kind `manifest`) or dead letter (`dead_letter`), shard by
    shard, in the order the shards hold them; `summary`: the run's summary, when already read."""
    return jsonl_shards.read(output, (summary or read_summary(output))[kind + "_shards"])
