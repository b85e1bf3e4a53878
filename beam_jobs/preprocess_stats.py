"""Normalisation statistics for the trainer: mean and std of the mixture's STFT magnitude per bin.

Each track contributes per-bin sums (frames and channels pooled) at the model's STFT; a CombineFn
adds them up in track-name order, so the floats come out the same whatever the bundling.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np

from model import dsp
from model.config import StftConfig
from audio.musdb import MIXTURE

# (magnitudes per bin, sum of |X| per bin, sum of |X|^2 per bin) for one track
Partial = tuple[int, np.ndarray, np.ndarray]


def mixture_partial(song, stft: StftConfig) -> tuple[str, Partial]:
    """(track name, sums over the mixture's magnitude) for one song at the model's rate."""
    magnitude = np.abs(dsp.stft(song.stems[MIXTURE], stft.n_fft, stft.hop))[:, : stft.bins, :]
    magnitude = magnitude.astype(np.float64)
    count = magnitude.shape[0] * magnitude.shape[2]
    return song.track.name, (count, magnitude.sum(axis=(0, 2)), np.square(magnitude).sum(axis=(0, 2)))


class MagnitudeStats(beam.CombineFn):
    """Combine per-track partials into {values, mean, std} per bin
    (`values`: magnitudes pooled per bin, i.e. frames times channels)."""

    def create_accumulator(self) -> dict[str, Partial]:
        return {}

    def add_input(self, accumulator: dict, element: tuple[str, Partial]) -> dict:
        name, partial = element
        accumulator[name] = _plus(accumulator[name], partial) if name in accumulator else partial
        return accumulator

    def merge_accumulators(self, accumulators) -> dict:
        merged: dict[str, Partial] = {}
        for accumulator in accumulators:
            for element in accumulator.items():
                self.add_input(merged, element)
        return merged

    def extract_output(self, accumulator: dict) -> dict:
        if not accumulator:
            return {"values": 0, "mean": None, "std": None}
        total: Partial | None = None
        for name in sorted(accumulator):  # a fixed order: float sums depend on it
            total = accumulator[name] if total is None else _plus(total, accumulator[name])
        count, sums, squares = total
        mean = sums / count
        std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
        return {"values": int(count), "mean": _floats(mean), "std": _floats(std)}


def _plus(a: Partial, b: Partial) -> Partial:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _floats(values: np.ndarray) -> list[float]:
    return [float(value) for value in values.astype(np.float32)]
