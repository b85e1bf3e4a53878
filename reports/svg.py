"""Inline SVG charts (grouped bars, lines) drawn as text: no JavaScript, nothing fetched from a network.

Each chart is an <svg> element with axes, 1-2-5 ticks, a legend, and a <title> tooltip on every bar
and point giving its exact value. Missing values (None, NaN) are drawn as "n/a", never as zero.
"""
from __future__ import annotations

import math
from typing import Sequence

from reports.html import esc

PALETTE = ("#0969da", "#d4700a", "#1a7f37", "#8250df", "#bf3989", "#1b7c83", "#8c959f")
WIDTH, HEIGHT = 520, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 30, 46


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if not high > low:
        low, high = low - 1.0, high + 1.0
    raw = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


class _Frame:
    """Plot area and the linear map from data values to SVG pixels."""

    def __init__(self, y_values: list[float], width: int, height: int, include_zero: bool):
        values = y_values + ([0.0] if include_zero else [])
        self.ticks = nice_ticks(min(values, default=0.0), max(values, default=1.0))
        self.width, self.height = width, height
        self.x0, self.x1, self.y0, self.y1 = LEFT, width - RIGHT, height - BOTTOM, TOP

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.y0 - (value - low) / (high - low) * (self.y0 - self.y1)

    def axes(self, title: str, y_label: str, x_label: str = "") -> list[str]:
        parts = [f'<text x="{self.width / 2:.0f}" y="16" text-anchor="middle" font-weight="600">'
                 f"{esc(title)}</text>"]
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
                         f'<text x="{self.x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
        parts.append(f'<line x1="{self.x0}" x2="{self.x0}" y1="{self.y1}" y2="{self.y0}" stroke="#57606a"/>')
        parts.append(f'<text transform="translate(13 {(self.y0 + self.y1) / 2:.0f}) rotate(-90)" '
                     f'text-anchor="middle">{esc(y_label)}</text>')
        if x_label:
            parts.append(f'<text x="{(self.x0 + self.x1) / 2:.0f}" y="{self.height - 4}" '
                         f'text-anchor="middle">{esc(x_label)}</text>')
        return parts

    def legend(self, names: Sequence[str]) -> list[str]:
        parts, x = [], self.x0
        for index, name in enumerate(names):
            parts.append(f'<rect x="{x}" y="{self.height - 16}" width="10" height="10" '
                         f'fill="{PALETTE[index % len(PALETTE)]}"/>'
                         f'<text x="{x + 14}" y="{self.height - 7}">{esc(name)}</text>')
            x += 24 + 7 * len(name)
        return parts


def _svg(frame: _Frame, title: str, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{esc(title)}" '
            f'width="{frame.width}" height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}">'
            + "".join(parts) + "</svg>")


def bar_chart(categories: Sequence[str], series: dict[str, Sequence[float | None]], title: str,
              y_label: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Grouped bars: one group per category, one bar per series, measured from zero (negatives go down)."""
    values = [v for row in series.values() for v in row if _finite(v)]
    frame = _Frame(values, width, height, include_zero=True)
    # the legend takes the bottom row, so category names sit just under the plot area
    frame.y0 = height - BOTTOM + 8
    parts = frame.axes(title, y_label)
    group = (frame.x1 - frame.x0) / max(len(categories), 1)
    bar = group * 0.8 / max(len(series), 1)
    zero = frame.y(0.0)
    for c, category in enumerate(categories):
        left = frame.x0 + c * group + group * 0.1
        parts.append(f'<text x="{left + group * 0.4:.1f}" y="{frame.y0 + 14:.1f}" text-anchor="middle">'
                     f"{esc(category)}</text>")
        for s, (name, row) in enumerate(series.items()):
            value = row[c] if c < len(row) else None
            x = left + s * bar
            tip = f"{esc(name)} {esc(category)}: {_label(value) if _finite(value) else 'n/a'}"
            if not _finite(value):
                parts.append(f'<text x="{x + bar / 2:.1f}" y="{zero - 3:.1f}" text-anchor="middle" '
                             f'fill="#57606a"><title>{tip}</title>n/a</text>')
                continue
            top, bottom = sorted((frame.y(value), zero))
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar * 0.92:.1f}" '
                         f'height="{max(bottom - top, 0.5):.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                         f"<title>{tip}</title></rect>")
    parts.append(f'<line x1="{frame.x0}" x2="{frame.x1}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#57606a"/>')
    return _svg(frame, title, parts + frame.legend(list(series)))


def line_chart(series: dict[str, Sequence[tuple[float, float]]], title: str, y_label: str,
               x_label: str = "epoch", width: int = WIDTH, height: int = HEIGHT) -> str:
    """One polyline with point markers per series of (x, y) points; non-finite points are skipped."""
    clean = {name: [(x, y) for x, y in points if _finite(x) and _finite(y)] for name, points in series.items()}
    frame = _Frame([y for points in clean.values() for _, y in points], width, height, include_zero=False)
    xs = [x for points in clean.values() for x, _ in points] or [0.0, 1.0]
    low, high = min(xs), max(xs)
    span = (high - low) or 1.0
    to_x = lambda x: frame.x0 + 8 + (x - low) / span * (frame.x1 - frame.x0 - 16)  # noqa: E731
    parts = frame.axes(title, y_label, x_label)
    whole = all(float(x).is_integer() for x in xs)  # epochs: no ticks at 1.5
    for tick in sorted({low, high, *(nice_ticks(low, high)[1:-1] if high > low else [])}):
        if low <= tick <= high and (not whole or float(tick).is_integer()):
            parts.append(f'<text x="{to_x(tick):.1f}" y="{frame.y0 + 14}" text-anchor="middle">'
                         f"{_label(tick)}</text>")
    for index, (name, points) in enumerate(clean.items()):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{to_x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        if len(points) > 1:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{to_x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{color}">'
                  f"<title>{esc(name)} at {_label(x)}: {_label(y)}</title></circle>" for x, y in points]
    if not any(clean.values()):
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">no data</text>')
    return _svg(frame, title, parts + frame.legend(list(clean)))
