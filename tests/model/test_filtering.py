"""Masks to specs: plain ratio masking, mask extension over the full band, and the Wiener filter."""
from __future__ import annotations

import numpy as np
import pytest

from model.filtering import masked_specs


@pytest.fixture
def spec():
    rng = np.random.default_rng(0)
    shape = (20, 65, 2)  # frames, bins (n_fft 128), channels
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _masks(spec, model_bins=32, seed=1):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.05, 1, (3, spec.shape[0], model_bins, spec.shape[2]))
    raw /= raw.sum(axis=0)  # like the network's softmax over the heads and the residual
    return {"vocals": raw[0].astype(np.float32), "drums": raw[1].astype(np.float32)}


def test_ratio_masks_are_extended_over_the_full_band(spec):
    masks = _masks(spec)
    out = masked_specs(spec, masks)
    assert sorted(out) == ["drums", "vocals"] and out["vocals"].shape == spec.shape
    np.testing.assert_allclose(out["vocals"][:, :32], spec[:, :32] * masks["vocals"], rtol=1e-6)
    top = masks["drums"][:, -32:].mean(axis=1)  # the model's top bins, averaged, above its band
    np.testing.assert_allclose(out["drums"][:, 40], spec[:, 40] * top, rtol=1e-5)


@pytest.mark.parametrize("iterations", [1, 2])
def test_wiener_filtered_stems_still_add_up_with_the_residual(spec, iterations):
    masks = _masks(spec)
    plain = masked_specs(spec, masks)
    wiener = masked_specs(spec, masks, wiener_iterations=iterations)
    assert wiener["vocals"].shape == spec.shape and wiener["vocals"].dtype == np.complex64
    assert np.all(np.isfinite(wiener["vocals"])) and not np.allclose(wiener["vocals"], plain["vocals"])
    residual = spec - wiener["vocals"] - wiener["drums"]
    # the residual the separator derives is no louder than the mixture: the heads took their share
    assert np.sum(np.abs(residual) ** 2) < np.sum(np.abs(spec) ** 2)


def test_wiener_with_an_all_pass_head_returns_the_mixture(spec):
    ones = np.ones((spec.shape[0], 32, spec.shape[2]), np.float32)
    out = masked_specs(spec, {"vocals": ones, "drums": 0 * ones}, wiener_iterations=1)
    np.testing.assert_allclose(out["vocals"], spec, atol=1e-3 * np.abs(spec).max())
    assert np.abs(out["drums"]).max() < 1e-3 * np.abs(spec).max()
