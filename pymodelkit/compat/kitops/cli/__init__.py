"""pykitops' ``kitops.cli``: the ``kit`` module of functions standing for kit commands."""

from __future__ import annotations

from pymodelkit.compat.kitops.cli import kit

__all__ = ["kit"]
