"""The OCI image layout format and the ``oci:`` / ``oci-archive:`` locations (spec ``spec/transport.md`` §1-§2).

A layout is ``oci-layout`` (``{"imageLayoutVersion":"1.0.0"}``), ``index.json`` (an image index) and
``blobs/<algorithm>/<hex>``. Each manifest in ``index.json`` carries two names: the image-spec
``org.opencontainers.image.ref.name`` (the tag alone, which is what skopeo's ``oci:PATH:NAME`` selects) and
containerd's ``io.containerd.image.name`` (the full ``registry/repository:tag``, as ``docker save`` writes it), so a
load knows which repository a ModelKit belongs to. Locations are skopeo's syntax: ``oci:PATH[:NAME]`` and
``oci-archive:PATH[:NAME]``, split at the first ``:`` after the path.

Where a plain file path is also accepted (``save -o FILE``, ``load FILE``), a path that starts like another
transport (``docker-archive:/x.tar``, ``dir:x``: a word of letters, digits, ``-`` and ``_`` before the first ``:``)
is refused rather than taken as a file name; ``./a:b.tar``, ``/data/a:b.tar`` and ``v1.0:b.tar`` (a ``/`` or ``.``
before the colon) are paths (:func:`check_archive_path`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pymodelkit.errors import InvalidReferenceError, ModelKitError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.mediatypes import MEDIA_TYPE_INDEX
from pymodelkit.oci.reference import OTHER_TRANSPORTS, Reference, parse_reference

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "ARCHIVE_PREFIX",
    "BLOBS_DIR",
    "INDEX_FILE",
    "LAYOUT_PREFIX",
    "MAX_INDEX_BYTES",
    "MAX_LAYOUT_FILE_BYTES",
    "OCI_LAYOUT_BYTES",
    "OCI_LAYOUT_FILE",
    "LayoutLocation",
    "blob_member_name",
    "check_archive_path",
    "check_name",
    "digest_of_blob_name",
    "image_name_for",
    "image_name_of",
    "index_bytes",
    "is_layout_location",
    "named_descriptor",
    "parse_index",
    "parse_layout_location",
    "parse_oci_layout",
    "ref_name_of",
    "transport_prefix",
]

OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
LAYOUT_PREFIX = "oci:"
ARCHIVE_PREFIX = "oci-archive:"
MAX_INDEX_BYTES = 4 << 20  # the registry manifest cap; an index.json of ModelKits is a few KiB
MAX_LAYOUT_FILE_BYTES = 4096
_SUPPORTED_LAYOUT_VERSION = "1.0.0"
# containers/image's oci/layout name rule (refRegexp): no ":", so a name never clashes with the path separator.
_REF_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+(?:[/+][A-Za-z0-9._-]+)*\Z")
_BLOB_NAME_RE = re.compile(r"^blobs/([a-z0-9]+(?:[.+_-][a-z0-9]+)*)/([a-zA-Z0-9=_-]+)\Z")
# What reads as a transport name before the first ":" (skopeo's are docker-archive, dir, containers-storage, ...).
_TRANSPORT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):")


@dataclass(frozen=True, slots=True)
class LayoutLocation:
    """A parsed ``oci:PATH[:NAME]`` (``kind`` ``"oci"``, a directory) or ``oci-archive:PATH[:NAME]`` (a tar file).

    ``name`` selects a manifest: a tag (``ref.name``), a full ``registry/repository:tag``, or ``None``.
    """

    kind: Literal["oci", "oci-archive"]
    path: Path
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}" + (f":{self.name}" if self.name else "")


def is_layout_location(text: str) -> bool:
    """Tell whether ``text`` names an OCI layout (``oci:…``) or an OCI archive (``oci-archive:…``)."""
    return text.startswith((LAYOUT_PREFIX, ARCHIVE_PREFIX))


def parse_layout_location(text: str) -> LayoutLocation:
    """Parse ``oci:PATH[:NAME]`` or ``oci-archive:PATH[:NAME]`` as skopeo does (split at the first ``:``).

    Raises:
        InvalidReferenceError: not such a location, an empty path, or a name that is neither a layout name (a tag
            such as ``v1``) nor a full reference.
    """
    if text.startswith(ARCHIVE_PREFIX):
        kind: Literal["oci", "oci-archive"] = "oci-archive"
        rest = text[len(ARCHIVE_PREFIX):]
    elif text.startswith(LAYOUT_PREFIX):
        kind = "oci"
        rest = text[len(LAYOUT_PREFIX):]
    else:
        raise InvalidReferenceError(f"not an oci: or oci-archive: location: {text!r}", reference=text)
    path, sep, name = rest.partition(":")
    if not path:
        raise InvalidReferenceError(f"{kind} location {text!r} has no path", reference=text)
    if sep and not name:
        raise InvalidReferenceError(f"{kind} location {text!r} has an empty name after ':'", reference=text)
    if name:
        check_name(name, text)
    return LayoutLocation(kind, Path(path), name or None)


def transport_prefix(text: str) -> str | None:
    """The transport ``text`` starts with (``docker-archive:`` of ``docker-archive:/x.tar``): a word of letters,
    digits, ``-`` and ``_`` (starting with a letter) then ``:``; ``None`` when there is none, as for ``./a:b.tar``,
    ``/data/a:b.tar`` or ``v1.0:b.tar`` (a ``/`` or ``.`` before the first colon makes a path)."""
    match = _TRANSPORT_RE.match(text)
    return match.group(0) if match else None


def check_archive_path(text: str, what: str) -> None:
    """Accept ``text`` as a plain archive path unless it starts with another tool's transport (:data:`OTHER_TRANSPORTS`,
    ``docker:``) or a URL's ``scheme://`` (``oci:`` and ``oci-archive:`` are locations, parsed by
    :func:`parse_layout_location`). ``what`` names the argument in
    the message (``-o``, ``ARCHIVE``).

    Raises:
        InvalidReferenceError: ``unknown transport 'docker-archive:' in -o 'docker-archive:/x.tar': …``, listing
            the supported ones.
    """
    prefix = transport_prefix(text)
    if prefix is None or prefix in (LAYOUT_PREFIX, ARCHIVE_PREFIX):
        return
    # Only another tool's transport, or a URL, is refused: "demo:v1.tar" or "backup-10:00.tar" is a file name.
    if prefix not in OTHER_TRANSPORTS and prefix != "docker:" and not text[len(prefix):].startswith("//"):
        return
    raise InvalidReferenceError(
        f"unknown transport {prefix!r} in {what} {text!r}: use oci-archive:FILE[:NAME], oci:DIR[:NAME] or a file "
        "path (start a file name that has a colon with ./)", reference=text,
    )


def check_name(name: str, where: str) -> None:
    """Accept a layout name (``v1``, ``sha256-<hex>.sig``) or a full ``registry/repository:tag``."""
    if _REF_NAME_RE.match(name):
        return
    try:
        ref, extra = parse_reference(name)
    except InvalidReferenceError:
        ref, extra = None, []
    if ref is None or extra or not ref.has_reference:
        raise InvalidReferenceError(
            f"invalid name {name!r} in {where}: use a tag such as v1, or registry/repository:tag", reference=where
        )


def blob_member_name(digest: Digest) -> str:
    """``blobs/<algorithm>/<hex>``: where a blob lives in a layout."""
    return f"{BLOBS_DIR}/{digest.algorithm}/{digest.hex}"


def digest_of_blob_name(name: str) -> Digest | None:
    """The digest a ``blobs/<algorithm>/<hex>`` name stands for, or ``None`` if the name is not a valid blob name."""
    match = _BLOB_NAME_RE.match(name)
    if match is None:
        return None
    try:
        return Digest.parse(f"{match.group(1)}:{match.group(2)}")
    except InvalidReferenceError:
        return None


def parse_oci_layout(data: bytes, where: str) -> None:
    """Check an ``oci-layout`` file. Raises :class:`ModelKitError` unless it says ``imageLayoutVersion`` 1.0.0."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ModelKitError(f"{where}: oci-layout is not JSON") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if version != _SUPPORTED_LAYOUT_VERSION:
        raise ModelKitError(f"{where}: unsupported oci-layout imageLayoutVersion {version!r}, expected 1.0.0")


def parse_index(data: bytes, where: str) -> list[Descriptor]:
    """The manifest descriptors of an ``index.json`` (annotations kept). Raises :class:`ModelKitError` if malformed."""
    if len(data) > MAX_INDEX_BYTES:
        raise ModelKitError(f"{where}: index.json is {len(data)} bytes, more than the {MAX_INDEX_BYTES} limit")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelKitError(f"{where}: index.json is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise ModelKitError(f"{where}: index.json is not an image index (schemaVersion 2)")
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list):
        raise ModelKitError(f"{where}: index.json manifests is not a list")
    try:
        return [Descriptor.from_json(item) for item in manifests]
    except ModelKitError as exc:
        raise ModelKitError(f"{where}: index.json: {exc}") from None


def index_bytes(manifests: Sequence[Descriptor]) -> bytes:
    """The bytes of an ``index.json`` (Go field order) listing ``manifests``."""
    doc = Struct(schemaVersion=2, mediaType=MEDIA_TYPE_INDEX, manifests=[d.to_json() for d in manifests])
    return go_json_bytes(doc)


def named_descriptor(descriptor: Descriptor, ref_name: str | None, image_name: str | None) -> Descriptor:
    """``descriptor`` with the two name annotations set (or left out when ``None``), other annotations kept."""
    annotations = {
        k: v for k, v in (descriptor.annotations or {}).items() if k not in (ANNOTATION_REF_NAME, ANNOTATION_IMAGE_NAME)
    }
    if image_name:
        annotations[ANNOTATION_IMAGE_NAME] = image_name
    if ref_name:
        annotations[ANNOTATION_REF_NAME] = ref_name
    return Descriptor(descriptor.media_type, descriptor.digest, descriptor.size, annotations or None,
                      descriptor.artifact_type)


def ref_name_of(descriptor: Descriptor) -> str | None:
    """The ``org.opencontainers.image.ref.name`` of an index entry."""
    return (descriptor.annotations or {}).get(ANNOTATION_REF_NAME) or None


def image_name_of(descriptor: Descriptor) -> Reference | None:
    """The full reference an index entry names: ``io.containerd.image.name``, else a ``ref.name`` that is itself a
    full ``registry/repository:tag`` (older containerd wrote that); ``None`` when it names only a tag or nothing."""
    annotations = descriptor.annotations or {}
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        text = annotations.get(key)
        if not text or (key == ANNOTATION_REF_NAME and "/" not in text):
            continue
        try:
            ref, extra = parse_reference(text)
        except InvalidReferenceError:
            continue
        if not extra and ref.has_reference:
            return ref
    return None


def image_name_for(ref: Reference) -> str:
    """The ``io.containerd.image.name`` we write for ``ref``: ``registry/repository:tag``, and for a local ModelKit
    ``repository:tag`` (which parses back to ``localhost/repository``, unlike ``localhost/repository:tag``)."""
    return str(ref)[len(ref.registry) + 1:] if ref.is_local else str(ref)
