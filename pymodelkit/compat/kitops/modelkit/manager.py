"""pykitops' ``kitops.modelkit.manager``: see :mod:`pymodelkit.compat.manager`."""

from __future__ import annotations

from pymodelkit.compat.manager import ModelKitManager

__all__ = ["ModelKitManager"]
