"""A progress bar for local runs: tracks done out of the total, with the audio time processed.

Shown under the same rule as every bar of the product (`common.progress`: only where stderr is a
terminal), and only with in-process workers (`shown_for`): the DoFn threads of a local run share this
module's bar through `advance(run_id, ...)`. Both jobs use it: separate and preprocess.
"""
from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any, Iterator

from common.progress import enabled, progress

_bars: dict = {}
_lock = threading.Lock()


def shown_for(options: Any) -> bool:
    """Whether a run with these PipelineOptions gets a bar: a terminal, a local runner, in-process workers."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from beam_jobs.options import LOCAL_RUNNER

    local = options.view_as(StandardOptions).runner == LOCAL_RUNNER  # pipeline_options maps DirectRunner to it
    in_process = options.view_as(DirectOptions).direct_running_mode in ("in_memory", "multi_threading")
    return enabled() and local and in_process


@contextlib.contextmanager
def bar(shown: bool, total: int | None, desc: str) -> Iterator[str | None]:
    """A bar for the length of a run; yields the run id the job's steps advance (None: no bar)."""
    if not shown:
        yield None
        return
    run_id = uuid.uuid4().hex
    start(run_id, total, desc)
    try:
        yield run_id
    finally:
        stop(run_id)


def start(run_id: str, total: int | None, desc: str) -> None:
    """A bar counting to `total` tracks (None: not known yet, see `set_total`)."""
    with _lock:
        _bars[run_id] = progress(total=total, desc=desc, unit="track")
        _bars[run_id].audio_seconds = 0.0


def set_total(run_id: str | None, total: int) -> None:
    """The number of tracks, once the job has found them; a no-op where no bar was started."""
    with _lock:
        bar = _bars.get(run_id)
        if bar is not None:
            bar.total = total
            bar.refresh()


def advance(run_id: str | None, audio_seconds: float = 0.0) -> None:
    """One more track finished (done, skipped or failed); a no-op where no bar was started."""
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
