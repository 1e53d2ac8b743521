"""tqdm progress bars for the CLI, fed by the library's progress events: one bar per item."""

from __future__ import annotations

import threading

from tqdm import tqdm

from pymodelkit.progress import ProgressEvent

__all__ = ["TqdmProgress"]


class TqdmProgress:
    """A ``ProgressCallback`` that draws one byte-counting bar per event key; safe to call from threads."""

    def __init__(self) -> None:
        self._bars: dict[str, tqdm] = {}
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            bar = self._bars.get(event.key)
            if bar is None:
                bar = tqdm(total=event.total, desc=event.key, unit="B", unit_scale=True, unit_divisor=1024,
                           leave=True, position=len(self._bars))
                self._bars[event.key] = bar
            if event.total is not None and bar.total != event.total:
                bar.total = event.total
            bar.update(event.done - bar.n)
            if event.finished:
                bar.close()
