"""Validation SDR each epoch: a cheap proxy of `atsep evaluate`, computed in TensorFlow.

On every fixed validation crop (the crops val_loss is computed on; real mixtures, never remixed) the
U-Net's masks are applied to the mixture's complex STFT at the model's rate, inverted, and compared
with the true stem waveform:

    SDR = 10 log10(sum s^2 / sum (s - s_hat)^2)        (the MDX challenge's "global" SDR)

per crop and head, channels pooled; crops whose reference is (near) silent are skipped, as BSSEval
skips silent frames. Logged per epoch: val_sdr_<head> (median over crops, dB) and val_sdr (their mean
over heads), which selects the exported epoch and drives early stopping. It is not BSSEval v4: no
distortion filters, model rate (not full band) and ~3 s crops, so figures differ from `atsep evaluate`.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from model.config import Config, StftConfig
from model.unet import complex_stft
from trainer.data import STEMS

MONITOR = "val_sdr"
SILENT_POWER = 1e-6  # mean power per sample below which a crop's reference counts as silent (-60 dBFS)


def inverse_stft(spec: tf.Tensor, stft: StftConfig, samples: int) -> tf.Tensor:
    """Inverse of `model.unet.complex_stft` (windowed overlap-add divided by the summed squared windows, as
    librosa does, so the edges are exact too): -> [batch, samples, channels]."""
    window = tf.signal.hann_window(stft.n_fft, dtype=tf.float32)
    frames = tf.signal.irfft(spec, fft_length=[stft.n_fft]) * window
    signal = tf.signal.overlap_and_add(frames, stft.hop)
    norm = tf.signal.overlap_and_add(tf.ones_like(frames[:1, :1]) * tf.square(window), stft.hop)
    signal = signal / tf.maximum(norm, 1e-8)
    pad = stft.n_fft // 2
    return tf.transpose(signal[..., pad:pad + samples], [0, 2, 1])


def separate_crops(unet: keras.Model, mix: tf.Tensor, config: Config) -> dict[str, tf.Tensor]:
    """Mask-and-invert each head for a batch of mix crops [batch, samples, channels]."""
    spec = complex_stft(mix, config.stft)  # [batch, channels, frames, bins + 1]
    magnitude = tf.transpose(tf.abs(spec)[..., : config.stft.bins], [0, 2, 3, 1])
    masks = unet(magnitude, training=False)
    estimates = {}
    for head in config.network.heads:
        mask = tf.transpose(masks[head], [0, 3, 1, 2])  # -> [batch, channels, frames, bins]
        # the network leaves out the top (Nyquist) bin: repeat its highest bin's mask there
        mask = tf.concat([mask, mask[..., -1:]], axis=-1)
        estimates[head] = inverse_stft(spec * tf.cast(mask, spec.dtype), config.stft, tf.shape(mix)[1])
    return estimates


def sdr(reference: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Global SDR in dB per crop of [batch, samples, channels]; NaN where the reference is silent."""
    signal = tf.reduce_sum(tf.square(reference), axis=[1, 2])
    error = tf.reduce_sum(tf.square(reference - estimate), axis=[1, 2])
    values = 10.0 * (tf.math.log(signal + 1e-9) - tf.math.log(error + 1e-9)) / tf.math.log(10.0)
    samples = tf.cast(tf.shape(reference)[1] * tf.shape(reference)[2], signal.dtype)
    return tf.where(signal / samples > SILENT_POWER, values, tf.fill(tf.shape(values), np.nan))


def crop_sdrs(unet: keras.Model, crops: tf.data.Dataset, config: Config) -> dict[str, np.ndarray]:
    """SDR of every validation crop per head; crops yield [batch, stems, samples, channels] (STEMS order)."""

    @tf.function
    def batch_sdrs(stems: tf.Tensor) -> dict[str, tf.Tensor]:
        estimates = separate_crops(unet, stems[:, 0], config)
        return {head: sdr(stems[:, STEMS.index(head)], estimates[head]) for head in config.network.heads}

    scores = {head: [] for head in config.network.heads}
    for stems in crops:
        for head, values in batch_sdrs(stems).items():
            scores[head].append(values.numpy())
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
