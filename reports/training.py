"""The report of a training run: MODEL_DIR/report.html with loss (and SDR) curves per head.

Reads MODEL_DIR/history.csv, Keras CSVLogger's file: an `epoch` column (0-based) and one column per
logged value, `<name>` for training and `val_<name>` for validation (`vocals_loss`, `val_vocals_loss`,
`loss`, ...; SDR columns such as `val_vocals_sdr` when the run logs them). One chart per name, train
and valid together: first the per-head losses, then the total loss, then SDR, then anything else.
"""
from __future__ import annotations

import csv
import io
import math

from common import storage
from reports.html import ReadText, WriteText, esc, number, page, read_optional, table
from reports.svg import line_chart

HISTORY_FILE = "history.csv"
REPORT_FILE = "report.html"
VAL = "val_"


def parse_history(text: str) -> list[dict[str, float]]:
    """Rows by epoch (a repeated epoch keeps its last row); blanks and "NA" cells are left out."""
    by_epoch: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        values = {}
        for key, cell in row.items():
            try:
                values[key] = float(cell)
            except (TypeError, ValueError):
                continue
        if "epoch" in values and math.isfinite(values["epoch"]):
            values["epoch"] = int(values["epoch"])
            by_epoch[values["epoch"]] = values
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _rank(name: str) -> int:
    lowered = name.lower()
    if lowered.endswith("_loss"):
        return 0  # per-head losses first
    if lowered == "loss":
        return 1
    return 2 if "sdr" in lowered else 3


def curve_names(rows: list[dict[str, float]]) -> list[str]:
    """The logged names without their `val_` prefix, per-head losses first."""
    columns = dict.fromkeys(key for row in rows for key in row if key and key != "epoch")
    names = dict.fromkeys(key[len(VAL):] if key.startswith(VAL) else key for key in columns)
    return sorted(names, key=_rank)  # sorted is stable: the file's order within each group


def _chart(rows: list[dict[str, float]], name: str) -> str:
    series = {label: [(row["epoch"] + 1, row[key]) for row in rows if key in row]
              for key, label in ((name, "train"), (VAL + name, "valid"))}
    series = {label: points for label, points in series.items() if points}
    lowered = name.lower()
    unit = "SDR (dB)" if "sdr" in lowered else ("L1 loss" if "loss" in lowered else name)
    title = "total loss" if name == "loss" else name.replace("_", " ")
    return line_chart(series, title, unit)


def render_training(rows: list[dict[str, float]], title: str = "Training run", subtitle: str = "") -> str:
    """Summary (epochs, best validation epoch), one chart per curve, then the last row's values."""
    if not rows:
        return page(title, '<p class="note">no epoch logged yet</p>', subtitle)
    names = curve_names(rows)
    scored = [row for row in rows if number(row.get("val_loss")) != "n/a"]
    best = min(scored, key=lambda row: row["val_loss"]) if scored else None
    summary = f"<p>{len(rows)} epoch(s) logged (counted from 1)"
    if best is not None:
        summary += f"; best validation loss {best['val_loss']:.4g} at epoch {int(best['epoch']) + 1}"
    summary += "</p>"
    charts = '<div class="charts">' + "".join(_chart(rows, name) for name in names) + "</div>"
    last = rows[-1]
    values = table(["value", "train", "valid"],
                   [(esc(name), number(last.get(name), 4), number(last.get(VAL + name), 4)) for name in names],
                   numeric=[1, 2])
    body = (f"{summary}\n<h2>Curves</h2>\n{charts}\n<h2>Last epoch ({int(last['epoch']) + 1})</h2>\n{values}")
    return page(title, body, subtitle)


def write_training_report(model_dir: str, *, read_text: ReadText = storage.read_text,
                          write_text: WriteText = storage.write_text_atomic) -> str:
    """Read MODEL_DIR/history.csv and write MODEL_DIR/report.html; returns the report's path."""
    text = read_optional(read_text, storage.join(model_dir, HISTORY_FILE))
    rows = parse_history(text) if text is not None else []
    report = storage.join(model_dir, REPORT_FILE)
    name = model_dir.rstrip("/").split("/")[-1]
    write_text(report, render_training(rows, f"Training run: {name}", subtitle=model_dir))
    return report
