"""OCI content descriptors: media type, digest, size and annotations, with Go's field order in JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pymodelkit.errors import ModelKitError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct

__all__ = ["Descriptor"]


@dataclass(frozen=True, slots=True)
class Descriptor:
    """Points at one blob. ``annotations`` is an immutable view: build a new descriptor to change it."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] | None = field(default=None)
    artifact_type: str | None = None

    def to_json(self) -> Struct:
        """The descriptor as a Go-ordered JSON object (mediaType, digest, size, annotations, artifactType)."""
        out = Struct(mediaType=self.media_type, digest=str(self.digest), size=self.size)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, data: object) -> Descriptor:
        """Build a descriptor from a decoded JSON object. Raises :class:`ModelKitError` when malformed."""
        if not isinstance(data, Mapping):
            raise ModelKitError("invalid descriptor: not a JSON object")
        try:
            media_type = data.get("mediaType", "")
            digest = Digest.parse(str(data["digest"]))
            size = data["size"]
        except KeyError as exc:
            raise ModelKitError(f"invalid descriptor: missing {exc.args[0]!r}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ModelKitError(f"invalid descriptor size {size!r}")
        annotations = data.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, Mapping) and all(isinstance(v, str) for v in annotations.values())
        ):
            raise ModelKitError("invalid descriptor annotations: must map strings to strings")
        artifact_type = data.get("artifactType")
        return cls(
            media_type=str(media_type),
            digest=digest,
            size=size,
            annotations=dict(annotations) if annotations else None,
            artifact_type=str(artifact_type) if artifact_type else None,
        )
