"""``sign``: sign a ModelKit's manifest digest in its registry, as ``cosign sign --key`` does (spec ``signing.md``
§2–§5, §8.2; ``spec/signing.md`` of this project).

The reference is resolved to its manifest digest once (a tag is read from the registry, checked against
``Docker-Content-Digest``); everything after names that digest, so a tag moved meanwhile cannot be signed by mistake.
By default the legacy simple-signing signature is appended to the ``sha256-<hex>.sig`` tag (verifiable by every
cosign); ``bundle=True`` also (or, with ``legacy=False``, only) attaches a sigstore bundle as an OCI 1.1 referrer.
No transparency log is involved: verify with ``cosign verify --key … --insecure-ignore-tlog=true``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pymodelkit import settings
from pymodelkit.errors import InvalidReferenceError, ModelKitError, SigningKeyError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference, parse_single_reference
from pymodelkit.registry.client import RegistryClient
from pymodelkit.signing.bundle import build_bundle
from pymodelkit.signing.cosign_tag import append_signature, signature_tag
from pymodelkit.signing.keys import SigningKey, key_password_from_env, load_signing_key
from pymodelkit.signing.payload import docker_reference, simple_signing_payload
from pymodelkit.signing.referrers import attach_bundle

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource

__all__ = ["SignResult", "resolve_signing_key", "sign"]

logger = logging.getLogger(__name__)

Password = bytes | Callable[[], bytes] | None


@dataclass(frozen=True, slots=True)
class SignResult:
    """What :func:`sign` did.

    ``reference`` is the signed ModelKit pinned to ``digest``. ``payload`` is the simple-signing payload (``None``
    with ``legacy=False``); ``signature_tag`` the ``sha256-<hex>.sig`` tag and ``added`` whether a new signature was
    appended there (``False``: the same key had signed the same payload already). ``bundle`` is the referrer
    manifest's descriptor when a bundle was attached, and ``fallback_index_updated`` whether the ``sha256-<hex>``
    index was written.
    """

    reference: Reference
    digest: Digest
    payload: bytes | None = None
    signature_tag: str | None = None
    added: bool = False
    bundle: Descriptor | None = None
    fallback_index_updated: bool = False


def sign(
    reference: str | Reference,
    key: SigningKey | str | os.PathLike[str],
    *,
    annotations: Mapping[str, str] | None = None,
    password: Password = None,
    bundle: bool = False,
    legacy: bool = True,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
) -> SignResult:
    """Sign the manifest ``reference`` names, in its registry.

    Args:
        reference: ``registry/repository[:tag|@digest]``; no tag means ``latest``.
        key: a :class:`~pymodelkit.signing.keys.SigningKey` or the path of a private key file (PKCS#8, SEC1, PKCS#1
            PEM, or cosign's encrypted ``cosign.key``).
        annotations: ``-a key=value`` claims, written into the payload's ``optional`` (and the bundle's statement).
        password: for an encrypted key file: bytes, or a callable asked only when the key is encrypted; default:
            ``PYMODELKIT_KEY_PASSWORD``, else ``COSIGN_PASSWORD``.
        bundle: also attach a sigstore bundle v0.3 as an OCI 1.1 referrer (cosign v3's format).
        legacy: append the simple-signing signature to the ``.sig`` tag (cosign 1.x–3.x read it).
        credentials, plain_http, tls_verify, ca_bundle: as :func:`pymodelkit.push`.

    Raises:
        SigningKeyError: the key file is missing, malformed, unsupported, or the password is wrong.
        InvalidReferenceError: a malformed reference, or one without a registry host.
        RegistryNotFoundError: no such tag or digest. RegistryError, AuthError: the registry refused.
    """
    if not bundle and not legacy:
        raise ValueError("sign() needs bundle=True or legacy=True: nothing to write")
    claims = _check_annotations(annotations)
    ref = _parse(reference)
    signing_key = resolve_signing_key(key, password=password)
    with RegistryClient(ref.registry, credentials=credentials, plain_http=plain_http, tls_verify=tls_verify,
                        ca_bundle=ca_bundle) as client:
        fetched = client.fetch_manifest(ref.repository, ref.tag or str(ref.digest))
        digest = fetched.digest
        result = SignResult(reference=ref.with_digest(digest), digest=digest)
        if legacy:
            payload = simple_signing_payload(docker_reference(ref), digest, claims or None)
            signature = signing_key.sign(payload)
            added = append_signature(client, ref.repository, digest, payload, signature,
                                     public_key=signing_key.public_key())
            result = replace(result, payload=payload, signature_tag=signature_tag(digest), added=added)
        if bundle:
            subject = Descriptor(_media_type(fetched.media_type, fetched.data), digest, len(fetched.data))
            data = build_bundle(signing_key, digest, claims or None)
            attached = attach_bundle(client, ref.repository, subject, data, created=_created())
            result = replace(result, bundle=attached.descriptor,
                              fallback_index_updated=attached.fallback_index_updated)
    logger.info("signed %s@%s", ref.repo_key, digest)
    return result


def resolve_signing_key(key: SigningKey | str | os.PathLike[str], *, password: Password = None) -> SigningKey:
    """``key`` itself, or the private key loaded from that path (``password`` as :func:`sign` takes it).

    Raises:
        SigningKeyError: missing, malformed, unsupported, or a wrong or missing password.
    """
    if isinstance(key, SigningKey):
        return key
    source = os.fspath(key)
    return load_signing_key(source, password=password if password is not None else _env_password(source))


# ----- internals ---------------------------------------------------------------------------------------------------


def _env_password(source: str) -> Callable[[], bytes]:
    def read() -> bytes:
        found = key_password_from_env()
        if found is None:
            raise SigningKeyError(
                f"private key {source} is encrypted: give its password (PYMODELKIT_KEY_PASSWORD or COSIGN_PASSWORD)",
                path=source,
            )
        return found

    return read


def _check_annotations(annotations: Mapping[str, str] | None) -> dict[str, str]:
    claims = dict(annotations or {})
    for name, value in claims.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise ValueError(f"signature annotations map non-empty strings to strings, not {name!r}: {value!r}")
    return claims


def _parse(reference: str | Reference) -> Reference:
    ref = parse_single_reference(reference)
    if ref.is_local:
        raise InvalidReferenceError(
            f"registry is required when signing: {ref.display()} has no registry host (push it first)",
            reference=str(ref),
        )
    return ref.with_default_tag()


def _media_type(served: str, data: bytes) -> str:
    if served:
        return served
    try:
        return Manifest.parse(data).media_type or MEDIA_TYPE_MANIFEST
    except ModelKitError:  # a manifest we cannot parse is described as an OCI manifest
        return MEDIA_TYPE_MANIFEST


def _created() -> str:
    return settings.created_time().strftime("%Y-%m-%dT%H:%M:%SZ")
