"""OCI image manifests as kit writes them, and their one canonical byte form (spec ``format.md``, "Manifest").

Key order is Go's image-spec struct order: schemaVersion, mediaType, artifactType, config, layers, subject,
annotations. ``layers`` of ``None`` encodes as ``"layers":null``, which is what kit writes for an empty ModelKit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from pymodelkit.errors import ModelKitError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.mediatypes import (
    ARTIFACT_TYPE_MODELKIT,
    ARTIFACT_TYPE_MODELPACK,
    MEDIA_TYPE_MANIFEST,
    MEDIA_TYPE_MODELKIT_CONFIG,
    MEDIA_TYPE_MODELPACK_CONFIG,
)

__all__ = ["MAX_MANIFEST_BYTES", "Manifest"]

MAX_MANIFEST_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Manifest:
    """An OCI image manifest. ``to_json_bytes()`` gives the exact bytes whose sha256 is the manifest digest."""

    config: Descriptor
    layers: tuple[Descriptor, ...] | None
    annotations: Mapping[str, str] | None = None
    media_type: str | None = MEDIA_TYPE_MANIFEST
    artifact_type: str | None = ARTIFACT_TYPE_MODELKIT
    schema_version: int = 2
    subject: Descriptor | None = None

    def to_json(self) -> Struct:
        """The manifest as a Go-ordered JSON object."""
        out = Struct(schemaVersion=self.schema_version)
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = None if self.layers is None else [layer.to_json() for layer in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_json_bytes(self) -> bytes:
        """The canonical bytes of this manifest, identical to Go's ``json.Marshal``."""
        return go_json_bytes(self.to_json())

    @property
    def format(self) -> str:
        """``"kitops"`` or ``"modelpack"``, detected as kit does (artifactType first, then the config type)."""
        if self.artifact_type == ARTIFACT_TYPE_MODELKIT or self.config.media_type == MEDIA_TYPE_MODELKIT_CONFIG:
            return "kitops"
        if (
            self.artifact_type == ARTIFACT_TYPE_MODELPACK
            or self.config.media_type == MEDIA_TYPE_MODELPACK_CONFIG
        ):
            return "modelpack"
        raise ModelKitError(
            "manifest is not a Model manifest: artifactType is "
            f"{self.artifact_type or ''}, config mediaType is {self.config.media_type}"
        )

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Parse manifest bytes. Raises :class:`ModelKitError` when they are not an OCI image manifest."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise ModelKitError(f"manifest is {len(data)} bytes, more than the 4 MiB limit")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelKitError(f"invalid manifest JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ModelKitError("invalid manifest: not a JSON object")
        if doc.get("schemaVersion") != 2:
            raise ModelKitError(f"invalid manifest: schemaVersion {doc.get('schemaVersion')!r}, expected 2")
        if "config" not in doc:
            raise ModelKitError("invalid manifest: no config descriptor")
        raw_layers = doc.get("layers")
        if raw_layers is not None and not isinstance(raw_layers, list):
            raise ModelKitError("invalid manifest: layers is not a list")
        annotations = doc.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            raise ModelKitError("invalid manifest: annotations is not an object")
        subject = doc.get("subject")
        return cls(
            config=Descriptor.from_json(doc["config"]),
            layers=None if raw_layers is None else tuple(Descriptor.from_json(d) for d in raw_layers),
            annotations={str(k): str(v) for k, v in annotations.items()} if annotations else None,
            media_type=doc.get("mediaType"),
            artifact_type=doc.get("artifactType"),
            schema_version=2,
            subject=Descriptor.from_json(subject) if subject else None,
        )
