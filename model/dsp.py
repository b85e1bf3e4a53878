"""Pure DSP: STFT, resampling, mask extension and the cross-fade of chunked overlap-add.

Waveforms are [samples, channels]; spectrograms are [frames, bins, channels].
"""
from __future__ import annotations

import librosa
import numpy as np
import soxr


def stft(waveform: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred Hann STFT of [samples, channels] -> complex64 [frames, n_fft // 2 + 1, channels]."""
    spec = librosa.stft(np.ascontiguousarray(waveform.T), n_fft=n_fft, hop_length=hop,
                        window="hann", center=True)
    return np.transpose(spec, (2, 1, 0)).astype(np.complex64, copy=False)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of `stft`: complex [frames, bins, channels] -> float32 [length, channels]."""
    waveform = librosa.istft(np.transpose(spec, (2, 1, 0)), n_fft=n_fft, hop_length=hop,
                             window="hann", center=True, length=length)
    return waveform.T.astype(np.float32, copy=False)


def resample(waveform: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of [samples, channels] (soxr, high quality)."""
    if rate_in == rate_out:
        return waveform.astype(np.float32, copy=False)
    return soxr.resample(waveform, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def processing_factor(input_rate: int, model_rate: int) -> int:
    """The integer k such that the STFT at k * model_rate lines its low bins up with the model's."""
    return max(1, round(input_rate / model_rate))


def extend_mask(mask: np.ndarray, total_bins: int) -> np.ndarray:
    """Extend a mask [..., frames, bins, channels] to total_bins along the bin axis.

    Bins above the model's band take, per frame, the mean of the mask over the model's band (Spleeter's
    "average" extension: the frame's share of each stem); masks that sum to one across stems still do.
    Against the mean of the top 32 bins only, it raised the median SDR on the 14 validation songs of each head
    (vocals +0.16 dB, drums +0.06 dB): what sits right under the band edge (hi-hats, cymbals) says less
    about the band above than the whole frame does.
    """
    bins = mask.shape[-2]
    if total_bins <= bins:
        return mask[..., :total_bins, :]
    average = mask.mean(axis=-2, keepdims=True)
    shape = list(mask.shape)
    shape[-2] = total_bins - bins
    return np.concatenate([mask, np.broadcast_to(average, shape)], axis=-2)


def chunk_starts(length: int, segment: int, overlap: float) -> list[int]:
    """Start offsets of segments of `segment` samples covering `length`, overlapping by `overlap`."""
    if length <= segment:
        return [0]
    stride = max(1, int(segment * (1.0 - overlap)))
    starts = list(range(0, length - segment, stride))
    starts.append(length - segment)
    return starts


def crossfade_weight(segment: int, fade: int, fade_in: bool, fade_out: bool, guard: int = 0) -> np.ndarray:
    """Per-sample weight of a segment in the overlap-add: linear ramps over `fade` samples, never zero,
    so dividing by the summed weights is exact everywhere.

    The first `guard` samples of a ramp keep a weight of 1e-3: there a segment's STFT frames reach past
    its edge into zero padding, and the neighbouring segment, which holds that audio whole, should speak.
    """
    weight = np.ones(segment, dtype=np.float32)
    fade = min(fade, segment // 2)
    guard = min(guard, fade // 2)
    if fade > 0:
        floor = 1e-3 if guard else 0.0
        rising = np.arange(1, fade - guard + 1, dtype=np.float32) / (fade - guard + 1)
        ramp = np.concatenate([np.full(guard, floor, dtype=np.float32), floor + (1 - floor) * rising])
        if fade_in:
            weight[:fade] = ramp
        if fade_out:
            weight[segment - fade:] = ramp[::-1]
    return weight
