"""pykitops' ``kitops.modelkit``: the Kitfile section models (its ``__all__``), and the submodules ``kitfile``,
``manager``, ``reference``, ``user`` and ``utils``."""

from __future__ import annotations

from pymodelkit.compat.kitfile import CodeEntry, DatasetEntry, DocsEntry, ModelSection, Package

__all__ = ["CodeEntry", "DatasetEntry", "DocsEntry", "ModelSection", "Package"]
