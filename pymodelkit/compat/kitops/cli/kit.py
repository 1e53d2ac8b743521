"""pykitops' ``kitops.cli.kit`` (``import kitops.cli.kit as kit``): see :mod:`pymodelkit.compat.kit`."""

from __future__ import annotations

from pymodelkit.compat.kit import (
    KitCommandError,
    import_from_hf,
    info,
    init,
    inspect,
    list,
    login,
    logout,
    pack,
    pull,
    push,
    remove,
    tag,
    unpack,
    version,
)

__all__ = [
    "KitCommandError",
    "import_from_hf",
    "info",
    "init",
    "inspect",
    "list",
    "login",
    "logout",
    "pack",
    "pull",
    "push",
    "remove",
    "tag",
    "unpack",
    "version",
]
