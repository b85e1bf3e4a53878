"""Sharded JSON-lines records: a run removes the shards of runs that ended before it started, and only those."""
from __future__ import annotations

import os
import time

from beam_jobs import jsonl_shards


def test_stale_shards_are_the_ones_written_before_the_run_started(tmp_path):
    started = time.time()
    shards = {name: tmp_path / f"manifest-{name}-00000-of-00001.jsonl" for name in ("ours", "earlier", "beside")}
    for path in shards.values():
        path.write_text("{}\n")
    os.utime(shards["earlier"], (started - 60, started - 60))  # a run that ended a minute before this one began
    os.utime(shards["beside"], (started + 5, started + 5))  # a run going on at the same time
    jsonl_shards.delete_stale(str(tmp_path), ["manifest"], [str(shards["ours"])], written_before=started)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [shards["ours"].name, shards["beside"].name])


def test_each_run_writes_shards_under_names_of_its_own():
    first, second = (jsonl_shards.WriteRecords("out", "manifest") for _ in range(2))
    assert first.tag != second.tag
