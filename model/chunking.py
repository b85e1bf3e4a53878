"""Streaming chunked overlap-add: audio goes in block by block, separated heads come out block by block.

Segments of `segment` samples start every `stride` samples (0, stride, 2 * stride, ...; a whole number
of STFT hops, so that away from its edges a segment's spectrogram is the whole song's), whatever the
blocks, so the output does not depend on how the audio was cut into blocks; the last segment ends at
the end of the audio and may be shorter. Overlapping segments are cross-faded with linear ramps and
normalised by the summed weights. Only the audio of the segments not yet separated and the
overlap-add tail are held, so memory does not grow with the song.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from model import dsp

# chunks [samples, channels] -> per chunk {head: waveform of the chunk's shape}
SeparateBatch = Callable[[list[np.ndarray]], list[dict[str, np.ndarray]]]


class OverlapAdd:
    """Chunk, separate in batches and cross-fade a stream of [samples, channels] at one rate."""

    def __init__(self, heads: tuple[str, ...], segment: int, overlap: float, batch_size: int,
                 separate_batch: SeparateBatch, guard: int = 0, align: int = 1):
        self.heads, self.segment, self.batch_size, self.guard = heads, segment, batch_size, guard
        # strides in whole STFT hops: every segment's frames then fall on the whole song's frame grid
        self.stride = max(align, (segment - int(segment * overlap)) // align * align)
        self.fade = max(0, segment - self.stride)
        self.separate_batch = separate_batch
        self.buffer: np.ndarray | None = None  # audio from `self.next_start` on
        self.next_start = 0  # where the next segment starts
        self.covered = 0  # where the last cut segment ends
        self.pending: list[tuple[int, np.ndarray, bool]] = []  # (start, audio, cut at the end)
        self.emitted = 0  # output samples handed out; the sums below start there
        self.sums: dict[str, np.ndarray] = {}
        self.weights = np.zeros((0, 1), dtype=np.float32)

    def push(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Add samples; return the heads for every sample that no later segment will touch."""
        self.buffer = audio if self.buffer is None else np.concatenate([self.buffer, audio])
        parts = []
        while self.buffer.shape[0] >= self.segment:
            self._cut(self.segment)
            if len(self.pending) >= self.batch_size:
                self._separate_pending()
                # hand out what is final after every batch, so the sums stay a few segments long even
                # when a whole song comes in one block (growing them to its length is quadratic)
                parts.append(self._emit(self.next_start))
        # samples from the first segment still waiting for the network on are not final yet
        parts.append(self._emit(self.pending[0][0] if self.pending else self.next_start))
        return _joined(parts)

    def finish(self) -> dict[str, np.ndarray]:
        """The end of the stream: separate what is left and return the rest of the heads."""
        end = self.next_start + (0 if self.buffer is None else self.buffer.shape[0])
        while self.covered < end:
            self._cut(min(self.segment, self.buffer.shape[0]), last=True)
        self._separate_pending()
        return self._emit(end)

    def _cut(self, length: int, last: bool = False) -> None:
        self.pending.append((self.next_start, self.buffer[:length].copy(), last))
        self.covered = self.next_start + length
        step = min(self.stride, self.buffer.shape[0])
        self.buffer = self.buffer[step:]
        self.next_start += step

    def _separate_pending(self) -> None:
        for first in range(0, len(self.pending), self.batch_size):
            batch = self.pending[first:first + self.batch_size]
            separated = self.separate_batch([chunk for _, chunk, _ in batch])
            # the sums grow once per batch, not once per segment (each growth copies them)
            self._grow(max(start + chunk.shape[0] for start, chunk, _ in batch), separated[0])
            for (start, chunk, last), stems in zip(batch, separated):
                self._add(start, chunk.shape[0], stems, fade_out=not last)
        self.pending = []

    def _grow(self, upto: int, stems: dict[str, np.ndarray]) -> None:
        """Zero-extend the sums and weights to cover the output up to sample `upto`."""
        end = upto - self.emitted
        if end <= self.weights.shape[0]:
            return
        grow = end - self.weights.shape[0]
        self.weights = np.pad(self.weights, ((0, grow), (0, 0)))
        for head in self.heads:
            self.sums[head] = np.pad(self.sums[head], ((0, grow), (0, 0))) if head in self.sums \
                else np.zeros((end, stems[head].shape[1]), dtype=np.float32)

    def _add(self, start: int, length: int, stems: dict[str, np.ndarray], fade_out: bool) -> None:
        end = start - self.emitted + length
        # a segment cut before the end is known fades out (where it turns out to cover the end alone, its
        # weights divide out exactly); the segment cut at the end does not, it has the last word there
        weight = dsp.crossfade_weight(length, self.fade, fade_in=start > 0, fade_out=fade_out,
                                      guard=self.guard)[:, None]
        where = slice(start - self.emitted, end)
        for head in self.heads:
            self.sums[head][where] += stems[head] * weight
        self.weights[where] += weight

    def _emit(self, upto: int) -> dict[str, np.ndarray]:
        count = min(upto - self.emitted, self.weights.shape[0])
        if count <= 0 or not self.sums:
            return {}
        out = {head: self.sums[head][:count] / self.weights[:count] for head in self.heads}
        self.sums = {head: waveform[count:] for head, waveform in self.sums.items()}
        self.weights = self.weights[count:]
        self.emitted += count
        return out


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Consecutive `_emit` results, head by head, as one."""
    heads = {head for part in parts for head in part}
    return {head: np.concatenate([part[head] for part in parts if head in part]) for head in heads}
