"""The magnitude front end: how audio at a given rate becomes the network's input. Training
(trainer/data.py), the validation proxy (trainer/validation.py) and the separator (model/separator.py)
all take it from here.

Audio at `rate` is processed at k times the model's rate, k the smallest integer with k x model rate >=
rate (dsp.processing_factor), so nothing of the input's band is lost; it is resampled there with soxr HQ,
not at all when `rate` is a multiple of the model's (44.1 kHz for the default 11025 Hz). Its STFT has k
times the model's n_fft and hop, so bin b is the model's bin b, frame for frame. The network sees the
lowest `stft.bins` bins divided by k (a window k times longer sums k times as many samples): the STFT of
the same audio at the model's rate, without the resampler's roll-off under the model's Nyquist. The bins
above are masked by extension (dsp.mask_spec). Training records are at `data.rate_factor` times the
model's rate (`records_rate`), so training sees exactly what the separator sees at that rate, and at
other rates the same up to the resamplers' passband ripple (tests/test_front_end.py).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from model import dsp
from model.config import Config, StftConfig


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """The front end for audio at one input rate."""

    factor: int  # processing rate / model rate
    rate: int  # the processing rate
    stft: StftConfig  # at the processing rate: the model's n_fft and hop times `factor`
    bins: int  # the bins the network sees

    @classmethod
    def at(cls, config: Config, input_rate: int) -> "FrontEnd":
        factor = dsp.processing_factor(input_rate, config.audio.sample_rate)
        return cls(factor, factor * config.audio.sample_rate, config.stft.scaled(factor), config.stft.bins)

    def network_input(self, spec: np.ndarray) -> np.ndarray:
        """Complex STFT [frames, all bins, channels] at `rate` -> magnitude [frames, bins, channels]."""
        return np.abs(spec[:, : self.bins]) / self.factor


def records_rate(config: Config) -> int:
    """The rate of the training records' waveforms."""
    return config.data.rate_factor * config.audio.sample_rate


def training_front_end(config: Config) -> FrontEnd:
    """The front end of the training records (and of the validation proxy, which reads them)."""
    return FrontEnd.at(config, records_rate(config))
