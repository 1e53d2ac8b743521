"""Media types of ModelKits: the manifest, config and layer types kit writes and reads (spec ``format.md``).

Layer types are ``application/vnd.kitops.modelkit.<base>.v1.<format>[+<compression>]``. Reading accepts what older kit
wrote too (tar only, an unanchored pattern whose missing suffix means no compression).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymodelkit.errors import ModelKitError

__all__ = [
    "ANNOTATION_CLI_VERSION",
    "ANNOTATION_CREATED",
    "ANNOTATION_FILEPATH",
    "ANNOTATION_FILE_METADATA",
    "ANNOTATION_KITFILE",
    "ANNOTATION_LAYER_SUBTYPE",
    "ANNOTATION_TOOL_VERSION",
    "ARTIFACT_TYPE_MODELKIT",
    "ARTIFACT_TYPE_MODELPACK",
    "COMPRESSIONS",
    "LAYER_BASES",
    "LAYER_FORMATS",
    "MEDIA_TYPE_DOCKER_MANIFEST",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_MANIFEST",
    "MEDIA_TYPE_MODELKIT_CONFIG",
    "MEDIA_TYPE_MODELPACK_CONFIG",
    "LayerMediaType",
]

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_MODELKIT_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
ARTIFACT_TYPE_MODELKIT = "application/vnd.kitops.modelkit.manifest.v1+json"
MEDIA_TYPE_MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
ARTIFACT_TYPE_MODELPACK = "application/vnd.cncf.model.manifest.v1+json"

ANNOTATION_CLI_VERSION = "ml.kitops.modelkit.cli-version"
ANNOTATION_KITFILE = "ml.kitops.modelkit.kitfile"
ANNOTATION_LAYER_SUBTYPE = "ml.kitops.modelkit.layer-subtype"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
# Our own tool-version annotation, written in place of kit's cli-version one.
ANNOTATION_TOOL_VERSION = "dev.pymodelkit.version"

LAYER_BASES = ("model", "modelpart", "dataset", "code", "docs", "mcpb")
LAYER_FORMATS = ("tar", "raw")
COMPRESSIONS = ("none", "gzip", "zstd")

_PREFIX = "application/vnd.kitops.modelkit."
_CURRENT_RE = re.compile(r"^application/vnd\.kitops\.modelkit\.(\w+)\.v1\.(\w+)(?:\+(\w+))?$")
_OLDER_RE = re.compile(r"^application/vnd.kitops.modelkit.(\w+).v1.tar(?:\+(\w+))?")


@dataclass(frozen=True, slots=True)
class LayerMediaType:
    """A parsed KitOps layer media type: base (``model``…), format (``tar``/``raw``), compression (``none``…)."""

    base: str
    format: str = "tar"
    compression: str = "none"

    @classmethod
    def parse(cls, text: str) -> LayerMediaType:
        """Parse a KitOps layer media type, accepting older kit's forms. Raises :class:`ModelKitError`."""
        match = _CURRENT_RE.match(text)
        if match:
            base, fmt, comp = match.group(1), match.group(2), match.group(3) or "none"
        else:
            older = _OLDER_RE.match(text)
            if not older:
                raise ModelKitError(f"failed to parse media type: unrecognized layer media type {text!r}")
            base, fmt, comp = older.group(1), "tar", older.group(2) or "none"
        if base not in LAYER_BASES:
            raise ModelKitError(f"failed to parse media type: invalid base type {base}")
        if fmt not in LAYER_FORMATS:
            raise ModelKitError(f"failed to parse media type: invalid format {fmt}")
        if comp not in COMPRESSIONS:
            raise ModelKitError(f"failed to parse media type: invalid compression type {comp}")
        return cls(base, fmt, comp)

    @staticmethod
    def is_kitops(text: str) -> bool:
        """Tell whether ``text`` is in the KitOps layer media-type family."""
        return text.startswith(_PREFIX)

    def __str__(self) -> str:
        suffix = "" if self.compression == "none" else "+" + self.compression
        return f"{_PREFIX}{self.base}.v1.{self.format}{suffix}"
