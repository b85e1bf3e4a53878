"""Streaming separation of whole songs with an exported mask model.

The network only ever sees fixed-size magnitude patches; here the song's STFT is taken frame by frame
as it streams in, cut into overlapping patches of frames (model.chunking), masked in batches, the
patches' masks cross-faded, extended to the full band of the input's STFT, applied and inverted once.
Audio streams through in blocks, so memory is bounded whatever the song's length, and the result does
not depend on the block size. The residual is the mixture minus the heads at the input's rate, so the
stems always add up to the mixture.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soxr

from model.batching import CoalescingMaskFn
from model.chunking import SpectralStream
from model.config import RESIDUAL, Config
from model.frontend import FrontEnd
from model.model_dir import EXPORT_DIR, check_graph, check_model_dir

MaskFn = Callable[[np.ndarray], dict[str, np.ndarray]]
ROWS_PER_CALL = 4  # the most batches (of separator.batch_size patches) merged across songs in one call
THREADS_ENV = "ATSEP_TF_THREADS"  # "INTRA,INTER": TensorFlow's op thread pools in this process


def tf_threads() -> tuple[int, int]:
    """$ATSEP_TF_THREADS, else every core this process may use within an op and 2 ops at once: one process
    per machine serves all its songs (infra/flex/launcher.py), and the U-Net is a chain of ops."""
    intra, _, inter = os.environ.get(THREADS_ENV, "").partition(",")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(intra or cores), int(inter or min(2, cores))


class Separator:
    """Separates [samples, channels] waveforms at any rate and channel count into named stems."""

    def __init__(self, config: Config, mask_fn: MaskFn, version: str = "unversioned"):
        self.config = config
        self.mask_fn = mask_fn
        self.version = version

    @classmethod
    def load(cls, model_dir: str | Path) -> "Separator":
        """Load an exported model folder (config.json + saved_model/); nothing in it is executed as Python.

        The returned separator is thread-safe; threads that use it at once share network calls."""
        import tensorflow as tf

        model_dir = Path(model_dir)
        config = check_model_dir(model_dir)  # refuses foreign folders before TensorFlow reads anything
        check_graph(model_dir)  # and graphs that could touch files, run Python or reach the network
        intra, inter = tf_threads()
        try:  # only before TensorFlow's first op in this process; later the pools it made stay
            tf.config.threading.set_intra_op_parallelism_threads(intra)
            tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError:
            pass
        loaded = tf.saved_model.load(str(model_dir / EXPORT_DIR))
        serve = loaded.signatures["serving_default"]

        def mask_fn(magnitude: np.ndarray) -> dict[str, np.ndarray]:
            outputs = serve(magnitude=tf.constant(magnitude, dtype=tf.float32))
            return {head: outputs[head].numpy() for head in config.network.heads}

        # the first call sets up the function's kernels and buffers (0.3 to 0.7 s here): pay it at start-up,
        # not in the first song
        mask_fn(np.zeros((config.separator.batch_size, config.network.patch_frames, config.stft.bins,
                          config.audio.channels), dtype=np.float32))
        version_file = model_dir / "VERSION"
        version = version_file.read_text().strip() if version_file.exists() else model_dir.name
        batched = CoalescingMaskFn(mask_fn, max_rows=ROWS_PER_CALL * config.separator.batch_size)
        return cls(config, batched, version)

    @property
    def stem_names(self) -> tuple[str, ...]:
        return (*self.config.network.heads, RESIDUAL)

    def separate(self, mix: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate mix [samples, channels] at sample_rate into stems of the same shape and rate."""
        if mix.ndim != 2 or mix.shape[0] == 0:
            raise ValueError(f"expected a non-empty [samples, channels] waveform, got shape {mix.shape}")
        parts = [stems for _, stems in self.stream([mix], sample_rate)]
        return {name: np.concatenate([part[name] for part in parts]) for name in self.stem_names}

    def stream(self, blocks: Iterable[np.ndarray], sample_rate: int
               ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Separate a stream of mix blocks [samples, channels]; yields (mix, stems) blocks in order.

        Output blocks lag the input by a few segments and have their own sizes; together they hold
        exactly as many samples as went in."""
        aligner, groups = None, []
        for block in blocks:
            if aligner is None:
                aligner = _Aligner(self.config.network.heads, block.shape[1])
                groups = [_GroupStream(self, picked, sample_rate) for picked in self._groups(block.shape[1])]
            aligner.add_mix(block)
            aligner.add_heads([group.push(block) for group in groups], [group.picked for group in groups])
            yield from aligner.take()
        if aligner is None:
            raise ValueError("no audio to separate")
        aligner.add_heads([group.finish() for group in groups], [group.picked for group in groups])
        yield from aligner.take(final=True)

    def _groups(self, channels: int) -> list[list[int]]:
        """Input channels in groups of the model's width; a short last group repeats its last channel."""
        width = self.config.audio.channels
        return [[min(first + offset, channels - 1) for offset in range(width)]
                for first in range(0, channels, width)]


class _GroupStream:
    """One group of `audio.channels` input channels: resample to the front end's processing rate, separate,
    resample back. Streaming soxr resamplers give the same samples as resampling the whole song."""

    def __init__(self, separator: Separator, picked: list[int], sample_rate: int):
        config = separator.config
        self.picked, self.width = picked, len(picked)
        front = FrontEnd.at(config, sample_rate)
        self.down = _Resampler(sample_rate, front.rate, self.width)
        self.up = {head: _Resampler(front.rate, sample_rate, self.width) for head in config.network.heads}
        self.spectral = SpectralStream(config.network.heads, front, config.network.patch_frames,
                                       config.separator.overlap, config.separator.batch_size, separator.mask_fn,
                                       config.separator.wiener_iterations)

    def push(self, block: np.ndarray) -> dict[str, np.ndarray]:
        heads = self.spectral.push(self.down(block[:, self.picked]))
        empty = np.zeros((0, self.width), np.float32)
        return {head: resample(heads.get(head, empty)) for head, resample in self.up.items()}

    def finish(self) -> dict[str, np.ndarray]:
        tail = self.spectral.push(self.down(np.zeros((0, self.width), np.float32), last=True))
        rest = self.spectral.finish()
        out = {}
        for head, resample in self.up.items():
            parts = [part[head] for part in (tail, rest) if head in part]
            waveform = np.concatenate(parts) if parts else np.zeros((0, self.width), np.float32)
            out[head] = resample(waveform, last=True)
        return out


class _Resampler:
    """Streaming band-limited resampling of [samples, channels] (soxr HQ); a no-op at equal rates."""

    def __init__(self, rate_in: int, rate_out: int, channels: int):
        self.stream = None if rate_in == rate_out else soxr.ResampleStream(
            rate_in, rate_out, channels, dtype="float32", quality="HQ")

    def __call__(self, waveform: np.ndarray, last: bool = False) -> np.ndarray:
        if self.stream is None:
            return waveform
        return self.stream.resample_chunk(np.ascontiguousarray(waveform, dtype=np.float32), last=last)


class _Aligner:
    """Pairs the heads (which lag) with the mix samples they belong to; residual = mix - sum(heads)."""

    def __init__(self, heads: tuple[str, ...], channels: int):
        self.names, self.channels = heads, channels
        self.mix: list[np.ndarray] = []
        self.heads: dict[str, list[np.ndarray]] = {head: [] for head in heads}

    def add_mix(self, block: np.ndarray) -> None:
        self.mix.append(block.astype(np.float32, copy=False))

    def add_heads(self, outputs: list[dict[str, np.ndarray]], picks: list[list[int]]) -> None:
        """Scatter each group's output channels back to the input's channel positions."""
        for head in self.names:
            length = min(output[head].shape[0] for output in outputs)
            waveform = np.zeros((length, self.channels), dtype=np.float32)
            for output, picked in zip(outputs, picks):
                for position, channel in enumerate(picked):
                    if channel not in picked[:position]:  # a repeated channel: keep its first copy
                        waveform[:, channel] = output[head][:length, position]
            self.heads[head].append(waveform)

    def take(self, final: bool = False) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        mix = _joined(self.mix, self.channels)
        heads = {head: _joined(parts, self.channels) for head, parts in self.heads.items()}
        if final:  # resampling rounds: the heads end up a sample or two short or long
            heads = {head: _fit(waveform, mix.shape[0]) for head, waveform in heads.items()}
        count = min(mix.shape[0], *(waveform.shape[0] for waveform in heads.values()))
        self.mix = [mix[count:]]
        self.heads = {head: [waveform[count:]] for head, waveform in heads.items()}
        if count == 0:
            return
        out = {head: waveform[:count] for head, waveform in heads.items()}
        yield mix[:count], {**out, RESIDUAL: mix[:count] - sum(out.values())}


def _joined(parts: list[np.ndarray], channels: int) -> np.ndarray:
    parts = [part for part in parts if part.shape[0]]
    if not parts:
        return np.zeros((0, channels), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _fit(waveform: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad [samples, channels] to exactly `length` samples (resampling rounds)."""
    if waveform.shape[0] >= length:
        return waveform[:length]
    return np.pad(waveform, ((0, length - waveform.shape[0]), (0, 0)))
