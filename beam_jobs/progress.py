"""A progress bar for local runs: tracks done out of the total, with the audio time separated.

Shown under the same rule as every bar of the product (`atsep.progress`: only where stderr is a
terminal), and only with in-process workers: the DoFn threads of a local run share this module's bar
through `advance(run_id, ...)`.
"""
from __future__ import annotations

import threading

from atsep.progress import enabled, progress

_bars: dict = {}
_lock = threading.Lock()


def wanted() -> bool:
    return enabled()


def start(run_id: str, total: int) -> None:
    with _lock:
        _bars[run_id] = progress(total=total, desc="separate", unit="track")
        _bars[run_id].audio_seconds = 0.0


def advance(run_id: str | None, audio_seconds: float = 0.0) -> None:
    """One more track finished (separated, skipped or failed); a no-op where no bar was started."""
    with _lock:
        bar = _bars.get(run_id)
        if bar is None:
            return
        bar.audio_seconds += audio_seconds
        bar.set_postfix_str(f"{bar.audio_seconds / 60:.1f} min of audio", refresh=False)
        bar.update(1)


def stop(run_id: str) -> None:
    with _lock:
        bar = _bars.pop(run_id, None)
    if bar is not None:
        bar.close()
