"""The validation-SDR proxy: STFT round trip, the SDR formula, masking and the per-epoch summary."""
from __future__ import annotations

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


def _crops(config, batch=3, seed=0):
    from trainer.data import segment_samples

    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, segment_samples(config), config.audio.channels)).astype(np.float32) * 0.1


def test_stft_round_trip_is_exact(tf, tiny_config):
    from trainer.validation import complex_stft, inverse_stft

    waveform = _crops(tiny_config)
    spec = complex_stft(tf.constant(waveform), tiny_config.stft)
    assert spec.shape[2] == tiny_config.network.patch_frames  # the frames the network is trained on
    back = inverse_stft(spec, tiny_config.stft, waveform.shape[1]).numpy()
    np.testing.assert_allclose(back, waveform, atol=1e-5)


def test_sdr_of_perfect_zero_and_silent_estimates(tf):
    from trainer.validation import sdr

    reference = np.random.default_rng(1).standard_normal((3, 1000, 2)).astype(np.float32)
    reference[2] = 0.0  # a silent crop cannot be scored
    perfect = sdr(tf.constant(reference), tf.constant(reference)).numpy()
    zero = sdr(tf.constant(reference), tf.zeros_like(reference)).numpy()
    half = sdr(tf.constant(reference), tf.constant(reference * 0.5)).numpy()
    assert perfect[0] > 60 and zero[0] == pytest.approx(0.0, abs=1e-4)
    assert half[1] == pytest.approx(20 * math.log10(2), abs=1e-3)  # error is half the signal: 6.02 dB
    assert math.isnan(perfect[2]) and math.isnan(zero[2])


def test_all_pass_masks_return_the_mixture(tf, tiny_config):
    import keras

    from trainer.validation import separate_crops

    inputs = keras.Input((None, tiny_config.stft.bins, tiny_config.audio.channels))
    ones = keras.layers.Lambda(lambda x: tf.ones_like(x))(inputs)
    unet = keras.Model(inputs, {head: ones for head in tiny_config.network.heads})
    mix = _crops(tiny_config)
    estimates = separate_crops(unet, tf.constant(mix), tiny_config)
    assert sorted(estimates) == sorted(tiny_config.network.heads)
    np.testing.assert_allclose(estimates["vocals"].numpy(), mix, atol=1e-5)


def test_summary_takes_medians_per_head_and_their_mean():
    from trainer.validation import summarise

    summary = summarise({"vocals": np.array([1.0, 3.0, np.nan, 8.0]), "drums": np.array([2.0, np.nan])})
    assert summary == {"val_sdr_vocals": 3.0, "val_sdr_drums": 2.0, "val_sdr": 2.5}
    assert math.isnan(summarise({"vocals": np.array([np.nan])})["val_sdr"])
