"""Per-track overview plot: waveform envelope and spectrogram of the mix and of every stem, as PNG bytes.

The plot is drawn from bounded `Summary` sketches fed block by block while a song streams through
(a min/max envelope and a power spectrogram, both decimated to between COLUMNS and 2 * COLUMNS columns,
more than a row has pixels), so a 60-minute song costs no more memory than a short one. Drawn with
matplotlib's object API on the Agg canvas (no pyplot state, no display), safe in Beam workers: one figure per
thread and row count, redrawn for each track. All rows share one amplitude range and one dB scale.
"""
from __future__ import annotations

import functools
import io
import os
import threading

import numpy as np
import scipy.fft
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

COLUMNS = 600  # columns kept per row: between COLUMNS and 2 * COLUMNS, more than a row has pixels
FREQUENCY_ROWS = 128
DYNAMIC_RANGE_DB = 80.0
TICKS = 4  # at most this many intervals between labelled ticks on an axis
# Track names come in every script. matplotlib's DejaVu Sans has no Chinese, Japanese or Korean glyphs, so the
# title falls back, glyph by glyph, to WenQuanYi Micro Hei (Debian's fonts-wqy-microhei, 5 MB: CJK and Hangul)
# where the machine has it: `make setup` and the worker image install it.
CJK_FONT_PACKAGE = "fonts-wqy-microhei"
CJK_FONT_FILE = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
CJK_FONT = "WenQuanYi Micro Hei"


class _Columns:
    """Reduce a stream of rows into at most 2 * limit columns, doubling the rows per column as needed."""

    def __init__(self, reduce: np.ufunc, limit: int = COLUMNS):
        self.reduce, self.limit, self.width = reduce, limit, 1
        self.full: np.ndarray | None = None
        self.partial: np.ndarray | None = None
        self.partial_count = 0

    def add(self, rows: np.ndarray) -> None:
        columns = [] if self.full is None else [self.full]
        if self.partial_count:
            take = min(self.width - self.partial_count, rows.shape[0])
            self.partial = self.reduce(self.partial, self.reduce.reduce(rows[:take], axis=0))
            self.partial_count += take
            rows = rows[take:]
            if self.partial_count == self.width:
                columns.append(self.partial[None])
                self.partial, self.partial_count = None, 0
        count = rows.shape[0] // self.width
        if count:
            full = rows[: count * self.width].reshape(count, self.width, *rows.shape[1:])
            columns.append(self.reduce.reduce(full, axis=1))
        rest = rows[count * self.width:]
        if rest.shape[0]:  # only when the partial column was completed or empty above
            self.partial, self.partial_count = self.reduce.reduce(rest, axis=0), rest.shape[0]
        if columns:
            self.full = columns[0] if len(columns) == 1 else np.concatenate(columns)
            self._shrink()

    def _shrink(self) -> None:
        while self.full.shape[0] > 2 * self.limit:
            if self.full.shape[0] % 2:  # the odd one out joins the partial column, which stays last
                last = self.full[-1]
                self.partial = last if self.partial is None else self.reduce(last, self.partial)
                self.partial_count += self.width
                self.full = self.full[:-1]
            self.full = self.reduce(self.full[0::2], self.full[1::2])
            self.width *= 2

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Every column (the partial one last) and how many rows each holds."""
        parts = [part for part in (self.full, None if self.partial is None else self.partial[None])
                 if part is not None]
        counts = [self.width] * (0 if self.full is None else self.full.shape[0])
        counts += [self.partial_count] if self.partial is not None else []
        return np.concatenate(parts), np.asarray(counts)


class Summary:
    """A bounded sketch of one waveform [samples, channels] fed in blocks: peak, envelope, spectrogram."""

    def __init__(self, sample_rate: int):
        self.rate, self.samples = sample_rate, 0
        # ~23 ms windows side by side: ~43 columns a second, plenty for a few hundred pixels a row
        # (a plot shows 1500 to 3000 columns), at a quarter of the cost of the usual 75% overlap
        self.window = int(2 ** np.round(np.log2(sample_rate * 0.023)))
        self.hop = self.window
        self.hann = np.hanning(self.window).astype(np.float32)
        self.low, self.high = _Columns(np.minimum), _Columns(np.maximum)
        self.power = _Columns(np.add)
        self.tail = np.zeros(0, dtype=np.float32)  # samples not yet in a spectrogram frame

    def add(self, block: np.ndarray) -> None:
        mono = _mono(block)
        if not mono.shape[0]:
            return
        self.samples += mono.shape[0]
        self.low.add(mono)
        self.high.add(mono)
        self._add_frames(np.concatenate([self.tail, mono]))

    def _add_frames(self, signal: np.ndarray, final: bool = False) -> None:
        if final and self.power.full is None and self.power.partial is None:
            signal = np.pad(signal, (0, max(0, self.window - signal.shape[0])))  # short song: one frame
        count = 0 if signal.shape[0] < self.window else 1 + (signal.shape[0] - self.window) // self.hop
        if count:
            frames = np.lib.stride_tricks.sliding_window_view(signal, self.window)[:: self.hop][:count]
            spectrum = scipy.fft.rfft(frames * self.hann, axis=1)
            power = spectrum.real ** 2 + spectrum.imag ** 2
            pool = max(1, (power.shape[1] - 1) // FREQUENCY_ROWS)
            end = (power.shape[1] - 1) // pool * pool
            pooled = power[:, 0:end:pool].copy()  # bin by bin: a sum over a short last axis is 8x slower
            for offset in range(1, pool):
                pooled += power[:, offset:end:pool]
            self.power.add(pooled / pool)
        self.tail = signal[count * self.hop:]

    @property
    def peak(self) -> float:
        if self.samples == 0:
            return 0.0
        return float(max(-self.low.columns()[0].min(), self.high.columns()[0].max()))

    def envelope(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column start times (s), column minima and maxima."""
        low, counts = self.low.columns()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return starts / self.rate, low, self.high.columns()[0]

    def spectrogram_db(self) -> np.ndarray:
        """Mean power per column in dB, [frequency rows, columns]."""
        self._add_frames(self.tail, final=True)
        power, counts = self.power.columns()
        return (10 * np.log10(np.maximum(power / counts[:, None], 1e-20))).T


def _mono(block: np.ndarray) -> np.ndarray:
    """The channels' mean as float32 [samples], added channel by channel: several times faster than
    mean(axis=1) on [samples, 2], and no matrix product, whose BLAS threads spin on a core after each call."""
    block = block.astype(np.float32, copy=False)
    if block.ndim == 1:
        return block
    mono = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    mono *= np.float32(1 / block.shape[1])
    return mono


def render_summaries(rows: dict[str, Summary], title: str, dpi: int = 72) -> bytes:
    """PNG bytes of a grid: one row per summary (mix first), envelope | spectrogram."""
    specs = {name: summary.spectrogram_db() for name, summary in rows.items()}
    top = max(float(spec.max()) for spec in specs.values())
    peak = max(next(iter(rows.values())).peak, 1e-3)
    seconds = max(summary.samples / summary.rate for summary in rows.values())
    canvas = _canvas(len(rows), dpi)
    for row, (name, summary) in enumerate(rows.items()):
        times, low, high = summary.envelope()
        canvas.envelope(row, times, low, high, peak, name)
        canvas.spectrogram(row, specs[name], summary.samples / summary.rate, summary.rate / 2000,
                           (top - DYNAMIC_RANGE_DB, top))
    for axis in canvas.axes.flat:
        axis.set_xlim(0, seconds)
    canvas.figure.suptitle(title, fontfamily=title_fonts())
    buffer = io.BytesIO()
    canvas.figure.savefig(buffer, format="png")
    return buffer.getvalue()


class _Canvas:
    """One figure with its axes, ticks and images, redrawn for track after track: making the axes took a
    third of a plot's time, and a redraw reuses the tick artists as well."""

    def __init__(self, rows: int, dpi: int):
        height = 1.8 * rows + 0.9
        self.figure = Figure(figsize=(12, height), dpi=dpi)
        FigureCanvasAgg(self.figure)
        # fixed margins (in inches): constrained layout would cost a second per plot
        self.figure.subplots_adjust(left=0.07, right=0.99, wspace=0.15, hspace=0.12,
                                    bottom=0.5 / height, top=1 - 0.4 / height)
        self.axes = self.figure.subplots(rows, 2, squeeze=False)
        self.fills: list = [None] * rows
        self.images = [axis.imshow(np.zeros((1, 1)), origin="lower", aspect="auto", cmap="magma",
                                   interpolation="nearest") for axis in self.axes[:, 1]]
        for axis in self.axes[:, 1]:
            axis.set_ylabel("kHz")
        for axis in self.axes.flat:  # ticks are most of the drawing's cost: a few on each axis, time only at the bottom
            axis.yaxis.set_major_locator(MaxNLocator(TICKS))
        for axis in self.axes[:-1].flat:
            axis.xaxis.set_major_locator(NullLocator())
        self.axes[-1, 0].set_xlabel("seconds")
        self.axes[-1, 1].set_xlabel("seconds")

    def envelope(self, row: int, times: np.ndarray, low: np.ndarray, high: np.ndarray, peak: float,
                 name: str) -> None:
        axis = self.axes[row, 0]
        if self.fills[row] is not None:
            self.fills[row].remove()
        # unsmoothed edges: at a few columns a pixel, antialiasing changes nothing a person sees
        self.fills[row] = axis.fill_between(times, low, high, linewidth=0, antialiased=False, facecolor="C0")
        axis.set_ylim(-peak, peak)
        axis.set_ylabel(name)

    def spectrogram(self, row: int, spec_db: np.ndarray, seconds: float, khz: float,
                    limits: tuple[float, float]) -> None:
        image = self.images[row]
        image.set_data(spec_db)
        image.set_extent((0, seconds, 0, khz))
        image.set_clim(*limits)  # set_extent sets the axes' limits too


class _Canvases(threading.local):
    """Each thread's figures by (rows, dpi): Beam runs several tracks at once in one process."""

    def __init__(self) -> None:
        self.by_shape: dict[tuple[int, int], _Canvas] = {}


_CANVASES = _Canvases()


@functools.cache
def title_fonts() -> tuple[str, ...]:
    """The title's font families: matplotlib's own, then the CJK fallback where this machine has it."""
    from matplotlib import font_manager

    def known() -> set[str]:
        return {font.name for font in font_manager.fontManager.ttflist}

    if CJK_FONT not in known() and os.path.exists(CJK_FONT_FILE):
        font_manager.fontManager.addfont(CJK_FONT_FILE)  # installed after matplotlib cached its font list
    return tuple(family for family in ("DejaVu Sans", CJK_FONT) if family in known())


def _canvas(rows: int, dpi: int) -> _Canvas:
    if (rows, dpi) not in _CANVASES.by_shape:
        _CANVASES.by_shape[(rows, dpi)] = _Canvas(rows, dpi)
    return _CANVASES.by_shape[(rows, dpi)]


def render_track(mix: np.ndarray, stems: dict[str, np.ndarray], sample_rate: int, title: str,
                 dpi: int = 72) -> bytes:
    """The same plot from whole waveforms [samples, channels] in memory."""
    rows = {}
    for name, waveform in {"mix": mix, **stems}.items():
        rows[name] = Summary(sample_rate)
        rows[name].add(waveform)
    return render_summaries(rows, title, dpi)
