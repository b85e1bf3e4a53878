"""The training history (Keras CSVLogger's file): trimming on resume, the best epoch, the curves plot.

Rows are {"epoch": 0-based epoch, "loss": ..., "vocals_loss": ..., "val_vocals_loss": ..., ...}.
"""
from __future__ import annotations

import csv
import io
import math

from common import storage
from model.config import RESIDUAL
from reports.training import parse_history

CURVES_FILE = "training_curves.png"


def read_history(path: str) -> list[dict[str, float]]:
    """Rows by epoch; an epoch logged twice (killed after logging, before its backup) keeps its last row."""
    return parse_history(storage.read_text(path)) if storage.exists(path) else []


def trim_history(path: str, epochs: int) -> None:
    """Keep only the rows of the first `epochs` epochs: the ones the restored state has completed."""
    rows = [row for row in read_history(path) if row["epoch"] < epochs]
    if rows:
        write_history(path, rows)
    else:
        storage.remove(path)


def write_history(path: str, rows: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    with storage.open_file(path, "w") as handle:
        handle.write(buffer.getvalue())


def best_row(rows: list[dict[str, float]], monitor: str, mode: str = "min") -> dict[str, float] | None:
    """The row with the lowest (mode "min") or highest ("max") `monitor`; the last row when no row has it."""
    scored = [row for row in rows if math.isfinite(row.get(monitor, math.nan))]
    if scored:
        pick = max if mode == "max" else min
        return pick(scored, key=lambda row: row[monitor])
    return rows[-1] if rows else None


def plot_history(rows: list[dict[str, float]], heads: tuple[str, ...], out_path: str) -> None:
    """One panel per head (and the residual, when it was trained), one for the total: training and validation
    loss per epoch; then validation SDR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    trained = (*heads, RESIDUAL) if any(f"{RESIDUAL}_loss" in row for row in rows) else heads
    names = [f"{stem}_loss" for stem in trained] + ["loss"]
    sdr_panel = any("val_sdr" in row for row in rows)
    figure, axes = plt.subplots(1, len(names) + sdr_panel, figsize=(4 * (len(names) + sdr_panel), 3.2),
                                squeeze=False)
    if sdr_panel:
        _plot_sdr(axes[0][-1], rows, heads)
    epochs = [row["epoch"] + 1 for row in rows]
    for axis, name in zip(axes[0], names):
        for key, label in ((name, "train"), (f"val_{name}", "valid")):
            points = [(epoch, row[key]) for epoch, row in zip(epochs, rows) if key in row]
            if points:
                axis.plot(*zip(*points), marker="o", label=label)
        title = name.replace("_", " ") if name != "loss" else "total loss"
        axis.set(title=title, xlabel="epoch", ylabel="loss")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axis.get_legend_handles_labels()[0]:  # a history without this loss leaves the panel empty
            axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    with storage.open_file(out_path, "wb") as handle:
        handle.write(buffer.getvalue())


def _plot_sdr(axis, rows: list[dict[str, float]], heads: tuple[str, ...]) -> None:
    """Validation SDR per head (the proxy of trainer/validation.py), higher is better."""
    from matplotlib.ticker import MaxNLocator

    for key in [f"val_sdr_{head}" for head in heads] + ["val_sdr"]:
        points = [(row["epoch"] + 1, row[key]) for row in rows if key in row]
        if points:
            axis.plot(*zip(*points), marker="o", label=key.replace("val_sdr_", "") if key != "val_sdr" else "mean")
    axis.set(title="validation SDR (proxy)", xlabel="epoch", ylabel="dB")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend()
    axis.grid(alpha=0.3)
