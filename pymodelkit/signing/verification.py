"""``verify``: check a ModelKit's signatures in its registry against public keys, as ``cosign verify --key
--insecure-ignore-tlog=true`` does (spec ``signing.md`` §6, §8.2; ``spec/signing.md`` of this project).

Signatures are looked for in both places cosign writes them: sigstore bundles among the manifest's referrers (the
Referrers API, else the ``sha256-<hex>`` fallback index) first, then the simple-signing layers of the
``sha256-<hex>.sig`` tag. A signature counts when it verifies with one of the keys, its payload names the very
manifest digest being checked, and it carries every ``-a`` claim asked for. Unlike cosign v3, the ``.sig`` tag is read
even when bundles exist (either kind is a valid signature by the key). One that counts is enough. A
:data:`ManifestVerifier` is the same check as a callable that ``pull`` and ``unpack`` run on a manifest digest before
they write anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from pymodelkit.errors import AuthError, DigestMismatchError, ModelKitError, SignatureError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import Reference, parse_single_reference
from pymodelkit.registry.client import RegistryClient
from pymodelkit.signing.bundle import verify_bundle
from pymodelkit.signing.cosign_tag import decode_signature, fetch_blob_bytes, fetch_signature_manifest
from pymodelkit.signing.keys import VerificationKey, load_verification_key
from pymodelkit.signing.payload import parse_simple_signing_payload
from pymodelkit.signing.referrers import BUNDLE_MEDIA_TYPE_PREFIX, fetch_referrer_manifest, fetch_referrers

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource

__all__ = [
    "KeySource",
    "ManifestVerifier",
    "VerifiedSignature",
    "VerifyResult",
    "load_keys",
    "verifier",
    "verify",
    "verify_manifest",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_P = ParamSpec("_P")

ManifestVerifier = Callable[[RegistryClient, Reference, Digest], None]
"""``verify(client, reference, manifest_digest)``: raises :class:`SignatureError` unless the manifest is signed as
required; ``client`` talks to ``reference``'s registry. Called by ``pull`` and ``unpack`` before any blob is
written."""

KeySource = VerificationKey | str | os.PathLike[str]
SignatureKind = Literal["simplesigning", "bundle"]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """One signature that verified: its kind, the source of the key that verified it, the signed payload (the
    simple-signing JSON, or the bundle's in-toto statement) and where it was found (the ``.sig`` tag, or the
    referrer manifest's digest)."""

    kind: SignatureKind
    key: str
    payload: bytes
    location: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A verified manifest: the reference pinned to its digest, and every signature that verified (at least one)."""

    reference: Reference
    digest: Digest
    signatures: tuple[VerifiedSignature, ...]


def verify(
    reference: str | Reference,
    keys: Sequence[KeySource],
    *,
    annotations: Mapping[str, str] | None = None,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
) -> VerifyResult:
    """Verify that the manifest ``reference`` names carries a signature by one of ``keys``.

    Args:
        reference: ``registry/repository[:tag|@digest]``; no tag means ``latest``. A tag is resolved in the registry
            (checked against ``Docker-Content-Digest``) and the signatures of that digest are checked.
        keys: public keys, or paths of PEM ``PUBLIC KEY`` / ``RSA PUBLIC KEY`` files.
        annotations: claims every counted signature must carry (``cosign verify -a key=value``).
        credentials, plain_http, tls_verify, ca_bundle: as :func:`pymodelkit.pull`.

    Raises:
        SignatureError: no signature found, none verifies with the keys, or the one that does names another manifest
            or lacks a claim (one line saying which).
        SigningKeyError: a key file is missing, malformed or unsupported.
        InvalidReferenceError: a malformed reference or one without registry. RegistryError, AuthError: as pull.
    """
    ref = _parse(reference)
    loaded = load_keys(keys)
    with RegistryClient(ref.registry, credentials=credentials, plain_http=plain_http, tls_verify=tls_verify,
                        ca_bundle=ca_bundle) as client:
        digest = client.fetch_manifest(ref.repository, ref.tag or str(ref.digest)).digest
        return verify_manifest(client, ref, digest, loaded, annotations=annotations)


def verifier(keys: Sequence[KeySource], *, annotations: Mapping[str, str] | None = None) -> ManifestVerifier:
    """A :data:`ManifestVerifier` requiring a signature by one of ``keys`` (loaded now, so a bad key file fails
    before anything is fetched). Raises SigningKeyError."""
    loaded = load_keys(keys)
    claims = dict(annotations or {})

    def check(client: RegistryClient, reference: Reference, digest: Digest) -> None:
        verify_manifest(client, reference, digest, loaded, annotations=claims)

    return check


def load_keys(keys: Sequence[KeySource]) -> list[VerificationKey]:
    """Each key as a :class:`VerificationKey` (paths are loaded). Raises SigningKeyError; ValueError for none."""
    if isinstance(keys, str | os.PathLike | VerificationKey):
        keys = [keys]
    if not keys:
        raise ValueError("verification needs at least one public key")
    return [key if isinstance(key, VerificationKey) else load_verification_key(key) for key in keys]


def verify_manifest(
    client: RegistryClient,
    reference: Reference,
    digest: Digest,
    keys: Sequence[VerificationKey],
    *,
    annotations: Mapping[str, str] | None = None,
) -> VerifyResult:
    """Check the signatures of ``digest`` in ``reference``'s repository (on ``client``'s registry).

    Raises:
        SignatureError: as :func:`verify`. RegistryError, AuthError: the registry refused or could not be reached.
    """
    findings = _Findings(digest=digest, claims=dict(annotations or {}))
    _check_bundles(client, reference.repository, digest, keys, findings)
    _check_legacy(client, reference.repository, digest, keys, findings)
    pinned = reference.with_digest(digest)
    if not findings.good:
        raise SignatureError(findings.reason(pinned, keys), reference=str(pinned))
    logger.info("%s: %d signature(s) verified", pinned, len(findings.good))
    return VerifyResult(reference=pinned, digest=digest, signatures=tuple(findings.good))


# ----- internals ---------------------------------------------------------------------------------------------------


@dataclass
class _Findings:
    """What the signatures found said, to report the most telling reason when none counts."""

    digest: Digest
    claims: dict[str, str]
    found: int = 0
    good: list[VerifiedSignature] = field(default_factory=list)
    other_digests: list[str] = field(default_factory=list)
    missing_claims: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def accept(self, kind: SignatureKind, key: VerificationKey, payload: bytes, location: str,
               subject_digests: Sequence[str], annotations: Mapping[str, object]) -> None:
        """A signature that verified with ``key``: count it if its digest and claims match."""
        wanted = str(self.digest)
        if wanted not in subject_digests:
            self.other_digests.append(subject_digests[0] if subject_digests else "nothing")
            return
        for name, value in self.claims.items():
            if annotations.get(name) != value:
                have = annotations.get(name)
                said = "no such claim" if have is None else f"{name}={have}"
                self.missing_claims.append(f"{name}={value} (it has {said})")
                return
        self.good.append(VerifiedSignature(kind, key.source, payload, location))

    def readable(self, label: str, read: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T | None:
        """``read(*args, **kwargs)``, or ``None`` when it raises a ModelKitError, noted in ``broken`` after ``label``:
        one unreadable signature (missing, oversized, refused, undecodable) discounts only itself. AuthError is
        raised: missing or refused credentials are not a bad signature."""
        try:
            return read(*args, **kwargs)
        except AuthError:
            raise
        except ModelKitError as exc:
            self.broken.append(f"{label}{exc}")
            return None

    def reason(self, pinned: Reference, keys: Sequence[VerificationKey]) -> str:
        if self.other_digests:
            return f"signature payload names manifest {self.other_digests[0]}, not {self.digest} ({pinned})"
        if self.missing_claims:
            return f"signature of {pinned} verifies but lacks the claim {self.missing_claims[0]}"
        if not self.found:
            suffix = f" ({self.broken[0]})" if self.broken else ""
            return f"no signatures found for {pinned}{suffix}"
        names = ", ".join(key.source for key in keys)
        suffix = f"; {self.broken[0]}" if self.broken else ""
        return f"no signature of {pinned} verifies with key {names} ({self.found} found){suffix}"


def _check_bundles(
    client: RegistryClient, repository: str, digest: Digest, keys: Sequence[VerificationKey], findings: _Findings
) -> None:
    # An unreadable index: its signatures do not count, the .sig tag may still.
    referrers = findings.readable("referrers index: ", fetch_referrers, client, repository, digest)
    for referrer in referrers or ():
        if referrer.artifact_type and not referrer.artifact_type.startswith(BUNDLE_MEDIA_TYPE_PREFIX):
            continue
        manifest = findings.readable(f"referrer {referrer.digest}: ", fetch_referrer_manifest, client, repository,
                                     referrer.digest)
        layers = manifest.layers if manifest is not None else None
        if not layers or len(layers) != 1 or not layers[0].media_type.startswith(BUNDLE_MEDIA_TYPE_PREFIX):
            continue
        findings.found += 1
        data = findings.readable("", fetch_blob_bytes, client, repository, layers[0])
        if data is None:
            continue
        for key in keys:
            try:
                claims = verify_bundle(data, key)
            except SignatureError as exc:
                findings.broken.append(f"bundle {layers[0].digest}: {exc}")
                break
            if claims is None:
                continue
            subjects = list(claims.subject_digests)  # each already algorithm:hex
            findings.accept("bundle", key, claims.payload, str(referrer.digest), subjects,
                            claims.annotations_for(str(digest)))
            break


def _check_legacy(
    client: RegistryClient, repository: str, digest: Digest, keys: Sequence[VerificationKey], findings: _Findings
) -> None:
    try:
        sig = fetch_signature_manifest(client, repository, digest)
    except (DigestMismatchError, SignatureError) as exc:
        findings.broken.append(str(exc))
        return
    if sig is None:
        return
    for entry in sig.signatures():
        findings.found += 1
        payload = findings.readable("", fetch_blob_bytes, client, repository, entry.layer)
        signature = None if payload is None else findings.readable("", decode_signature, entry.signature)
        if payload is None or signature is None:
            continue
        for key in keys:
            if not key.verify(payload, signature):
                continue
            try:
                claims = parse_simple_signing_payload(payload)
            except SignatureError as exc:
                findings.broken.append(f"payload {entry.payload_digest}: {exc}")
                break
            findings.accept("simplesigning", key, payload, sig.tag, [claims.manifest_digest],
                            claims.optional or {})
            break


def _parse(reference: str | Reference) -> Reference:
    ref = parse_single_reference(reference)
    if ref.is_local:
        raise SignatureError(
            f"cannot verify a local-only ModelKit: {ref.display()} has no registry host", reference=str(ref)
        )
    return ref.with_default_tag()
