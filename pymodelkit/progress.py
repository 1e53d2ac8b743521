"""Progress reporting: long calls take an ``on_progress`` callback and call it with small frozen events.

The callback may be called from worker threads. ``total`` is ``None`` when the size is not known in advance (a tar
layer being built). The CLI adapts these events to tqdm; embedders plug in their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["TOTAL_PROGRESS_KEY", "BlobProgress", "ProgressCallback", "ProgressEvent"]

TOTAL_PROGRESS_KEY = "total"


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """``done`` bytes of the item ``key`` are processed, out of ``total`` (``None``: unknown). ``finished`` marks
    the item's last event."""

    key: str
    done: int
    total: int | None = None
    finished: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


class BlobProgress:
    """Thread-safe progress of several blobs, each known by key and size: one event per change for the blob, and one
    for :data:`TOTAL_PROGRESS_KEY` (its ``finished`` set once every blob is)."""

    def __init__(self, callback: ProgressCallback | None, items: Iterable[tuple[str, int]]) -> None:
        self._callback = callback
        self._totals = dict(items)
        self._done = dict.fromkeys(self._totals, 0)
        self._lock = threading.Lock()
        self._grand_total = sum(self._totals.values())
        self._overall = 0  # the sum of ``_done``, kept as it changes (update runs for every piece of every blob)

    def update(self, key: str, done: int, *, finished: bool = False) -> None:
        """``done`` bytes of blob ``key`` are through (``finished``: all of them); unchanged counts send nothing."""
        if self._callback is None:
            return
        with self._lock:
            if self._done.get(key) == done and not finished:
                return
            self._overall += done - self._done.get(key, 0)
            self._done[key] = done
            overall = self._overall
            self._callback(ProgressEvent(key, done, self._totals.get(key), finished))
            all_finished = finished and overall >= self._grand_total
            self._callback(ProgressEvent(TOTAL_PROGRESS_KEY, overall, self._grand_total, all_finished))
