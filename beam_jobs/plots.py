"""Per-track overview plot: waveform envelope and spectrogram of the mix and of every stem, as PNG bytes.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display), so it is safe in
Beam workers. All rows share one amplitude range and one dB scale, so the stems compare by eye.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import signal

ENVELOPE_POINTS = 1500  # columns drawn per waveform: enough for a screen, cheap for a whole song
SPEC_COLUMNS = 1500
DYNAMIC_RANGE_DB = 80.0


def render_track(mix: np.ndarray, stems: dict[str, np.ndarray], sample_rate: int, title: str,
                 dpi: int = 72) -> bytes:
    """PNG bytes of a grid: one row per waveform [samples, channels] (mix first), envelope | spectrogram."""
    rows = {"mix": mix, **stems}
    specs = {name: _spectrogram_db(_mono(waveform), sample_rate) for name, waveform in rows.items()}
    top = max(float(spec.max()) for _, _, spec in specs.values())
    peak = max(float(np.max(np.abs(mix))), 1e-3)
    height = 1.8 * len(rows) + 0.9
    figure = Figure(figsize=(12, height), dpi=dpi)
    FigureCanvasAgg(figure)
    # fixed margins (in inches): constrained layout would cost a second per plot
    figure.subplots_adjust(left=0.07, right=0.99, wspace=0.15, hspace=0.12,
                           bottom=0.5 / height, top=1 - 0.4 / height)
    axes = figure.subplots(len(rows), 2, squeeze=False, sharex="col")
    for row, (name, waveform) in enumerate(rows.items()):
        _draw_envelope(axes[row, 0], _mono(waveform), sample_rate, peak)
        axes[row, 0].set_ylabel(name)
        times, freqs, spec = specs[name]
        axes[row, 1].imshow(spec, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                            extent=(0, times[-1] + times[0], 0, freqs[-1] / 1000),
                            vmin=top - DYNAMIC_RANGE_DB, vmax=top)
        axes[row, 1].set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    axes[-1, 1].set_xlabel("seconds")
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _mono(waveform: np.ndarray) -> np.ndarray:
    return waveform.mean(axis=1) if waveform.ndim == 2 else waveform


def _draw_envelope(axis, mono: np.ndarray, sample_rate: int, peak: float) -> None:
    """Min/max per column: a faithful outline of a long song without drawing millions of points."""
    width = max(1, -(-len(mono) // ENVELOPE_POINTS))
    padded = np.pad(mono, (0, -len(mono) % width)).reshape(-1, width)
    times = np.arange(padded.shape[0]) * width / sample_rate
    axis.fill_between(times, padded.min(axis=1), padded.max(axis=1), linewidth=0.5)
    axis.set_ylim(-peak, peak)


def _spectrogram_db(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB with a window of ~46 ms and a hop that caps the column count."""
    window = int(2 ** np.round(np.log2(sample_rate * 0.046)))
    window = min(window, max(16, len(mono)))
    hop = max(window // 4, -(-len(mono) // SPEC_COLUMNS))
    freqs, times, power = signal.spectrogram(mono, fs=sample_rate, nperseg=window,
                                             noverlap=max(0, window - hop), mode="psd")
    return times, freqs, 10 * np.log10(np.maximum(power, 1e-20))
