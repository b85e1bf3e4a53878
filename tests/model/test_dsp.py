"""model.dsp: STFT round trips, resampling, mask extension and the chunking arithmetic."""
from __future__ import annotations

import numpy as np
import pytest

from model import dsp


def _noise(samples: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (samples, channels)).astype(np.float32)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")  # a 300-sample input is meant to be short
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("samples", [300, 4096, 11025 + 17])
@pytest.mark.parametrize("n_fft, hop", [(512, 128), (1024, 256), (2048, 512), (1024, 512)])
def test_stft_round_trip(channels, samples, n_fft, hop):
    waveform = _noise(samples, channels)
    spec = dsp.stft(waveform, n_fft, hop)
    assert spec.shape == (1 + samples // hop, n_fft // 2 + 1, channels)
    assert spec.dtype == np.complex64
    restored = dsp.istft(spec, n_fft, hop, samples)
    assert restored.shape == waveform.shape and restored.dtype == np.float32
    np.testing.assert_allclose(restored, waveform, atol=1e-6)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("samples", [100, 300, 4096, 11025 + 17])
@pytest.mark.parametrize("n_fft, hop", [(512, 128), (1024, 256), (1024, 512), (4096, 1024), (1000, 300)])
def test_stft_and_istft_match_librosa(channels, samples, n_fft, hop):
    """The hand-written transforms are librosa's (centred, zero padded, periodic Hann, window-sum
    normalised) to float32 precision, hops that do not divide n_fft included."""
    librosa = pytest.importorskip("librosa")
    waveform = _noise(samples, channels, seed=samples + n_fft)
    spec = dsp.stft(waveform, n_fft, hop)
    expected = librosa.stft(np.ascontiguousarray(waveform.T), n_fft=n_fft, hop_length=hop, window="hann",
                            center=True, pad_mode="constant")
    np.testing.assert_allclose(spec, np.transpose(expected, (2, 1, 0)), atol=1e-5 * np.abs(expected).max())
    masked = spec * np.random.default_rng(1).uniform(0, 1, spec.shape).astype(np.float32)
    restored = librosa.istft(np.transpose(masked, (2, 1, 0)), n_fft=n_fft, hop_length=hop, window="hann",
                             center=True, length=samples)
    np.testing.assert_allclose(dsp.istft(masked, n_fft, hop, samples), restored.T, atol=1e-5)


def test_stft_puts_a_sine_in_its_bin():
    rate, n_fft = 11025, 1024
    bin_index = 100
    time = np.arange(rate) / rate
    waveform = np.sin(2 * np.pi * bin_index * rate / n_fft * time)[:, None].astype(np.float32)
    magnitude = np.abs(dsp.stft(waveform, n_fft, 256))[5:-5, :, 0]
    assert np.all(magnitude.argmax(axis=1) == bin_index)


@pytest.mark.parametrize("samples, rate_in, rate_out", [
    (44100, 44100, 11025), (1001, 44100, 11025), (12345, 22050, 44100), (777, 48000, 11025)])
def test_resample_length(samples, rate_in, rate_out):
    resampled = dsp.resample(_noise(samples, 2), rate_in, rate_out)
    assert resampled.shape[1] == 2 and resampled.dtype == np.float32
    assert abs(len(resampled) - samples * rate_out / rate_in) < 1


@pytest.mark.parametrize("rate_in, rate_out", [(44100, 11025), (48000, 11025), (22050, 44100)])
def test_resampled_sine_stays_the_same_sine(rate_in, rate_out):
    frequency, seconds = 440.0, 1.0
    before = np.sin(2 * np.pi * frequency * np.arange(int(rate_in * seconds)) / rate_in)
    after = dsp.resample(np.stack([before, 0.5 * before], axis=1).astype(np.float32), rate_in, rate_out)
    expected = np.sin(2 * np.pi * frequency * np.arange(len(after)) / rate_out)
    middle = slice(len(after) // 10, -len(after) // 10)  # away from the filter's edge effects
    np.testing.assert_allclose(after[middle, 0], expected[middle], atol=1e-3)
    np.testing.assert_allclose(after[middle, 1], 0.5 * expected[middle], atol=1e-3)


def test_resample_at_the_same_rate_is_the_identity():
    waveform = _noise(1000, 2)
    np.testing.assert_array_equal(dsp.resample(waveform, 44100, 44100), waveform)


@pytest.mark.parametrize("input_rate, model_rate, factor", [
    (44100, 11025, 4), (48000, 11025, 5), (22050, 11025, 2), (11025, 11025, 1), (16000, 11025, 2),
    (24000, 11025, 3), (8000, 11025, 1), (96000, 11025, 9), (44101, 11025, 5)])
def test_processing_factor_keeps_the_whole_band(input_rate, model_rate, factor):
    """The smallest multiple of the model's rate at or above the input's: never below it (which loses the
    band between the two), never a multiple more (which costs work for nothing)."""
    assert dsp.processing_factor(input_rate, model_rate) == factor


@pytest.mark.parametrize("total_bins", [512, 513, 2049, 300])
def test_extend_mask_keeps_masks_summing_to_one(total_bins):
    logits = np.random.default_rng(1).normal(size=(3, 7, 512, 2))  # [stems, frames, bins, channels]
    masks = (np.exp(logits) / np.exp(logits).sum(axis=0)).astype(np.float32)
    extended = dsp.extend_mask(masks, total_bins)
    assert extended.shape == (3, 7, total_bins, 2)
    np.testing.assert_allclose(extended.sum(axis=0), 1.0, atol=1e-5)
    kept = min(total_bins, 512)
    np.testing.assert_array_equal(extended[..., :kept, :], masks[..., :kept, :])
    if total_bins > 512:
        np.testing.assert_allclose(extended[..., -1, :], masks.mean(axis=-2), atol=1e-6)


@pytest.mark.parametrize("segment, fade", [(100, 0), (100, 10), (100, 50), (100, 80), (7, 3), (1, 1)])
@pytest.mark.parametrize("fade_in, fade_out", [(False, False), (True, False), (False, True), (True, True)])
def test_crossfade_weight_is_never_zero(segment, fade, fade_in, fade_out):
    weight = dsp.crossfade_weight(segment, fade, fade_in, fade_out)
    assert weight.shape == (segment,) and weight.dtype == np.float32
    assert weight.min() > 0 and weight.max() <= 1


def test_crossfaded_overlap_add_of_a_constant_is_that_constant():
    length, segment, fade = 5000, 1000, 250
    starts = [*range(0, length - segment, segment - fade), length - segment]
    total, weights = np.zeros(length), np.zeros(length)
    for index, start in enumerate(starts):
        weight = dsp.crossfade_weight(segment, fade, index > 0, index < len(starts) - 1)
        total[start:start + segment] += 3.0 * weight
        weights[start:start + segment] += weight
    assert weights.min() > 0
    np.testing.assert_allclose(total / weights, 3.0, rtol=1e-6)


@pytest.mark.parametrize("total_bins", [513, 2049, 300])
def test_mask_spec_is_the_spec_times_the_extended_mask(total_bins):
    rng = np.random.default_rng(2)
    spec = (rng.normal(size=(7, total_bins, 2)) + 1j * rng.normal(size=(7, total_bins, 2))).astype(np.complex64)
    mask = rng.uniform(0, 1, (7, 512, 2)).astype(np.float32)
    expected = spec * dsp.extend_mask(mask, total_bins)
    np.testing.assert_allclose(dsp.mask_spec(spec, mask), expected, rtol=1e-6)
    out = np.zeros_like(spec)
    assert dsp.mask_spec(spec, mask, out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-6)
