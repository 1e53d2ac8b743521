"""Unpacking ModelKits: filters, safe extraction, and the ``unpack`` call.

``unpack`` and ``UnpackResult`` are imported lazily so that ``filters`` and ``extract`` load on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymodelkit.unpack.unpacker import UnpackResult, unpack

__all__ = ["UnpackResult", "unpack"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pymodelkit.unpack import unpacker

        return getattr(unpacker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
