"""Batching across songs: threads that share one model merge their pending patches into one network call.

Each Beam worker process holds one model that several DoFn threads (several songs) use at once. Here a
caller that finds the network idle runs it on every request waiting at that moment (up to `max_rows`
patches); callers that arrive meanwhile wait and go in the next call. With one thread this is a plain
call; with many, batches grow by themselves, which is what a GPU wants and costs a CPU nothing.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

MaskFn = Callable[[np.ndarray], dict[str, np.ndarray]]


class _Request:
    def __init__(self, magnitude: np.ndarray):
        self.magnitude = magnitude
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self.done = False


class CoalescingMaskFn:
    """A thread-safe mask function [batch, frames, bins, channels] -> {head: masks of that shape}."""

    def __init__(self, mask_fn: MaskFn, max_rows: int = 16):
        self.mask_fn, self.max_rows = mask_fn, max_rows
        self._changed = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False
        self.calls = 0  # network calls made (tests and benchmarks read it)

    def __call__(self, magnitude: np.ndarray) -> dict[str, np.ndarray]:
        request = _Request(magnitude)
        with self._changed:
            self._waiting.append(request)
            while True:
                while not request.done and self._busy:
                    self._changed.wait()
                if request.done:
                    return self._answer(request)
                # the network is idle: run it for whoever waits, this request among the first
                self._busy = True
                batch = self._take()
                self._changed.release()
                try:
                    self._run(batch)
                finally:
                    self._changed.acquire()
                    self._busy = False
                    self._changed.notify_all()

    def _take(self) -> list[_Request]:
        """The oldest waiting requests up to max_rows patches (always at least one); shapes must match."""
        batch, rows = [], 0
        shape = self._waiting[0].magnitude.shape[1:]
        for request in list(self._waiting):
            size = request.magnitude.shape[0]
            if batch and (rows + size > self.max_rows or request.magnitude.shape[1:] != shape):
                continue
            batch.append(request)
            rows += size
            self._waiting.remove(request)
        return batch

    def _run(self, batch: list[_Request]) -> None:
        try:
            self.calls += 1
            stacked = np.concatenate([request.magnitude for request in batch]) if len(batch) > 1 \
                else batch[0].magnitude
            masks = self.mask_fn(stacked)
            first = 0
            for request in batch:
                last = first + request.magnitude.shape[0]
                request.result = {head: mask[first:last] for head, mask in masks.items()}
                first = last
        except BaseException as error:  # noqa: BLE001 - every caller in the batch gets the error
            for request in batch:
                request.error = error
        for request in batch:
            request.done = True

    @staticmethod
    def _answer(request: _Request) -> dict[str, np.ndarray]:
        if request.error is not None:
            raise request.error
        return request.result
