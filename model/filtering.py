"""From the network's masks to each head's complex spectrogram (the separator's filtering step).

With `wiener_iterations` 0 every head is its ratio mask times the mixture's spec. With n > 0 the masked
magnitudes of the heads and of the residual (1 - the heads' masks) seed n EM iterations of a
multichannel Wiener filter (norbert, as Open-Unmix and Spleeter do), which re-estimates each stem's
spatial covariance and so uses the stereo image as well as the magnitudes.
"""
from __future__ import annotations

import numpy as np

from model import dsp


def masked_specs(spec: np.ndarray, masks: dict[str, np.ndarray], wiener_iterations: int = 0,
                 out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Each head's complex spec [frames, bins, channels] from the mixture's spec (same shape) and the
    head's mask [frames, model_bins, channels], extended over the full band; written into `out`'s
    arrays (head -> spec's shape) when given, so a caller can have them land in one stacked buffer."""
    out = out or {head: np.empty_like(spec) for head in masks}
    if wiener_iterations <= 0 or not masks:
        return {head: dsp.mask_spec(spec, mask, out[head]) for head, mask in masks.items()}
    extended = {head: dsp.extend_mask(mask, spec.shape[1]) for head, mask in masks.items()}
    for head, filtered in wiener_specs(spec, extended, wiener_iterations).items():
        out[head][...] = filtered
    return {head: out[head] for head in masks}


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
