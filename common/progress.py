"""Progress bars for long local work (preprocess, train, separate, evaluate), on stderr.

A bar shows only when stderr is a terminal: logs, CI and pipes get no bar characters and no
carriage returns. Set ATSEP_PROGRESS=0 to hide the bars on a terminal too, or 1 to force them.

    for track in progress(tracks, desc="evaluate", unit="track"): ...
    with progress(total=n_bytes, desc="download", unit="B") as bar: bar.update(len(chunk))
"""
from __future__ import annotations

import os
import sys
from typing import IO, Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")
ENV = "ATSEP_PROGRESS"


def enabled(stream: IO[str] | None = None) -> bool:
    """Whether a bar would show on `stream` (default: stderr)."""
    setting = os.environ.get(ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(iterable: Iterable[T] | None = None, total: float | None = None, desc: str = "",
             unit: str = "", *, stream: IO[str] | None = None) -> tqdm:
    """A tqdm bar over `iterable` (or a manual one with `total`), silent when stderr is not a terminal."""
    stream = sys.stderr if stream is None else stream
    # some pseudo-terminals (docker exec, CI runners) report a 0 x 0 size: tqdm then draws nothing
    sized = min(_size(stream)) > 0
    return tqdm(iterable, total=total, desc=desc or None, unit=unit or "it", file=stream,
                disable=not enabled(stream), dynamic_ncols=sized, ncols=None if sized else 80,
                nrows=None if sized else 20, unit_scale=unit == "B")


def _size(stream: IO[str]) -> tuple[int, int]:
    try:
        return tuple(os.get_terminal_size(stream.fileno()))
    except (AttributeError, ValueError, OSError):
        return 0, 0
