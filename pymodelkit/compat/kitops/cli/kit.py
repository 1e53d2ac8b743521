"""pykitops' ``kitops.cli.kit`` (``import kitops.cli.kit as kit``): see :mod:`pymodelkit.compat.kit`."""

from __future__ import annotations

from pymodelkit.compat import kit as _kit
from pymodelkit.compat.kit import *  # noqa: F403  (the same functions under pykitops' module path)

__all__ = _kit.__all__  # ("list" here is kit.list, not the builtin)
