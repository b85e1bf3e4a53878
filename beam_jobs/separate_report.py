"""What a person reads in the terminal at the end of a separate run: where the first tracks' outputs are,
the first failures and the run's summary line."""
from __future__ import annotations

import itertools

from beam_jobs import outputs, run_summary, storage
from reports.separation import INDEX_FILE


def report(output: str, summary: dict, limit: int = 20) -> str:
    """`summary`: the run's, as read_summary gives it. The manifest and dead-letter shards are read only as
    far as `limit` lines each."""
    lines = []
    for record in itertools.islice(run_summary.read_records(output, run_summary.MANIFEST, summary), limit):
        audio = [record["outputs"][stem] for stem in record["stems"]]
        lines.append(f"{record['track']} ({record['status']}): stems {', '.join(audio)}")
        lines.append(f"    plot {record['outputs'].get(outputs.PLOT, '-')}")
    for record in itertools.islice(run_summary.read_records(output, run_summary.DEAD_LETTER, summary), limit):
        lines.append(f"failed: {record['input']}: {record['reason']}")
    hidden = (max(0, summary["separated"] + summary["skipped"] - limit) + max(0, summary["failed"] - limit))
    if hidden:
        lines.append(f"... and {hidden} more: see {storage.join(output, run_summary.MANIFEST)}-*.jsonl and "
                     f"{run_summary.DEAD_LETTER}-*.jsonl")
    lines.append(f"report: {storage.join(output, INDEX_FILE)}")
    lines.append(run_summary.summary_line(summary))
    return "\n".join(lines)
