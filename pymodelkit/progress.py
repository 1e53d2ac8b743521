"""Progress reporting: long calls take an ``on_progress`` callback and call it with small frozen events.

The callback may be called from worker threads. ``total`` is ``None`` when the size is not known in advance (a tar
layer being built). The CLI adapts these events to tqdm; embedders plug in their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProgressCallback", "ProgressEvent"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """``done`` bytes of the item ``key`` are processed, out of ``total`` (``None``: unknown). ``finished`` marks
    the item's last event."""

    key: str
    done: int
    total: int | None = None
    finished: bool = False


ProgressCallback = Callable[[ProgressEvent], None]
