"""pymodelkit: KitOps ModelKits in pure Python — Kitfiles, byte-exact packs, kit's local store, safe unpack.

The public API is re-exported here; names load lazily, so ``import pymodelkit`` is cheap::

    import pymodelkit

    result = pymodelkit.pack("my-model/", tag="churn:v1")
    pymodelkit.unpack("churn:v1", "deploy/")
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from pymodelkit._version import __version__
from pymodelkit.errors import (
    AuthError,
    DigestMismatchError,
    InvalidReferenceError,
    KitfileError,
    ModelKitError,
    NotFoundError,
    PackError,
    RegistryError,
    RegistryNotFoundError,
    SignatureError,
    SigningKeyError,
    StoreError,
    UnpackError,
    UnsafeArchiveError,
)

if TYPE_CHECKING:
    from pymodelkit.catalog import (
        ListedModelKit,
        ModelKitDiff,
        diff_modelkits,
        info,
        inspect,
        list_modelkits,
        remove,
        tag,
    )
    from pymodelkit.kitfile import (
        Code,
        Dataset,
        Docs,
        Kitfile,
        McpServer,
        Model,
        ModelPart,
        Package,
        Prompt,
        dump_kitfile,
        load_kitfile,
        read_kitfile,
        validate_kitfile,
    )
    from pymodelkit.oci import Descriptor, Digest, Manifest, Reference, parse_reference
    from pymodelkit.ocilayout.endpoint import CopyResult
    from pymodelkit.pack.pipeline import PackResult, pack
    from pymodelkit.pack.streampush import PackAndPushResult, pack_and_push
    from pymodelkit.progress import ProgressCallback, ProgressEvent
    from pymodelkit.registry.copy import copy
    from pymodelkit.registry.login import login, logout
    from pymodelkit.registry.transfer import PullResult, PushResult, pull, push
    from pymodelkit.signing.signer import sign
    from pymodelkit.signing.verification import verify
    from pymodelkit.store import LocalStore
    from pymodelkit.transports import LoadResult, load, save
    from pymodelkit.unpack.filters import UnpackFilter, parse_filter
    from pymodelkit.unpack.unpacker import UnpackResult, unpack

# The subpackages pymodelkit.pack and pymodelkit.unpack share their names with the functions pack() and unpack().
# Importing a subpackage binds it as an attribute of this package; load both now (their __init__ modules are tiny)
# and drop those bindings, so that pymodelkit.pack is always the function, whatever was imported first.
# A library configures no logging; this only keeps Python's last-resort handler from printing our warnings.
logging.getLogger("pymodelkit").addHandler(logging.NullHandler())

importlib.import_module("pymodelkit.pack")
importlib.import_module("pymodelkit.unpack")
del globals()["pack"], globals()["unpack"]

_LAZY = {
    "pymodelkit.catalog": (
        "ListedModelKit", "ModelKitDiff", "diff_modelkits", "info", "inspect", "list_modelkits", "remove", "tag",
    ),
    "pymodelkit.kitfile": (
        "Code", "Dataset", "Docs", "Kitfile", "McpServer", "Model", "ModelPart", "Package", "Prompt",
        "dump_kitfile", "load_kitfile", "read_kitfile", "validate_kitfile",
    ),
    "pymodelkit.oci": ("Descriptor", "Digest", "Manifest", "Reference", "parse_reference"),
    "pymodelkit.pack.pipeline": ("PackResult", "pack"),
    "pymodelkit.pack.streampush": ("PackAndPushResult", "pack_and_push"),
    "pymodelkit.progress": ("ProgressCallback", "ProgressEvent"),
    "pymodelkit.registry.transfer": ("PullResult", "PushResult", "pull", "push"),
    "pymodelkit.registry.login": ("login", "logout"),
    "pymodelkit.registry.copy": ("copy",),
    "pymodelkit.ocilayout.endpoint": ("CopyResult",),
    "pymodelkit.transports": ("LoadResult", "load", "save"),
    "pymodelkit.signing.signer": ("sign",),
    "pymodelkit.signing.verification": ("verify",),
    "pymodelkit.store": ("LocalStore",),
    "pymodelkit.unpack.filters": ("UnpackFilter", "parse_filter"),
    "pymodelkit.unpack.unpacker": ("UnpackResult", "unpack"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "AuthError",
    "Code",
    "CopyResult",
    "Dataset",
    "Descriptor",
    "Digest",
    "DigestMismatchError",
    "Docs",
    "InvalidReferenceError",
    "Kitfile",
    "KitfileError",
    "ListedModelKit",
    "LoadResult",
    "LocalStore",
    "Manifest",
    "McpServer",
    "Model",
    "ModelKitDiff",
    "ModelKitError",
    "ModelPart",
    "NotFoundError",
    "PackAndPushResult",
    "PackError",
    "PackResult",
    "Package",
    "ProgressCallback",
    "ProgressEvent",
    "Prompt",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryError",
    "RegistryNotFoundError",
    "SignatureError",
    "SigningKeyError",
    "StoreError",
    "UnpackError",
    "UnpackFilter",
    "UnpackResult",
    "UnsafeArchiveError",
    "__version__",
    "copy",
    "diff_modelkits",
    "dump_kitfile",
    "info",
    "inspect",
    "list_modelkits",
    "load",
    "load_kitfile",
    "login",
    "logout",
    "pack",
    "pack_and_push",
    "parse_filter",
    "parse_reference",
    "pull",
    "push",
    "read_kitfile",
    "remove",
    "save",
    "sign",
    "tag",
    "unpack",
    "validate_kitfile",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pymodelkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
