"""kit's per-repository files: ``<b64>-index.json`` (the repo's manifests) and ``<b64>-tags.json`` (spec §3.2).

The index is Go's ``json.Marshal`` of an image-spec Index without ``mediaType``,
``{"schemaVersion":2,"manifests":[…]}``, de-duplicated by digest in insertion order. The tags file is a Go map,
tag -> manifest descriptor, so its keys are sorted. Either file is deleted when it would be empty. Every write
replaces the file atomically; callers hold the store lock around a read-modify-write.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from pymodelkit._atomic import write_atomic
from pymodelkit.errors import InvalidReferenceError, ModelKitError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.store.layout import FILE_MODE

__all__ = [
    "ANNOTATION_REF_NAME",
    "check_tag",
    "read_repo_manifests",
    "read_repo_tags",
    "tags_for",
    "write_repo_manifests",
    "write_repo_tags",
]

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# oras' tag pattern; ASCII-only \w as in Go, and \Z so that a trailing newline is not accepted.
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}\Z", re.ASCII)


def check_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag. Raises :class:`InvalidReferenceError` otherwise."""
    if not _TAG_RE.match(tag):
        raise InvalidReferenceError(
            f"invalid tag {tag!r}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}", reference=tag
        )
    return tag


def read_repo_manifests(path: Path) -> list[Descriptor]:
    """The manifests of a repo index file, de-duplicated by digest (empty when the file is absent).

    Raises:
        StoreError: the file is not a JSON index.
    """
    doc = _read_json(path)
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise StoreError(f"invalid repository index {path}: not a JSON object", path=str(path))
    raw = doc.get("manifests") or []
    if not isinstance(raw, list):
        raise StoreError(f"invalid repository index {path}: manifests is not a list", path=str(path))
    try:
        return _dedupe(_strip_ref_name(Descriptor.from_json(item)) for item in raw)
    except (ValueError, ModelKitError) as exc:
        raise StoreError(f"invalid repository index {path}: {exc}", path=str(path)) from None


def write_repo_manifests(path: Path, manifests: Iterable[Descriptor]) -> None:
    """Replace the repo index with ``manifests`` (de-duplicated, order kept); delete the file when empty."""
    unique = _dedupe(_strip_ref_name(d) for d in manifests)
    if not unique:
        _remove(path)
        return
    doc = Struct(schemaVersion=2, manifests=[d.to_json() for d in unique])
    write_atomic(path, go_json_bytes(doc), mode=FILE_MODE)


def read_repo_tags(path: Path) -> dict[str, Descriptor]:
    """The tag map of a tags file (empty when the file is absent).

    Raises:
        StoreError: the file is not a JSON object of descriptors.
    """
    doc = _read_json(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise StoreError(f"invalid tags file {path}: not a JSON object", path=str(path))
    try:
        return {str(tag): Descriptor.from_json(desc) for tag, desc in doc.items()}
    except (ValueError, ModelKitError) as exc:
        raise StoreError(f"invalid tags file {path}: {exc}", path=str(path)) from None


def write_repo_tags(path: Path, tags: Mapping[str, Descriptor]) -> None:
    """Replace the tags file with ``tags`` (keys sorted, as a Go map); delete the file when empty."""
    if not tags:
        _remove(path)
        return
    doc = {tag: desc.to_json() for tag, desc in tags.items()}
    write_atomic(path, go_json_bytes(doc), mode=FILE_MODE)


def tags_for(tags: Mapping[str, Descriptor], digest: Digest) -> tuple[str, ...]:
    """The tags in ``tags`` that point at ``digest``, sorted."""
    return tuple(sorted(tag for tag, desc in tags.items() if desc.digest == digest))


def _read_json(path: Path) -> object:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"invalid JSON in {path}: {exc}", path=str(path)) from None


def _strip_ref_name(desc: Descriptor) -> Descriptor:
    if not desc.annotations or ANNOTATION_REF_NAME not in desc.annotations:
        return desc
    rest = {k: v for k, v in desc.annotations.items() if k != ANNOTATION_REF_NAME}
    return Descriptor(desc.media_type, desc.digest, desc.size, rest or None, desc.artifact_type)


def _dedupe(descriptors: Iterable[Descriptor]) -> list[Descriptor]:
    seen: set[Digest] = set()
    out: list[Descriptor] = []
    for desc in descriptors:
        if desc.digest not in seen:
            seen.add(desc.digest)
            out.append(desc)
    return out


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
