"""pykitops' ``kitops.modelkit.kitfile``: see :mod:`pymodelkit.compat.kitfile`."""

from __future__ import annotations

from pymodelkit.compat.kitfile import Kitfile

__all__ = ["Kitfile"]
