"""Keras callbacks of a training run: resumable backups, per-epoch weights, history, logs, early stop.

<checkpoint_dir>/backup/                 Keras BackupAndRestore: model + optimizer state, last epoch done
<checkpoint_dir>/epoch-NNN.weights.h5    the U-Net's weights after epoch NNN (1-based), to export the best
<checkpoint_dir>/history.csv             one row per epoch (appended across restarts), with epoch_s
"""
from __future__ import annotations

import importlib.util
import json
import tempfile
import time

import keras

from common import storage
from reports.training import HISTORY_FILE

BACKUP_DIR = "backup"


def resume_epoch(checkpoint_dir: str) -> int:
    """Epochs completed by the run backed up in checkpoint_dir (0 for a fresh run)."""
    path = storage.join(checkpoint_dir, BACKUP_DIR, "training_metadata.json")
    if not storage.exists(path):
        return 0
    with storage.open_file(path) as handle:
        return int(json.load(handle).get("epoch", 0))


def epoch_weights_path(checkpoint_dir: str, epoch: int) -> str:
    return storage.join(checkpoint_dir, f"epoch-{epoch:03d}.weights.h5")


class EpochWeights(keras.callbacks.Callback):
    """Saves the U-Net's weights (not the optimizer's) after every epoch."""

    def __init__(self, unet: keras.Model, checkpoint_dir: str):
        super().__init__()
        self.unet = unet
        self.checkpoint_dir = checkpoint_dir

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.unet.save_weights(epoch_weights_path(self.checkpoint_dir, epoch + 1))


class EpochTime(keras.callbacks.Callback):
    """Logs epoch_s, the wall time of the epoch (training, validation and validation SDR)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_s"] = round(time.monotonic() - self.started, 1)


def build_callbacks(unet: keras.Model, checkpoint_dir: str, tensorboard_dir: str, monitor: str | None,
                    patience: int, chief: bool = True, first: list[keras.callbacks.Callback] = (),
                    mode: str = "min") -> list[keras.callbacks.Callback]:
    """Callbacks in the order they must run at an epoch's end: `first` (metrics added to the logs,
    e.g. validation SDR) before the loggers, the backup last, so a restart never skips an epoch whose
    weights or history row were not written. `mode`: whether `monitor` is better "min" or "max"."""
    callbacks = [*first, EpochTime()]
    if chief:
        callbacks += [EpochWeights(unet, checkpoint_dir),
                      keras.callbacks.CSVLogger(storage.join(checkpoint_dir, HISTORY_FILE), append=True)]
        if importlib.util.find_spec("tensorboard"):  # tf.summary needs the package; TF 2.21 no longer pulls it in
            callbacks.append(keras.callbacks.TensorBoard(tensorboard_dir, write_graph=False))
        else:
            print("tensorboard is not installed: no TensorBoard logs")
    if monitor:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience, verbose=1))
    callbacks.append(keras.callbacks.BackupAndRestore(_backup_dir(checkpoint_dir, chief), delete_checkpoint=False))
    return callbacks


def _backup_dir(checkpoint_dir: str, chief: bool) -> str:
    """The chief's backup folder; other workers restore from a private copy of it and write there."""
    backup = storage.join(checkpoint_dir, BACKUP_DIR)
    if chief:
        return backup
    private = storage.join(tempfile.mkdtemp(prefix="backup-"), BACKUP_DIR)
    if storage.exists(backup):
        storage.copy_tree(backup, private)
    return private
