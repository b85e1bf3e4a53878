"""model.separator: streaming == whole song, chunked == unchunked within tolerance, no clicks at joins.

Mask functions here are plain numpy (a real SavedModel runs in tests/beam_jobs/test_separate.py), so
each case takes a fraction of a second.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from model.batching import CoalescingMaskFn
from model.config import RESIDUAL, Config
from model.separator import Separator

TINY = Config().replace(network__filters=(4, 8, 16), network__patch_frames=32, separator__batch_size=4)


def _soft_mask(magnitude: np.ndarray) -> dict[str, np.ndarray]:
    """A mask that depends on each bin's magnitude only (a trained network is not that local)."""
    share = magnitude / (magnitude + 0.05)
    return {"vocals": 0.7 * share, "drums": 0.3 * (1 - share)}


def _music(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip((110, 330, 1250), rng.uniform(0, 6, 3)))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) ** 2
    return (0.15 * (tones * envelope)[:, None] + 0.03 * rng.standard_normal((len(t), channels))).astype(np.float32)


def _streamed(separator: Separator, mix: np.ndarray, rate: int, block: int) -> dict[str, np.ndarray]:
    parts = list(separator.stream((mix[i:i + block] for i in range(0, len(mix), block)), rate))
    assert np.array_equal(np.concatenate([m for m, _ in parts]), mix)  # the mix comes back in order
    return {name: np.concatenate([stems[name] for _, stems in parts]) for name in separator.stem_names}


@pytest.mark.parametrize("rate, channels", [(44100, 2), (22050, 1), (48000, 3), (11025, 2)])
def test_streaming_equals_whole_song_for_any_block_size(rate, channels):
    separator = Separator(TINY, _soft_mask)
    mix = _music(3.3, rate, channels)
    whole = separator.separate(mix, rate)
    assert set(whole) == {"vocals", "drums", RESIDUAL}
    for block in (997, 65536):
        streamed = _streamed(separator, mix, rate, block)
        for name, waveform in whole.items():
            assert streamed[name].shape == mix.shape
            np.testing.assert_allclose(streamed[name], waveform, atol=1e-6, err_msg=f"{name}, block {block}")
    # the residual is taken at the input's rate: the stems add up to the mix exactly
    np.testing.assert_allclose(sum(whole.values()), mix, atol=1e-6)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100, 48000, 96000])
def test_heads_carry_the_band_above_the_model_at_every_rate(rate):
    """White noise through constant masks (vocals 0.4, drums 0.1): every head holds its share of the noise
    above the model's 5.5 kHz band (power 0.16 and 0.01 of the mix's), up to 0.9 of the input's Nyquist
    (above it, at rates that are not multiples of the model's, the resampler's roll-off hands the last few
    per cent to the residual). Rounding the processing rate down lost 5.5-8 kHz at 16 kHz, 11-12 kHz at 24 kHz
    and 20-24 kHz at 48 kHz."""
    import scipy.signal

    def constant(magnitude: np.ndarray) -> dict[str, np.ndarray]:
        return {"vocals": np.full(magnitude.shape, 0.4, np.float32), "drums": np.full(magnitude.shape, 0.1, np.float32)}

    mix = 0.1 * np.random.default_rng(0).standard_normal((3 * rate, 2)).astype(np.float32)
    stems = Separator(TINY, constant).separate(mix, rate)
    nyquist = rate / 2
    frequencies, mix_power = scipy.signal.welch(mix, rate, nperseg=2048, axis=0)
    for head, share in (("vocals", 0.16), ("drums", 0.01)):
        power = scipy.signal.welch(stems[head], rate, nperseg=2048, axis=0)[1] / mix_power
        for low, high in ((5800, 0.8 * nyquist), (0.8 * nyquist, 0.85 * nyquist), (0.85 * nyquist, 0.9 * nyquist)):
            band = (frequencies >= low) & (frequencies < high)
            assert power[band].mean() == pytest.approx(share, rel=0.1), (head, low, high)


def test_wiener_filtering_runs_in_the_stream_whatever_the_blocks():
    """With Wiener iterations the heads differ from plain masking, and still do not depend on the blocks."""
    rate, mix = 22050, _music(3.3, 22050, 2)
    plain = Separator(TINY, _soft_mask).separate(mix, rate)
    separator = Separator(TINY.replace(separator__wiener_iterations=1), _soft_mask)
    whole = separator.separate(mix, rate)
    streamed = _streamed(separator, mix, rate, 997)
    assert np.abs(whole["vocals"] - plain["vocals"]).max() > 1e-3
    for name, waveform in whole.items():
        np.testing.assert_allclose(streamed[name], waveform, atol=1e-6, err_msg=name)


def test_patches_equal_one_patch_for_a_frame_local_mask():
    """Every frame is the whole song's STFT frame and gets one mask, cross-faded between patches: with a
    mask that depends on each bin's magnitude only, patches of 32 frames give what one patch of the
    whole 6 s song gives, to float precision (cutting the waveform into segments was 0.15% off, at
    their zero-padded edge frames); a constant mask gives the mix times that constant. (A trained
    network sees less context near a patch's edge: the cross-fade keeps that smooth.)"""
    rate, mix = 44100, _music(6.0, 44100, 2)
    whole_config = TINY.replace(network__patch_frames=1 + mix.shape[0] // 1024 + 64)  # one patch
    constant = {"vocals": 0.4, "drums": 0.1}
    for mask_fn in (_soft_mask, lambda m: {head: np.full(m.shape, gain, np.float32) for head, gain in constant.items()}):
        patched = Separator(TINY, mask_fn).separate(mix, rate)
        whole = Separator(whole_config, mask_fn).separate(mix, rate)
        for name in ("vocals", "drums"):
            error = np.abs(patched[name] - whole[name]).max() / np.abs(whole[name]).max()
            assert error < 1e-5, (name, error)
    for name, gain in constant.items():
        np.testing.assert_allclose(patched[name], gain * mix, atol=1e-6)


def _gain_per_chunk(magnitude: np.ndarray) -> dict[str, np.ndarray]:
    """The worst case for clicks: neighbouring chunks get very different gains (0.2, 0.9, 0.2, ...)."""
    gains = np.where(np.arange(magnitude.shape[0]) % 2 == 0, 0.2, 0.9).astype(np.float32)
    vocals = np.broadcast_to(gains[:, None, None, None], magnitude.shape)
    return {"vocals": vocals, "drums": 1.0 - vocals}


def _clicks(waveform: np.ndarray, rate: int) -> bool:
    """A 220 Hz sine's second difference is at most (2 pi 220 / rate)^2 ~ 1e-3 of its amplitude; a hard
    switch between gains shows up as a jump hundreds of times larger."""
    return bool(np.abs(np.diff(waveform, 2)).max() > 100 * 2 * (2 * np.pi * 220 / rate) ** 2 * 0.5)


@pytest.mark.parametrize("overlap", [0.25, 0.0])
def test_patch_joins_leave_no_clicks(overlap):
    """Neighbouring patches with very different gains: the masks are cross-faded where patches overlap,
    and even without overlap the inverse STFT's overlapping windows spread a switch over n_fft samples."""
    rate = 44100
    sine = (0.5 * np.sin(2 * np.pi * 220 * np.arange(5 * rate) / rate))[:, None].astype(np.float32)
    separator = Separator(TINY.replace(separator__overlap=overlap), _gain_per_chunk)
    vocals = separator.separate(np.repeat(sine, 2, axis=1), rate)["vocals"][:, 0]
    assert vocals.min() < -0.4 and vocals.max() > 0.4  # both gains are in play
    assert not _clicks(vocals, rate)
    # the same gains switched sample by sample every patch's length: what the check is there to catch
    hop = TINY.stft.hop * 4
    gains = np.where((np.arange(sine.shape[0]) // (TINY.network.patch_frames * hop)) % 2 == 0, 0.2, 0.9)
    assert _clicks(sine[:, 0] * gains.astype(np.float32), rate)


def test_short_songs_and_errors():
    separator = Separator(TINY, _soft_mask)
    for samples in (1, 300, 5000):
        mix = _music(1.0, 22050, 2)[:samples]
        stems = separator.separate(mix, 22050)
        assert all(waveform.shape == mix.shape for waveform in stems.values())
        np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-6)
    with pytest.raises(ValueError):
        separator.separate(np.zeros((0, 2), np.float32), 22050)
    with pytest.raises(ValueError, match="no audio"):
        list(separator.stream(iter([]), 22050))


def test_threads_share_network_calls():
    """Songs separated at once on one model: their patches go through the network together."""
    def slow_mask(magnitude: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(0.05)  # a network call long enough for the other threads to queue up
        return _soft_mask(magnitude)

    batched = CoalescingMaskFn(slow_mask, max_rows=16)
    separator = Separator(TINY, batched)
    mixes = [_music(3.0, 11025, 2, seed) for seed in range(4)]
    alone = CoalescingMaskFn(_soft_mask, max_rows=16)
    expected = [Separator(TINY, alone).separate(mix, 11025) for mix in mixes]
    results: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, separator.separate(mixes[i], 11025)))
               for i in range(len(mixes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert batched.calls < alone.calls
    for index, stems in results.items():
        for name, waveform in stems.items():
            np.testing.assert_allclose(waveform, expected[index][name], atol=1e-6)


def test_a_failing_network_call_reaches_every_caller():
    def broken(magnitude):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        Separator(TINY, CoalescingMaskFn(broken)).separate(_music(1.0, 11025, 2), 11025)
