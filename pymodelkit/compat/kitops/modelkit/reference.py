"""pykitops' ``kitops.modelkit.reference``: see :mod:`pymodelkit.compat.reference`."""

from __future__ import annotations

from pymodelkit.compat.reference import ModelKitReference

__all__ = ["ModelKitReference"]
