"""The validation-SDR proxy: the SDR formula, full-band separation of the crops through the separator, the
per-epoch summary."""
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


def _unet(tf, config, masks):
    """A Keras model with the U-Net's input and outputs whose masks are `masks[head]` (a constant)."""
    import keras

    inputs = keras.Input((None, config.stft.bins, config.audio.channels))
    return keras.Model(inputs, {head: keras.layers.Lambda(lambda x, v=value: tf.fill(tf.shape(x), v))(inputs)
                                for head, value in masks.items()})


def test_sdr_of_perfect_zero_and_silent_estimates():
    from trainer.validation import sdr

    reference = np.random.default_rng(1).standard_normal((3, 1000, 2)).astype(np.float32)
    reference[2] = 0.0  # a silent crop cannot be scored
    perfect, zero, half = (sdr(reference, estimate) for estimate in (reference, 0 * reference, 0.5 * reference))
    assert perfect[0] > 60 and zero[0] == pytest.approx(0.0, abs=1e-4)
    assert half[1] == pytest.approx(20 * math.log10(2), abs=1e-3)  # error is half the signal: 6.02 dB
    assert math.isnan(perfect[2]) and math.isnan(zero[2])


def test_crops_are_separated_full_band_at_the_records_rate(tf, tiny_config):
    """All-pass masks give back the whole mixture, content above the model's 5.5 kHz band included (white
    noise at the records' 44.1 kHz); a 0.3 mask gives 0.3 of it, above the band too (mask extension)."""
    from model.separator import Separator
    from trainer.validation import mask_fn, separate_crops

    mix = _crops(tiny_config)
    unet = _unet(tf, tiny_config, {"vocals": 1.0, "drums": 0.3})
    estimates = separate_crops(Separator(tiny_config, mask_fn(unet)), mix)
    assert sorted(estimates) == sorted(tiny_config.network.heads)
    np.testing.assert_allclose(estimates["vocals"], mix, atol=1e-5)
    np.testing.assert_allclose(estimates["drums"], 0.3 * mix, atol=1e-5)


def test_summary_takes_medians_per_head_and_their_mean():
    from trainer.validation import summarise

    summary = summarise({"vocals": np.array([1.0, 3.0, np.nan, 8.0]), "drums": np.array([2.0, np.nan])})
    assert summary == {"val_sdr_vocals": 3.0, "val_sdr_drums": 2.0, "val_sdr": 2.5}
    assert math.isnan(summarise({"vocals": np.array([np.nan])})["val_sdr"])
