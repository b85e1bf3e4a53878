"""Streaming separation in the STFT domain: audio goes in block by block, separated heads come out.

The song's STFT is taken once, frame by frame as samples arrive (the frames of `dsp.stft` of the whole
song: centred, n_fft // 2 zeros before the first sample and after the last). The network masks patches
of `patch_frames` consecutive frames that start every `stride` frames; where patches overlap their masks
are cross-faded with linear ramps and normalised by the summed weights, so every frame gets one mask
and the masks change smoothly from patch to patch. Each head is the mix's frames times its mask, turned
back into samples by one streaming overlap-add. So each frame is transformed, masked and inverted once
(cutting the waveform into overlapping segments did all three again for every overlap, and cross-faded
waveforms besides), and a patch's edge frames are the song's own frames, not frames of zero padding.

The frames, masks and patches do not depend on how the audio was cut into blocks. Only the frames not
yet final and the overlap-add's tail are held, so memory does not grow with the song.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from model import dsp, filtering
from model.frontend import FrontEnd

# magnitude patches [patches, patch_frames, bins, channels] -> {head: masks of that shape}
MaskFn = Callable[[np.ndarray], dict[str, np.ndarray]]


class SpectralStream:
    """Separate a stream of [samples, channels] at one rate into heads of the same shape."""

    def __init__(self, heads: tuple[str, ...], front: FrontEnd, patch_frames: int, overlap: float,
                 batch_size: int, mask_fn: MaskFn, wiener_iterations: int = 0):
        self.heads, self.front, self.n_fft, self.hop = heads, front, front.stft.n_fft, front.stft.hop
        self.patch, self.batch_size = patch_frames, batch_size
        self.mask_fn, self.wiener_iterations = mask_fn, wiener_iterations
        self.stride = max(1, patch_frames - int(patch_frames * overlap))
        self.fade = patch_frames - self.stride
        self.samples = 0  # input samples pushed
        # samples of the centred, padded signal from frame `frame_count`'s start on
        self.signal: np.ndarray | None = None
        self.frame_count = 0  # frames taken so far
        self.spec: np.ndarray | None = None  # complex [channels, frames, bins] from frame `first_frame` on
        self.new_spectra: list[np.ndarray] = []  # frames taken since, joined to `spec` once per batch
        self.first_frame = 0  # the first frame not yet final
        self.next_patch = 0  # the first frame of the next patch to mask
        self.pending: list[int] = []  # first frames of patches waiting for the network
        self.mask_sums: dict[str, np.ndarray] = {}  # [frames, model_bins, channels] from `first_frame` on
        self.mask_weights = np.zeros(0, dtype=np.float32)
        self.tail: np.ndarray | None = None  # overlap-add [heads * channels, samples] from first_frame's start
        self.tail_window = np.zeros(0, dtype=np.float32)  # the summed squared window over the same samples
        self.emitted = 0  # padded-signal samples handed out or dropped (the leading n_fft // 2 zeros)

    def push(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Add samples; return the heads for every sample that no later frame will touch."""
        if self.signal is None:
            self.signal = np.zeros((audio.shape[1], self.n_fft // 2), dtype=np.float32)
        # a batch's worth of samples at a time, so a whole song in one block holds no more than a block does
        piece = self.batch_size * self.stride * self.hop
        parts = []
        for first in range(0, audio.shape[0], piece):
            samples = audio[first:first + piece]
            self.samples += samples.shape[0]
            self.signal = np.concatenate([self.signal, samples.T.astype(np.float32, copy=False)], axis=1)
            self._take_frames()
            while self.next_patch + self.patch <= self.frame_count:
                self.pending.append(self.next_patch)
                self.next_patch += self.stride
                if len(self.pending) == self.batch_size:
                    parts.append(self._mask_pending(last=False))
        return _joined(parts, self.heads)

    def finish(self) -> dict[str, np.ndarray]:
        """The end of the stream: the last frames, masked by the patches still needed; the rest of the heads."""
        if self.signal is None:
            raise ValueError("no audio to separate")
        total = 1 + self.samples // self.hop  # dsp.stft's frame count
        needed = (total - self.frame_count - 1) * self.hop + self.n_fft
        self.signal = np.pad(self.signal, ((0, 0), (0, max(0, needed - self.signal.shape[1]))))
        self._take_frames(total)
        # patches until one reaches the last frame; the last one may be short (the network sees zeros after it)
        covered = self.next_patch - self.stride + self.patch if self.next_patch else 0  # the last patch's end
        while covered < total:
            self.pending.append(self.next_patch)
            covered, self.next_patch = self.next_patch + self.patch, self.next_patch + self.stride
        parts = [self._mask_pending(last=True)] if self.pending else []
        parts.append(self._final_samples(total, end_of_song=True))
        return _joined(parts, self.heads)

    def _take_frames(self, limit: int | None = None) -> None:
        """Every frame whose samples have all arrived (up to `limit` frames in all)."""
        count = 0 if self.signal.shape[1] < self.n_fft else 1 + (self.signal.shape[1] - self.n_fft) // self.hop
        if limit is not None:
            count = min(count, limit - self.frame_count)
        if count:
            signal = self.signal[:, : (count - 1) * self.hop + self.n_fft]
            self.new_spectra.append(dsp.frame_spectra(signal, self.n_fft, self.hop))
            self.signal = self.signal[:, count * self.hop:]
            self.frame_count += count

    def _frames(self) -> np.ndarray:
        """Every frame from `first_frame` on, in one array (joined once per batch, not once per block)."""
        if self.spec is None or self.new_spectra:
            self.spec = np.concatenate(([] if self.spec is None else [self.spec]) + self.new_spectra, axis=1)
            self.new_spectra = []
        return self.spec

    def _mask_pending(self, last: bool) -> dict[str, np.ndarray]:
        """Mask the pending patches (in batches), cross-fade their masks in, and turn every frame no later
        patch touches into samples."""
        available, spec = self.frame_count, self._frames()
        for first in range(0, len(self.pending), self.batch_size):
            starts = self.pending[first:first + self.batch_size]
            magnitude = np.zeros((len(starts), self.patch, self.front.bins, spec.shape[0]), np.float32)
            for row, start in enumerate(starts):
                frames = spec[:, start - self.first_frame: min(start + self.patch, available) - self.first_frame]
                magnitude[row, : frames.shape[1]] = self.front.network_input(np.transpose(frames, (1, 2, 0)))
            masks = self.mask_fn(magnitude)
            for row, start in enumerate(starts):
                length = min(start + self.patch, available) - start
                final_patch = last and start == self.pending[-1]
                self._add_masks(start, length, {head: masks[head][row, :length] for head in self.heads},
                                fade_out=not final_patch)
        self.pending = []
        return {} if last else self._final_samples(self.next_patch)

    def _add_masks(self, start: int, length: int, masks: dict[str, np.ndarray], fade_out: bool) -> None:
        # a patch masked before the end is known fades out (where it turns out to reach the end alone, its
        # weights divide out exactly); the last patch does not, it has the last word there
        weight = dsp.crossfade_weight(length, self.fade, fade_in=start > 0, fade_out=fade_out)
        end = start + length - self.first_frame
        grow = end - self.mask_weights.shape[0]
        if grow > 0:
            self.mask_weights = np.pad(self.mask_weights, (0, grow))
            for head in self.heads:
                self.mask_sums[head] = np.pad(self.mask_sums[head], ((0, grow), (0, 0), (0, 0))) \
                    if head in self.mask_sums else np.zeros((end, *masks[head].shape[1:]), np.float32)
        where = slice(start - self.first_frame, end)
        for head in self.heads:
            self.mask_sums[head][where] += masks[head] * weight[:, None, None]
        self.mask_weights[where] += weight

    def _final_samples(self, upto: int, end_of_song: bool = False) -> dict[str, np.ndarray]:
        """Mask frames first_frame..upto - 1 (final: no later patch touches them), overlap-add them and
        hand out the samples no later frame touches."""
        count = upto - self.first_frame
        if count <= 0:
            return {}
        spec = self._frames()[:, :count]
        channels, heads = spec.shape[0], len(self.heads)
        weights = self.mask_weights[:count, None, None]
        masks = {head: self.mask_sums[head][:count] / weights for head in self.heads}
        # every head masked straight into one stacked array, channels first, for one inverse transform
        stacked = np.empty((heads, channels, count, spec.shape[2]), dtype=np.complex64)
        filtering.masked_specs(np.transpose(spec, (1, 2, 0)), masks, self.wiener_iterations,
                               out={head: np.transpose(stacked[row], (1, 2, 0)) for row, head in enumerate(self.heads)})
        added = dsp.overlap_add(stacked.reshape(heads * channels, count, -1), self.n_fft, self.hop)
        window = dsp.window_sumsquare(self.n_fft, self.hop, count)
        if self.tail is not None:  # the earlier frames' overlap reaches into these frames' first samples
            added[:, : self.tail.shape[1]] += self.tail
            window = window.copy()
            window[: self.tail_window.shape[0]] += self.tail_window
        done = added.shape[1] if end_of_song else count * self.hop
        self.tail, self.tail_window = added[:, done:], window[done:]
        self.spec = self.spec[:, count:]
        self.mask_sums = {head: sums[count:] for head, sums in self.mask_sums.items()}
        self.mask_weights = self.mask_weights[count:]
        self.first_frame = upto
        out = added[:, :done] / dsp.divisor(window[:done])
        # drop the leading padding; at the end, keep exactly as many samples as came in
        start = max(0, self.n_fft // 2 - self.emitted)
        stop = done if not end_of_song else start + self.samples - max(0, self.emitted - self.n_fft // 2)
        self.emitted += done
        out = out[:, start:stop]
        out = out.reshape(heads, channels, -1)
        return {head: out[row].T for row, head in enumerate(self.heads)}  # [samples, channels] views


def _joined(parts: list[dict[str, np.ndarray]], heads: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Consecutive results, head by head, as one."""
    parts = [part for part in parts if part]
    if not parts:
        return {}
    return {head: np.concatenate([part[head] for part in parts]) if len(parts) > 1 else parts[0][head]
            for head in heads}
