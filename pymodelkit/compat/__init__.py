"""The pykitops-compatible API: pykitops' ``Kitfile``, ``UserCredentials``, ``ModelKitReference``,
``ModelKitManager`` and ``kit.*`` functions, running on pymodelkit instead of the ``kit`` binary.

Code written for pykitops runs after changing its imports only: ``kitops.X`` becomes ``pymodelkit.compat.kitops.X``
(the same module layout), or import the names from here::

    from pymodelkit.compat import Kitfile, ModelKitManager, UserCredentials, kit

Every call is one call of the pymodelkit library; the differences from pykitops are listed in ``docs/compat.md``.
Needs pydantic: ``pip install "pymodelkit[compat]"``.
"""

from __future__ import annotations

try:
    import pydantic  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError('pymodelkit.compat needs pydantic: pip install "pymodelkit[compat]"') from exc

from pymodelkit.compat import kit
from pymodelkit.compat.kit import KitCommandError
from pymodelkit.compat.kitfile import (
    CodeEntry,
    DatasetEntry,
    DocsEntry,
    Kitfile,
    McpServerEntry,
    ModelPart,
    ModelSection,
    Package,
    PromptEntry,
)
from pymodelkit.compat.manager import ModelKitManager
from pymodelkit.compat.reference import ModelKitReference
from pymodelkit.compat.user import UserCredentials

__all__ = [
    "CodeEntry",
    "DatasetEntry",
    "DocsEntry",
    "KitCommandError",
    "Kitfile",
    "McpServerEntry",
    "ModelKitManager",
    "ModelKitReference",
    "ModelPart",
    "ModelSection",
    "Package",
    "PromptEntry",
    "UserCredentials",
    "kit",
]
