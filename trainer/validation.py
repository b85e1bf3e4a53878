"""Validation SDR each epoch: a proxy of `atsep evaluate` that goes through the separator's own code.

Every fixed validation crop (the crops val_loss is computed on: real mixtures, never remixed, at the
records' rate, which for MUSDB is the songs' own 44.1 kHz) is separated as the separator separates a
song (`Separator.separate`: the front end, the U-Net's masks, their extension over the whole band,
the inverse STFT) and compared with the true stem, full band:

    SDR = 10 log10(sum s^2 / sum (s - s_hat)^2)        (the MDX challenge's "global" SDR)

per crop and head, channels pooled; crops whose reference is (near) silent are skipped, as BSSEval
skips silent frames. Logged per epoch: val_sdr_<head> (median over crops, dB) and val_sdr (their mean
over heads), which selects the exported epoch and drives early stopping. It is not BSSEval v4 (no
distortion filters, ~3 s crops, no cross-fades), so figures differ from `atsep evaluate`; docs/model.md
sets the two side by side over epochs.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from model.config import Config
from model.frontend import records_rate
from model.separator import MaskFn, Separator
from trainer.data import STEMS

MONITOR = "val_sdr"
SILENT_POWER = 1e-6  # mean power per sample below which a crop's reference counts as silent (-60 dBFS)


def mask_fn(unet: keras.Model) -> MaskFn:
    """The U-Net as the separator calls a network: magnitude batch -> {head: masks} (numpy)."""

    @tf.function(reduce_retracing=True)
    def masks(magnitude: tf.Tensor) -> dict[str, tf.Tensor]:
        return unet(magnitude, training=False)

    return lambda magnitude: {head: mask.numpy() for head, mask in masks(tf.constant(magnitude)).items()}


def separate_crops(separator: Separator, mix: np.ndarray) -> dict[str, np.ndarray]:
    """Each head of a batch of mix crops [batch, samples, channels] at the records' rate, full band: every
    crop separated as a song of its own."""
    rate = records_rate(separator.config)
    estimates = [separator.separate(crop, rate) for crop in mix]
    return {head: np.stack([estimate[head] for estimate in estimates]) for head in separator.config.network.heads}


def sdr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Global SDR in dB per crop of [batch, samples, channels]; NaN where the reference is silent."""
    signal = np.sum(np.square(reference, dtype=np.float64), axis=(1, 2))
    error = np.sum(np.square(reference - estimate, dtype=np.float64), axis=(1, 2))
    values = 10.0 * (np.log10(signal + 1e-9) - np.log10(error + 1e-9))
    return np.where(signal / (reference.shape[1] * reference.shape[2]) > SILENT_POWER, values, np.nan)


def crop_sdrs(unet: keras.Model, crops: tf.data.Dataset, config: Config) -> dict[str, np.ndarray]:
    """SDR of every validation crop per head; crops yield [batch, stems, samples, channels] (STEMS order)."""
    separator = Separator(config, mask_fn(unet))
    scores = {head: [] for head in config.network.heads}
    for stems in crops:
        stems = stems.numpy()
        for head, estimate in separate_crops(separator, stems[:, 0]).items():
            scores[head].append(sdr(stems[:, STEMS.index(head)], estimate))
    return {head: np.concatenate(values) if values else np.zeros(0) for head, values in scores.items()}


def summarise(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """{val_sdr_<head>: median over scorable crops, val_sdr: mean of those medians}."""
    medians = {f"{MONITOR}_{head}": float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
               for head, values in scores.items()}
    finite = [value for value in medians.values() if np.isfinite(value)]
    return {**medians, MONITOR: float(np.mean(finite)) if finite else float("nan")}


class ValidationSdr(keras.callbacks.Callback):
    """Adds val_sdr and val_sdr_<head> to the epoch's logs; must run before the loggers and early stopping.

    With several workers (MultiWorkerMirroredStrategy) each scores the crops itself and the figures are
    averaged across workers, so every worker's early stopping decides alike (their own figures differ in
    the last digits, and one worker stopping alone would leave the others waiting on it)."""

    def __init__(self, unet: keras.Model, crops: tf.data.Dataset, config: Config,
                 strategy: tf.distribute.Strategy | None = None):
        super().__init__()
        self.unet = unet
        self.crops = crops
        self.config = config
        self.strategy = strategy

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(self._across_workers(summarise(crop_sdrs(self.unet, self.crops, self.config))))

    def _across_workers(self, figures: dict[str, float]) -> dict[str, float]:
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return figures
        names = sorted(figures)
        mean = self.strategy.reduce("MEAN", tf.constant([figures[name] for name in names], tf.float32), axis=None)
        return {name: float(value) for name, value in zip(names, mean.numpy())}
