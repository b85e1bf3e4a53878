"""After training: export the best epoch's U-Net (or the mean of the last epochs') with its history, curves and
MODEL_CARD.md.

The exported folder (see model/export.py) gains:
  history.csv           one row per epoch, losses per head
  training_curves.png   training and validation loss per head
  MODEL_CARD.md
"""
from __future__ import annotations

import tempfile
from typing import Any

from common import storage
from model.config import Config
from model.export import export_model
from reports.training import HISTORY_FILE, write_training_report
from trainer import callbacks, network, paths
from trainer.history import CURVES_FILE, best_row, plot_history, read_history, write_history
from trainer.model_card import render_model_card
from trainer.training import TrainedRun

HYPERTUNE_METRIC = "val_sdr"  # the tuning job's metric tag: maximise it


def publish(run: TrainedRun, config: Config, dirs: paths.RunDirs, data: dict[str, Any]) -> str:
    """Export to dirs.model_dir (staged locally when it is remote); returns the model folder."""
    rows = read_history(storage.join(dirs.checkpoint_dir, HISTORY_FILE))
    best = best_row(rows, run.monitor, run.mode) if run.monitor else (rows[-1] if rows else None)
    last = rows[-config.training.average_epochs:] if config.training.average_epochs else []
    saved = {epoch: callbacks.epoch_weights_path(dirs.checkpoint_dir, epoch)
             for epoch in (int(row["epoch"]) + 1 for row in last)}
    averaged = [epoch for epoch, path in saved.items() if storage.exists(path)]
    if averaged:
        run.unet.set_weights(mean_weights(run.unet, [saved[epoch] for epoch in averaged]))
    elif best:
        weights = callbacks.epoch_weights_path(dirs.checkpoint_dir, int(best["epoch"]) + 1)
        if storage.exists(weights):
            run.unet.load_weights(weights)
        else:
            print(f"{weights} is missing: exporting the last epoch's weights instead")
    local = dirs.model_dir if not storage.is_remote(dirs.model_dir) else storage.join(tempfile.mkdtemp(), "model")
    export_model(network.float32_copy(run.unet, config), config, local)  # a mixed-precision run too
    _write_extras(local, rows, config, data, best, averaged)
    if local != dirs.model_dir:
        storage.copy_tree(local, dirs.model_dir)
    if best is not None and run.monitor in best:
        report_hypertune(best[run.monitor], len(rows))
    exported = f"the mean of epochs {averaged[0]}-{averaged[-1]}" if averaged else \
        f"epoch {int(best['epoch']) + 1 if best else '?'}"
    print(f"exported {exported} of {len(rows)} to {dirs.model_dir}")
    return dirs.model_dir


def mean_weights(unet: Any, paths: list[str]) -> list[Any]:
    """The element-wise mean of the U-Net weight files at `paths` (batch-norm statistics included). Averaging
    the last epochs of a decaying learning rate needs no pick by the validation proxy, which moves by up to
    0.7 dB from one epoch to the next (docs/model.md). Loads each file into `unet` in turn."""
    total = None
    for path in paths:
        unet.load_weights(path)
        weights = unet.get_weights()
        total = weights if total is None else [sum_ + value for sum_, value in zip(total, weights)]
    return [sum_ / len(paths) for sum_ in total]


def _write_extras(model_dir: str, rows: list[dict[str, float]], config: Config, data: dict[str, Any],
                  best: dict[str, float] | None, averaged: list[int]) -> None:
    if rows:
        write_history(storage.join(model_dir, HISTORY_FILE), rows)
        plot_history(rows, config.network.heads, storage.join(model_dir, CURVES_FILE))
        write_training_report(model_dir)
    with storage.open_file(storage.join(model_dir, "MODEL_CARD.md"), "w") as handle:
        handle.write(render_model_card(config, data, best, len(rows), averaged))


def report_hypertune(value: float, step: int) -> bool:
    """Report to Vertex AI hyperparameter tuning when `cloudml-hypertune` is installed (it is optional)."""
    try:
        import hypertune
    except ImportError:
        return False
    hypertune.HyperTune().report_hyperparameter_tuning_metric(
        hyperparameter_metric_tag=HYPERTUNE_METRIC, metric_value=float(value), global_step=step)
    return True
