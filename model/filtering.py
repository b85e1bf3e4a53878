"""From the network's masks to each head's complex spectrogram (the separator's filtering step).

With `wiener_iterations` 0 every head is its ratio mask times the mixture's spec. With n > 0 the masked
magnitudes of the heads and of the residual (1 - the heads' masks) seed n EM iterations of a
multichannel Wiener filter (norbert, as Open-Unmix and Spleeter do), which re-estimates each stem's
spatial covariance and so uses the stereo image as well as the magnitudes.
"""
from __future__ import annotations

import numpy as np

from model import dsp


def masked_specs(spec: np.ndarray, masks: dict[str, np.ndarray],
                 wiener_iterations: int = 0) -> dict[str, np.ndarray]:
    """Each head's complex spec [frames, bins, channels] from the mixture's spec (same shape) and the
    head's mask [frames, model_bins, channels], extended over the full band."""
    extended = {head: dsp.extend_mask(mask, spec.shape[1]) for head, mask in masks.items()}
    if wiener_iterations <= 0 or not extended:
        return {head: spec * mask for head, mask in extended.items()}
    return wiener_specs(spec, extended, wiener_iterations)


def wiener_specs(spec: np.ndarray, masks: dict[str, np.ndarray], iterations: int) -> dict[str, np.ndarray]:
    """Multichannel Wiener filtering of the heads and the residual; returns the heads' specs."""
    import norbert  # numpy + scipy only; imported here so plain masking needs nothing more

    residual = np.clip(1.0 - sum(masks.values()), 0.0, 1.0)
    magnitude = np.abs(spec)
    # [frames, bins, channels, sources]: masked magnitudes, the residual last
    sources = np.stack([mask * magnitude for mask in masks.values()] + [residual * magnitude], axis=-1)
    # norbert scales its input in place and recommends double precision
    filtered = norbert.wiener(sources.astype(np.float64), spec.astype(np.complex128), iterations,
                              use_softmask=True)
    return {head: filtered[..., index].astype(np.complex64) for index, head in enumerate(masks)}
