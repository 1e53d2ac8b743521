"""pykitops' ``kitops.modelkit.user``: see :mod:`pymodelkit.compat.user`."""

from __future__ import annotations

from pymodelkit.compat.user import UserCredentials

__all__ = ["UserCredentials"]
