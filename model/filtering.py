"""From the network's masks to each head's complex spectrogram (the separator's filtering step)."""
from __future__ import annotations

import numpy as np

from model import dsp


def masked_specs(spec: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apply each head's mask [frames, model_bins, channels], extended over the full band, to the
    mixture's spec [frames, bins, channels]."""
    return {head: spec * dsp.extend_mask(mask, spec.shape[1]) for head, mask in masks.items()}
