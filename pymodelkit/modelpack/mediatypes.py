"""CNCF ModelPack layer media types and how kit maps Kitfile elements to them (spec ``modelpack.md`` §3, §7.1, §8).

A layer type is ``application/vnd.cncf.model.<kind>.v1.<format>``: ``<kind>`` one of ``weight``, ``weight.config``,
``doc``, ``code``, ``dataset``; ``<format>`` one of ``raw``, ``tar``, ``tar+gzip``, ``tar+zstd`` (no compressed raw).
Writing follows kit: model → ``weight``, parts → ``weight.config``, code and prompts → ``code``, datasets →
``dataset``, docs → ``doc``; mcpServers cannot be written. Reading maps each kind back to the KitOps layer base, so
unpack treats a ModelPack layer exactly as the KitOps layer with the same format and compression. The pre-v0.0.7
``cnai`` names are not accepted (current kit does not accept them either).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.kitfile.model import LayerKind
from pymodelkit.oci.mediatypes import LayerMediaType

__all__ = [
    "ANNOTATION_MEDIATYPE_UNTESTED",
    "ANNOTATION_TITLE",
    "MODELPACK_KINDS",
    "MODELPACK_LAYER_PREFIX",
    "ModelPackLayerType",
    "is_modelpack_layer_type",
    "modelpack_layer_type",
    "parse_layer_media_type",
]

MODELPACK_LAYER_PREFIX = "application/vnd.cncf.model."
ANNOTATION_MEDIATYPE_UNTESTED = "org.cncf.model.file.mediatype.untested"
ANNOTATION_TITLE = "org.opencontainers.image.title"

MODELPACK_KINDS = ("weight", "weight.config", "doc", "code", "dataset")
_FORMATS = ("raw", "tar")
_COMPRESSIONS = ("none", "gzip", "zstd")

# kit's parser (kitops-ml/kitops@1d50491:pkg/lib/constants/mediatype/modelpack.go).
_LAYER_RE = re.compile(r"^application/vnd\.cncf\.model\.(\w+(?:\.\w+)?)\.v1\.(\w+)(?:\+(\w+))?$")

# Kitfile element kind → ModelPack kind, as kit writes them (§7.1); mcpServers have none.
_KIND_FOR_ELEMENT: dict[str, str] = {
    "model": "weight",
    "modelpart": "weight.config",
    "code": "code",
    "dataset": "dataset",
    "docs": "doc",
    "prompt": "code",
}
# ModelPack kind → KitOps layer base, for reading (§8: weight layers after the first become parts, by the caller).
_KITOPS_BASE: dict[str, str] = {
    "weight": "model",
    "weight.config": "modelpart",
    "doc": "docs",
    "code": "code",
    "dataset": "dataset",
}


@dataclass(frozen=True, slots=True)
class ModelPackLayerType:
    """A parsed ModelPack layer media type: kind (``weight``…), format (``raw``/``tar``), compression (``none``…)."""

    kind: str
    format: str = "tar"
    compression: str = "none"

    @classmethod
    def parse(cls, text: str) -> ModelPackLayerType:
        """Parse a ModelPack layer media type.

        Raises:
            ModelKitError: not one of the 20 ModelPack layer types (the message names the type), or a compressed
                raw type (kit: ``invalid mediatype: model-spec does not support compression for raw layers``).
        """
        match = _LAYER_RE.match(text)
        if match is None:
            raise ModelKitError(f"unknown ModelPack layer media type {text!r}")
        kind, fmt, compression = match.group(1), match.group(2), match.group(3) or "none"
        if kind not in MODELPACK_KINDS:
            raise ModelKitError(f"unknown ModelPack layer media type {text!r}: invalid kind {kind}")
        if fmt not in _FORMATS:
            raise ModelKitError(f"unknown ModelPack layer media type {text!r}: invalid format {fmt}")
        if compression not in _COMPRESSIONS:
            raise ModelKitError(f"unknown ModelPack layer media type {text!r}: invalid compression {compression}")
        if fmt == "raw" and compression != "none":
            raise ModelKitError(
                f"invalid mediatype {text!r}: model-spec does not support compression for raw layers"
            )
        return cls(kind, fmt, compression)

    def to_kitops(self) -> LayerMediaType:
        """The KitOps layer type with the same bytes (``weight`` → ``model``, ``doc`` → ``docs``…)."""
        return LayerMediaType(_KITOPS_BASE[self.kind], self.format, self.compression)

    def __str__(self) -> str:
        suffix = "" if self.compression == "none" else "+" + self.compression
        return f"{MODELPACK_LAYER_PREFIX}{self.kind}.v1.{self.format}{suffix}"


def is_modelpack_layer_type(text: str) -> bool:
    """Tell whether ``text`` is in the ModelPack layer media-type family (it may still be malformed)."""
    return text.startswith(MODELPACK_LAYER_PREFIX)


def modelpack_layer_type(kind: LayerKind, layer_format: str, compression: str) -> ModelPackLayerType:
    """The ModelPack type kit writes for a Kitfile element of ``kind`` packed as ``layer_format``/``compression``.

    ``compression`` is a media-type compression (``none``, ``gzip``, ``zstd``; ``gzip-fastest`` counts as ``gzip``).

    Raises:
        PackError: an mcpServer (``mcpServers are not supported when packing in modelpack format``), or a compressed
            raw layer (``compression for raw layers is not supported for ModelPack``), as kit fails.
    """
    if kind == "mcpserver":
        raise PackError("mcpServers are not supported when packing in modelpack format")
    if kind not in _KIND_FOR_ELEMENT:
        raise PackError(f"unknown Kitfile element kind {kind!r}")
    compression = "gzip" if compression == "gzip-fastest" else compression
    if layer_format not in _FORMATS:
        raise PackError(f"invalid layer format {layer_format!r}: must be tar or raw")
    if compression not in _COMPRESSIONS:
        raise PackError(f"invalid compression {compression!r} for a ModelPack layer")
    if layer_format == "raw" and compression != "none":
        raise PackError("compression for raw layers is not supported for ModelPack")
    return ModelPackLayerType(_KIND_FOR_ELEMENT[kind], layer_format, compression)


def parse_layer_media_type(text: str) -> LayerMediaType:
    """Parse a KitOps **or** ModelPack layer media type into its KitOps form (base, format, compression).

    Unpack uses this to read both families alike: a ModelPack ``weight.v1.tar+zstd`` layer reads as KitOps
    ``model.v1.tar+zstd``.

    Raises:
        ModelKitError: neither a KitOps nor a ModelPack layer type; the message names the media type.
    """
    if LayerMediaType.is_kitops(text):
        return LayerMediaType.parse(text)
    if is_modelpack_layer_type(text):
        return ModelPackLayerType.parse(text).to_kitops()
    raise ModelKitError(f"unknown layer media type {text!r}: not a KitOps or ModelPack layer")
