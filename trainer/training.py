"""One training run: distribution strategy, restart state, input pipelines, model and `fit`."""
from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

from common import storage
from common.progress import enabled as progress_enabled
from model.config import CONFIG_FILE, Config
from reports.training import HISTORY_FILE
from trainer import callbacks, data, network, paths, validation
from trainer.history import trim_history

RESTART_SECTIONS = ("audio", "stft", "network")  # what a restart must share with the backed-up run


class RestartError(ValueError):
    """The checkpoint folder holds a run this config cannot continue."""


@dataclasses.dataclass
class TrainedRun:
    unet: keras.Model
    monitor: str | None  # "val_sdr", or None without a validation split
    chief: bool
    mode: str = "max"  # the monitor is better when higher (SDR) or lower ("min", a loss)
    precision: str = "float32"


def train(data_dir: str, config: Config, dirs: paths.RunDirs, strategy: str = "default",
          patience: int = 5, precision: str = "auto") -> TrainedRun:
    """Train (or continue training) up to config.training.epochs; returns the U-Net and the run's facts.
    `precision`: see trainer/network.py ("auto": mixed_float16 on a GPU, float32 otherwise)."""
    distribution = make_strategy(strategy)
    precision = network.resolve_precision(precision)
    gpus = len(tf.config.list_physical_devices("GPU"))
    print(f"training: {distribution.num_replicas_in_sync} replica(s), {gpus} GPU(s) visible, {precision}")
    if precision == "mixed_float16" and not gpus:
        print("mixed_float16 without a GPU: float16 convolutions are slow on CPUs (--precision float32)")
    chief = is_chief()
    initial_epoch = callbacks.resume_epoch(dirs.checkpoint_dir)
    prepare_checkpoint_dir(config, dirs.checkpoint_dir, initial_epoch, chief)
    # a restart must not replay the first epochs' crops and mixes
    keras.utils.set_random_seed(config.training.seed + initial_epoch)
    train_data = data.training_dataset(data_dir, config)
    valid_data = data.validation_dataset(data_dir, config)
    valid_crops = data.validation_crops(data_dir, config)
    with distribution.scope():
        model, unet = network.build_training_model(config, precision)
        network.compile_model(model, config, config.training.epochs * config.training.steps_per_epoch, precision)
    monitor = validation.MONITOR if valid_crops is not None else None
    first = [validation.ValidationSdr(unet, valid_crops, config, distribution)] if valid_crops is not None else []
    model.fit(train_data, validation_data=valid_data, epochs=config.training.epochs,
              steps_per_epoch=config.training.steps_per_epoch, shuffle=False,
              verbose=1 if progress_enabled() else 2,  # a live bar on a terminal, a line per epoch in logs
              callbacks=callbacks.build_callbacks(unet, dirs.checkpoint_dir, dirs.tensorboard_dir, monitor,
                                                  patience, chief, first=first, mode="max"))
    return TrainedRun(unet, monitor, chief, mode="max", precision=precision)


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3.15's fit hands it across workers.

    Keras reduces the first (inputs, {head: target}) batch in one call to build the model, which TF
    2.21's collective reduce cannot take whole ("Attempt to convert a value (PerReplica ...)"); and it
    averages each step's scalar losses with axis=0, which a scalar has not. Here every leaf is reduced on
    its own, scalars over the replicas only. Every worker reduces the same leaves in the same order, so
    the collectives still pair up."""

    def reduce(self, reduce_op, value, axis):
        def one(leaf):
            scalar = self.experimental_local_results(leaf)[0].shape.rank == 0
            return super(_MultiWorkerStrategy, self).reduce(reduce_op, leaf, None if scalar else axis)

        return tf.nest.map_structure(one, value)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """"mirrored": every local GPU; "multi_worker": the workers TF_CONFIG names (Vertex AI sets it for a
    pool of several replicas), each with its local devices; else the default (one device)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return _MultiWorkerStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """The one worker that writes checkpoints, logs and the export (TF_CONFIG's chief, or worker 0)."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cluster.get("task", {})
    kind = task.get("type")
    if kind in (None, "chief", "master"):
        return True
    has_chief = bool({"chief", "master"} & set(cluster.get("cluster", {})))
    return kind == "worker" and task.get("index", 0) == 0 and not has_chief


def prepare_checkpoint_dir(config: Config, checkpoint_dir: str, initial_epoch: int, chief: bool) -> None:
    """Refuse to restart with another network; drop history rows of epochs the backup has not kept."""
    config_path = storage.join(checkpoint_dir, CONFIG_FILE)
    if initial_epoch and storage.exists(config_path):
        with storage.open_file(config_path) as handle:
            saved = Config.from_json(handle.read())
        changed = [name for name in RESTART_SECTIONS if getattr(saved, name) != getattr(config, name)]
        if changed:
            raise RestartError(f"{checkpoint_dir} holds a run with another {', '.join(changed)} config: "
                               "use a new --checkpoint_dir (or delete it) to start over")
    if chief:
        trim_history(storage.join(checkpoint_dir, HISTORY_FILE), initial_epoch)
        with storage.open_file(config_path, "w") as handle:
            handle.write(config.to_json() + "\n")
