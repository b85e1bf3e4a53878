"""The run summary's combiner: bounded accumulators whose merge, in any grouping, gives the same answer."""
from __future__ import annotations

import random

import pytest

from beam_jobs.run_summary import RunSummary, finish_run, read_summary


def _records(n: int, failed: int) -> list[dict]:
    tracks = [{"track": f"t{i:04d}", "status": "ok" if i % 5 else "skipped", "duration_s": 1.5,
               "timings_s": {"total": (i * 7919) % 1000 / 10}, "model_version": f"v{i % 3}"} for i in range(n)]
    failures = [{"input": f"song{i:04d}.wav", "track": f"f{i}", "stage": "decode", "reason": "x" * 900}
                for i in range(failed)]
    return tracks + failures


def _combine(combine: RunSummary, groups: list[list[dict]]) -> dict:
    accumulators = []
    for group in groups:
        accumulator = combine.create_accumulator()
        for record in group:
            accumulator = combine.add_input(accumulator, record)
        accumulators.append(accumulator)
    while len(accumulators) > 1:  # merge in a tree, as a runner does across bundles and workers
        accumulators = [combine.merge_accumulators(accumulators[i:i + 3]) for i in range(0, len(accumulators), 3)]
    return combine.extract_output(accumulators[0])


def test_counts_and_bounded_lists():
    combine = RunSummary(limit=10)
    summary = _combine(combine, [_records(500, 40)])
    assert (summary["separated"], summary["skipped"], summary["failed"]) == (400, 100, 40)
    assert summary["audio_seconds"] == 600.0  # separated tracks only
    assert len(summary["slowest"]) == 10 and len(summary["failures"]) == 10
    seconds = [entry["seconds"] for entry in summary["slowest"]]
    assert seconds == sorted(seconds, reverse=True) and seconds[0] == 99.9
    assert [entry["input"] for entry in summary["failures"]] == [f"song{i:04d}.wav" for i in range(10)]
    assert all(len(entry["reason"]) == 500 for entry in summary["failures"])
    assert summary["model_versions"] == ["v0", "v1", "v2"]
    assert summary["slowest"][0]["page"].endswith("/track.html")


def test_any_split_and_merge_order_gives_the_same_summary():
    records = _records(300, 60)
    combine = RunSummary(limit=7)
    whole = _combine(combine, [records])
    rng = random.Random(0)
    for _ in range(5):
        shuffled = records[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 12))
        groups = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)])]
        assert _combine(combine, groups) == whole


def test_an_accumulator_does_not_grow_with_the_records():
    combine = RunSummary(limit=5)
    accumulator = combine.create_accumulator()
    for record in _records(2000, 2000):
        accumulator = combine.add_input(accumulator, record)
    assert len(accumulator[2]) == 5 and len(accumulator[3]) == 5 and len(accumulator[4]) <= 5


def test_a_run_finishes_only_when_every_input_has_an_outcome(tmp_path):
    summary = _combine(RunSummary(limit=3), [_records(4, 1)])  # 3 separated, 1 skipped, 1 failed
    with pytest.raises(RuntimeError, match="6 inputs, but 5 in the manifest and dead letter"):
        finish_run(summary, str(tmp_path), 0.0, [], [], inputs=6)
    assert not (tmp_path / "summary.json").exists()
    assert finish_run(summary, str(tmp_path), 0.0, [], [], inputs=5).startswith("separate: 3 separated")
    assert read_summary(str(tmp_path))["failed"] == 1
