"""Packing ModelKits: the layer plan, the deterministic tar stream, codecs, and the ``pack`` call.

``pack`` and ``PackResult`` are imported lazily so that the building blocks (``ignore``, ``walk``, ``tarstream``,
``compression``) load without the store and the Kitfile machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymodelkit.pack.pipeline import PackResult, pack

__all__ = ["PackResult", "pack"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pymodelkit.pack import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
