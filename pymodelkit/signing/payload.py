"""cosign's "simple signing" payload: exact bytes out, tolerant parsing in (spec signing.md §2, §6).

The payload is Go ``json.Marshal`` of sigstore's ``payload.Cosign`` struct: compact, keys in struct order
(``critical`` → ``identity``/``docker-reference``, ``image``/``docker-manifest-digest``, ``type``; then ``optional``),
``optional`` ``null`` without annotations and a key-sorted object with them, ``<``, ``>``, ``&``, U+2028 and U+2029
escaped as Go escapes them. Readers match keys case-insensitively, as Go's decoder does (old cosign wrote
``"Critical"``...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymodelkit.errors import SignatureError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.reference import Reference

__all__ = [
    "DOCKER_HUB_REGISTRY",
    "SIMPLE_SIGNING_TYPE",
    "SimpleSigningClaims",
    "docker_reference",
    "parse_simple_signing_payload",
    "simple_signing_payload",
]

SIMPLE_SIGNING_TYPE = "cosign container image signature"
DOCKER_HUB_REGISTRY = "index.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", DOCKER_HUB_REGISTRY})


def docker_reference(ref: Reference) -> str:
    """The repository without tag or digest, normalised as go-containerregistry does.

    ``docker.io`` becomes ``index.docker.io`` and a one-component Docker Hub repository gains ``library/``
    (``docker.io/ubuntu`` → ``index.docker.io/library/ubuntu``). Other registries, ports included, stay as they are.
    """
    registry, repository = ref.registry, ref.repository
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB_REGISTRY
        if "/" not in repository:
            repository = "library/" + repository
    return f"{registry}/{repository}"


def simple_signing_payload(
    docker_ref: str, manifest_digest: Digest | str, annotations: Mapping[str, object] | None = None
) -> bytes:
    """The payload bytes cosign signs for ``manifest_digest``, byte for byte as Go's ``json.Marshal`` writes them.

    ``annotations`` (cosign's ``-a k=v``) become ``optional``; none or an empty mapping gives ``"optional":null``.
    """
    digest = Digest.parse(manifest_digest) if isinstance(manifest_digest, str) else manifest_digest
    document = Struct(
        critical=Struct(
            identity=Struct({"docker-reference": docker_ref}),
            image=Struct({"docker-manifest-digest": str(digest)}),
            type=SIMPLE_SIGNING_TYPE,
        ),
        optional=dict(annotations) if annotations else None,
    )
    return go_json_bytes(document)


@dataclass(frozen=True)
class SimpleSigningClaims:
    """What a simple-signing payload claims. ``optional`` is ``None`` when the payload has ``null`` or no key."""

    docker_reference: str
    manifest_digest: str
    type: str
    optional: dict[str, Any] | None


def _fold_get(pairs: list[tuple[str, Any]], name: str) -> tuple[bool, Any]:
    """Go's field matching: any key equal to ``name`` under case folding; the last one in the document wins."""
    found, value = False, None
    wanted = name.casefold()
    for key, item in pairs:
        if key.casefold() == wanted:
            found, value = True, item
    return found, value


class _Object(list[tuple[str, Any]]):
    """A JSON object kept as its (key, value) pairs, in document order, duplicates included."""


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    return _Object(pairs)


def _plain(value: Any) -> Any:
    """Turn parsed :class:`_Object` values back into dicts (last duplicate wins, as in Go)."""
    if isinstance(value, _Object):
        return {key: _plain(item) for key, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def parse_simple_signing_payload(data: bytes) -> SimpleSigningClaims:
    """Parse a simple-signing payload the way cosign's verifier does (case-insensitive keys).

    ``critical.image.docker-manifest-digest`` is required; ``docker-reference`` and ``type`` default to ``""``.
    Neither is checked here: cosign checks only the digest and the ``optional`` annotations.

    Raises:
        SignatureError: not UTF-8 JSON, or a field of the wrong shape.
    """
    try:
        document = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_object)
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("malformed simple-signing payload: not UTF-8 JSON") from None
    if not isinstance(document, _Object):
        raise SignatureError("malformed simple-signing payload: not a JSON object")
    critical = _required_member(document, "critical")
    identity = _member(critical, "identity")
    image = _required_member(critical, "image")
    digest = _string(image, "docker-manifest-digest", required=True)
    reference = _string(identity, "docker-reference") if identity is not None else ""
    type_ = _string(critical, "type")
    found, optional = _fold_get(document, "optional")
    if found and optional is not None and not isinstance(optional, _Object):
        raise SignatureError("malformed simple-signing payload: optional is not an object")
    return SimpleSigningClaims(
        docker_reference=reference,
        manifest_digest=digest,
        type=type_,
        optional=_plain(optional) if optional is not None else None,
    )


def _member(parent: _Object, name: str) -> _Object | None:
    found, value = _fold_get(parent, name)
    if not found or value is None:
        return None
    if not isinstance(value, _Object):
        raise SignatureError(f"malformed simple-signing payload: {name} is not an object")
    return value


def _required_member(parent: _Object, name: str) -> _Object:
    value = _member(parent, name)
    if value is None:
        raise SignatureError(f"malformed simple-signing payload: {name} is missing")
    return value


def _string(parent: _Object, name: str, *, required: bool = False) -> str:
    found, value = _fold_get(parent, name)
    if (not found or value is None) and not required:
        return ""
    if not isinstance(value, str):
        raise SignatureError(f"malformed simple-signing payload: {name} is missing or not a string")
    return value
