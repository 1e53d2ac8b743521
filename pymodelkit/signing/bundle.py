"""Sigstore bundle v0.3 with a DSSE envelope around an in-toto statement: cosign v3's signature (spec signing.md §8.2).

The statement names the signed manifest digest as its subject and carries the ``-a`` annotations in
``subject[0].annotations``; the envelope's signature is over the DSSE pre-authentication encoding (PAE) of the
statement. The bundle is protobuf JSON (camelCase, empty fields omitted) with only ``publicKey.hint`` as
verification material: no transparency log entry, no timestamp (verify with ``--insecure-ignore-tlog=true``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymodelkit.errors import SignatureError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.signing.keys import SigningKey, VerificationKey

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "COSIGN_SIGN_PREDICATE_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "IN_TOTO_STATEMENT_V1",
    "BundleClaims",
    "build_bundle",
    "bundle_version",
    "in_toto_statement",
    "pae",
    "verify_bundle",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
_STATEMENT_TYPES = frozenset({IN_TOTO_STATEMENT_V1, "https://in-toto.io/Statement/v0.1"})
_MEDIA_TYPE_RE = re.compile(
    r"application/vnd\.dev\.sigstore\.bundle(?:\.v(\d+)\.(\d+)\+json|\+json;version=(\d+)\.(\d+))", re.ASCII
)
_SUBJECT_ALGORITHMS = ("sha256", "sha384", "sha512")


def bundle_version(media_type: str) -> tuple[int, int] | None:
    """The (major, minor) of a sigstore bundle media type (``…bundle.v0.3+json`` or ``…bundle+json;version=0.2``)."""
    match = _MEDIA_TYPE_RE.fullmatch(media_type)
    if match is None:
        return None
    major, minor = (match.group(1), match.group(2)) if match.group(1) is not None else (match.group(3), match.group(4))
    return int(major), int(minor)


def in_toto_statement(manifest_digest: Digest | str, annotations: Mapping[str, str] | None = None) -> bytes:
    """The in-toto Statement v1 cosign v3 signs: one subject (the manifest digest), predicate type cosign/sign/v1."""
    digest = Digest.parse(manifest_digest) if isinstance(manifest_digest, str) else manifest_digest
    subject = Struct(digest={digest.algorithm: digest.hex})
    if annotations:
        subject["annotations"] = dict(annotations)
    statement = Struct(
        _type=IN_TOTO_STATEMENT_V1, subject=[subject], predicateType=COSIGN_SIGN_PREDICATE_TYPE, predicate={}
    )
    return go_json_bytes(statement)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: ``"DSSEv1" SP len(type) SP type SP len(body) SP body`` (byte lengths)."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), bytes(payload))


def build_bundle(key: SigningKey, manifest_digest: Digest | str, annotations: Mapping[str, str] | None = None) -> bytes:
    """A sigstore bundle v0.3 (JSON bytes) whose DSSE envelope signs :func:`in_toto_statement` with ``key``."""
    statement = in_toto_statement(manifest_digest, annotations)
    signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement))
    bundle = Struct(
        mediaType=BUNDLE_MEDIA_TYPE,
        verificationMaterial=Struct(publicKey=Struct(hint=key.public_key().hint)),
        dsseEnvelope=Struct(
            payload=_b64(statement),
            payloadType=IN_TOTO_PAYLOAD_TYPE,
            signatures=[Struct(sig=_b64(signature))],
        ),
    )
    return go_json_bytes(bundle)


@dataclass(frozen=True)
class BundleClaims:
    """What a verified bundle's statement claims: ``alg:hex`` subject digests, subject[0] annotations, predicate;
    ``payload`` is the statement's bytes and ``subject_annotations`` each subject digest's own annotations."""

    subject_digests: tuple[str, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    predicate_type: str = ""
    payload: bytes = field(default=b"", compare=False, repr=False)
    subject_annotations: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)

    def annotations_for(self, digest: str) -> dict[str, str]:
        """The annotations of the subject with ``digest`` (``alg:hex``); empty when no subject has it. Claims are
        checked against the subject that names the artifact, not another one of the statement."""
        return self.subject_annotations.get(digest.lower(), {})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: object, what: str) -> bytes:
    """protobuf JSON ``bytes``: standard or URL-safe base64, padding optional."""
    if not isinstance(text, str):
        raise SignatureError(f"malformed sigstore bundle: {what} is not a base64 string")
    normal = text.replace("-", "+").replace("_", "/")
    normal += "=" * (-len(normal) % 4)
    try:
        return base64.b64decode(normal, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"malformed sigstore bundle: {what} is not valid base64") from None


def verify_bundle(data: bytes, key: VerificationKey) -> BundleClaims | None:
    """Check a sigstore bundle's DSSE signature with ``key`` and return the claims of its in-toto statement.

    Requires a bundle media type of version 0.3 or later, a ``dsseEnvelope`` with payload type
    ``application/vnd.in-toto+json``, and at least one signature that verifies over the PAE. The statement is parsed
    only after a signature verified. The caller checks the claims (subject digest, annotations).

    Returns:
        The claims, or ``None`` when no signature of the envelope verifies with ``key``.

    Raises:
        SignatureError: the bundle or its statement is malformed or of an unsupported kind.
    """
    try:
        bundle = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("malformed sigstore bundle: not UTF-8 JSON") from None
    if not isinstance(bundle, dict):
        raise SignatureError("malformed sigstore bundle: not a JSON object")
    media_type = bundle.get("mediaType")
    version = bundle_version(media_type) if isinstance(media_type, str) else None
    if version is None:
        raise SignatureError(f"not a sigstore bundle: mediaType {media_type!r}")
    if version < (0, 3):
        raise SignatureError(f"unsupported sigstore bundle {media_type}: version 0.3 or later is needed")
    envelope = bundle.get("dsseEnvelope")
    if envelope is None:
        what = "a message signature" if "messageSignature" in bundle else "no DSSE envelope"
        raise SignatureError(f"unsupported sigstore bundle: it holds {what}, not a DSSE envelope")
    if not isinstance(envelope, dict):
        raise SignatureError("malformed sigstore bundle: dsseEnvelope is not an object")
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureError(f"unsupported DSSE payload type {payload_type!r}: expected {IN_TOTO_PAYLOAD_TYPE}")
    payload = _b64decode(envelope.get("payload"), "dsseEnvelope.payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("malformed sigstore bundle: the DSSE envelope has no signatures")
    message = pae(payload_type, payload)
    verified = False
    for entry in signatures:
        if not isinstance(entry, dict):
            raise SignatureError("malformed sigstore bundle: a DSSE signature is not an object")
        if key.verify(message, _b64decode(entry.get("sig"), "dsseEnvelope.signatures[].sig")):
            verified = True
            break
    if not verified:
        return None
    return _statement_claims(payload)


def _statement_claims(payload: bytes) -> BundleClaims:
    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("malformed in-toto statement: not UTF-8 JSON") from None
    if not isinstance(statement, dict):
        raise SignatureError("malformed in-toto statement: not a JSON object")
    if statement.get("_type") not in _STATEMENT_TYPES:
        raise SignatureError(f"unsupported in-toto statement type {statement.get('_type')!r}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise SignatureError("malformed in-toto statement: subject is not a list")
    digests: list[str] = []
    by_digest: dict[str, dict[str, str]] = {}
    first: dict[str, str] | None = None
    for subject in subjects:
        if not isinstance(subject, dict) or not isinstance(subject.get("digest", {}), dict):
            raise SignatureError("malformed in-toto statement: a subject is not an object with a digest map")
        raw = subject.get("annotations")
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SignatureError("malformed in-toto statement: subject annotations are not an object")
        own = {str(k): v if isinstance(v, str) else _compact(v) for k, v in raw.items()}
        first = own if first is None else first
        for algorithm in _SUBJECT_ALGORITHMS:
            value = subject.get("digest", {}).get(algorithm)
            if isinstance(value, str):
                digests.append(f"{algorithm}:{value.lower()}")
                by_digest.setdefault(f"{algorithm}:{value.lower()}", own)
    annotations = first or {}
    predicate_type = statement.get("predicateType", "")
    if not isinstance(predicate_type, str):
        raise SignatureError("malformed in-toto statement: predicateType is not a string")
    return BundleClaims(subject_digests=tuple(digests), annotations=annotations, predicate_type=predicate_type,
                        payload=payload, subject_annotations=by_digest)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
