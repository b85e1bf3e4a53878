"""`python -m reports DIR...`: (re)write the HTML report of a separation, evaluation or training folder.

The kind is told by what the folder holds: summary.json naming manifest shards (a separation run),
summary.json with scores (an evaluation), history.csv (a training run). Folders local or gs:// (common/storage.py);
jobs write their own reports as they finish, so this is for rewriting one.
"""
from __future__ import annotations

import argparse
import json

from common import storage
from reports.evaluation import write_evaluation_report
from reports.separation import SUMMARY_FILE, write_separation_report
from reports.training import HISTORY_FILE, write_training_report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reports", description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", metavar="DIR", help="output, evaluation or model folder")
    return parser.parse_args(argv)


def write_report(folder: str) -> str:
    """Write the folder's report; returns its path. ValueError when the folder holds none of the three."""
    summary = storage.join(folder, SUMMARY_FILE)
    if storage.exists(summary):
        kind = json.loads(storage.read_text(summary))
        if "manifest_shards" in kind:
            return write_separation_report(folder)
        if "scores" in kind:
            return write_evaluation_report(folder)
    if storage.exists(storage.join(folder, HISTORY_FILE)):
        return write_training_report(folder)
    raise ValueError(f"{folder}: no {SUMMARY_FILE} of a separation run or an evaluation, and no {HISTORY_FILE}")


def main(argv: list[str] | None = None) -> int:
    status = 0
    for folder in parse_args(argv).folders:
        try:
            print(write_report(folder))
        except (ValueError, OSError) as error:
            print(f"reports: {error}")
            status = 1
    return status
