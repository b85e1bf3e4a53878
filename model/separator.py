"""Chunked separation of whole songs with an exported mask model.

The network only ever sees fixed-size magnitude patches; here the song is cut into overlapping
time segments, masks are computed in batches, extended to the full band of the input's STFT,
applied, inverted and cross-faded back together. The residual is the mixture minus the heads,
so the stems always add up to the mixture.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from model import dsp, filtering
from model.config import RESIDUAL, Config

MaskFn = Callable[[np.ndarray], dict[str, np.ndarray]]
EXPORT_DIR = "saved_model"


class Separator:
    """Separates [samples, channels] waveforms at any rate and channel count into named stems."""

    def __init__(self, config: Config, mask_fn: MaskFn, version: str = "unversioned"):
        self.config = config
        self.mask_fn = mask_fn
        self.version = version

    @classmethod
    def load(cls, model_dir: str | Path) -> "Separator":
        """Load an exported model folder (config.json + saved_model/); nothing in it is executed as Python."""
        import tensorflow as tf

        model_dir = Path(model_dir)
        config = Config.load(model_dir)
        loaded = tf.saved_model.load(str(model_dir / EXPORT_DIR))
        serve = loaded.signatures["serving_default"]

        def mask_fn(magnitude: np.ndarray) -> dict[str, np.ndarray]:
            outputs = serve(magnitude=tf.constant(magnitude, dtype=tf.float32))
            return {head: outputs[head].numpy() for head in config.network.heads}

        version_file = model_dir / "VERSION"
        version = version_file.read_text().strip() if version_file.exists() else model_dir.name
        return cls(config, mask_fn, version)

    @property
    def stem_names(self) -> tuple[str, ...]:
        return (*self.config.network.heads, RESIDUAL)

    def separate(self, mix: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate mix [samples, channels] at sample_rate into stems of the same shape and rate."""
        if mix.ndim != 2 or mix.shape[0] == 0:
            raise ValueError(f"expected a non-empty [samples, channels] waveform, got shape {mix.shape}")
        heads = {head: np.zeros_like(mix, dtype=np.float32) for head in self.config.network.heads}
        width = self.config.audio.channels
        for first in range(0, mix.shape[1], width):
            picked = [min(first + offset, mix.shape[1] - 1) for offset in range(width)]
            group = self._separate_group(mix[:, picked], sample_rate)
            real = sorted(set(picked))
            for head, waveform in group.items():
                heads[head][:, real] = waveform[:, [picked.index(c) for c in real]]
        residual = mix.astype(np.float32) - sum(heads.values())
        return {**heads, RESIDUAL: residual}

    def _separate_group(self, mix: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate exactly `audio.channels` channels: resample to the processing rate, chunk, restore."""
        model_rate = self.config.audio.sample_rate
        factor = dsp.processing_factor(sample_rate, model_rate)
        rate = factor * model_rate
        audio = dsp.resample(mix, sample_rate, rate)
        stems = self._separate_chunked(audio, factor)
        return {head: _fit(dsp.resample(waveform, rate, sample_rate), mix.shape[0])
                for head, waveform in stems.items()}

    def _separate_chunked(self, audio: np.ndarray, factor: int) -> dict[str, np.ndarray]:
        stft = self.config.stft.scaled(factor)
        segment = (self.config.network.patch_frames - 1) * stft.hop
        overlap = self.config.separator.overlap
        starts = dsp.chunk_starts(audio.shape[0], segment, overlap)
        fade = int(segment * overlap)
        out = {head: np.zeros_like(audio) for head in self.config.network.heads}
        total = np.zeros((audio.shape[0], 1), dtype=np.float32)
        batch = self.config.separator.batch_size
        for first in range(0, len(starts), batch):
            chunk_starts = starts[first:first + batch]
            chunks = [audio[start:start + segment] for start in chunk_starts]
            for start, stems in zip(chunk_starts, self._separate_batch(chunks, stft, factor)):
                length = next(iter(stems.values())).shape[0]
                weight = dsp.crossfade_weight(length, fade, fade_in=start > 0,
                                              fade_out=start + length < audio.shape[0])[:, None]
                for head, waveform in stems.items():
                    out[head][start:start + length] += waveform * weight
                total[start:start + length] += weight
        return {head: waveform / total for head, waveform in out.items()}

    def _separate_batch(self, chunks: list[np.ndarray], stft, factor: int) -> list[dict[str, np.ndarray]]:
        """Mask a batch of chunks in one network call; chunks shorter than a patch are zero-padded."""
        specs = [dsp.stft(chunk, stft.n_fft, stft.hop) for chunk in chunks]
        frames = _round_up(max(spec.shape[0] for spec in specs), self.config.network.frame_multiple)
        bins = self.config.stft.bins
        magnitude = np.zeros((len(specs), frames, bins, specs[0].shape[2]), dtype=np.float32)
        for index, spec in enumerate(specs):
            magnitude[index, : spec.shape[0]] = np.abs(spec[:, :bins]) / factor
        masks = self.mask_fn(magnitude)
        results = []
        for index, (chunk, spec) in enumerate(zip(chunks, specs)):
            head_masks = {head: mask[index, : spec.shape[0]] for head, mask in masks.items()}
            head_specs = filtering.masked_specs(spec, head_masks)
            results.append({head: dsp.istft(head_spec, stft.n_fft, stft.hop, chunk.shape[0])
                            for head, head_spec in head_specs.items()})
        return results


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _fit(waveform: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad [samples, channels] to exactly `length` samples (resampling rounds)."""
    if waveform.shape[0] >= length:
        return waveform[:length]
    return np.pad(waveform, ((0, length - waveform.shape[0]), (0, 0)))
