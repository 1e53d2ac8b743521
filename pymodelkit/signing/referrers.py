"""Sigstore bundles as OCI 1.1 referrers, and the referrers tag-schema fallback index (spec ``signing.md`` §8.2,
§8.3; ``oci-distribution.md`` §1.10).

A bundle is stored as cosign v3 stores it: an image manifest with ``artifactType``
``application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config ``{}``, the bundle as its one layer and a
``subject`` naming the signed manifest, pushed by digest. A registry with the Referrers API says so with an
``OCI-Subject`` header on that PUT; for one without (registry:2 2.8) the image index at tag ``sha256-<hex>`` is read,
the referrer's descriptor appended unless listed, and the index PUT back — read-append-PUT, with ``If-Match`` when the
registry gave an ``ETag``. Reading lists referrers through ``/v2/<name>/referrers/<digest>`` and falls back to that
tag when the API answers 404 (or 400/405). Only the first page of a paginated referrers answer is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from pymodelkit.errors import DigestMismatchError, ModelKitError, RegistryError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, as_struct, go_json_bytes
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST
from pymodelkit.registry.client import RegistryClient, pull_scope, push_scope
from pymodelkit.registry.responses import check_response, transport_failure
from pymodelkit.signing.bundle import BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE_TYPE
from pymodelkit.signing.cosign_tag import push_blob_bytes

__all__ = [
    "ANNOTATION_BUNDLE_CONTENT",
    "ANNOTATION_BUNDLE_PREDICATE_TYPE",
    "ANNOTATION_CREATED",
    "BUNDLE_ARTIFACT_TYPE",
    "BUNDLE_MEDIA_TYPE_PREFIX",
    "COSIGN_SIGN_PREDICATE_TYPE",
    "EMPTY_CONFIG",
    "EMPTY_CONFIG_DIGEST",
    "EMPTY_CONFIG_MEDIA_TYPE",
    "AttachedReferrer",
    "attach_bundle",
    "fetch_fallback_index",
    "fetch_referrer_manifest",
    "fetch_referrers",
    "referrer_manifest_bytes",
    "referrers_tag",
    "update_fallback_index",
]

logger = logging.getLogger(__name__)

BUNDLE_ARTIFACT_TYPE = BUNDLE_MEDIA_TYPE
BUNDLE_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
EMPTY_CONFIG_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
EMPTY_CONFIG_DIGEST = Digest("sha256", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_BUNDLE_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
ANNOTATION_CREATED = "org.opencontainers.image.created"
_UNSUPPORTED_STATUSES = (400, 404, 405)


@dataclass(frozen=True, slots=True)
class AttachedReferrer:
    """What :func:`attach_bundle` did: the referrer manifest's descriptor (with ``artifactType`` and annotations, as
    listed in an index) and whether it updated the ``sha256-<hex>`` fallback index (``False``: the registry has the
    Referrers API, or the index listed it already)."""

    descriptor: Descriptor
    fallback_index_updated: bool


def referrers_tag(digest: Digest) -> str:
    """The referrers fallback tag of ``digest``: ``sha256-<hex>`` (no ``.sig``: it does not clash with cosign's)."""
    return f"{digest.algorithm}-{digest.hex}"


def referrer_manifest_bytes(bundle: Descriptor, subject: Descriptor, *, created: str) -> bytes:
    """The referrer manifest of one bundle, as cosign v3 writes it (spec ``signing.md`` §8.2)."""
    return go_json_bytes(Struct(
        schemaVersion=2,
        mediaType=MEDIA_TYPE_MANIFEST,
        artifactType=BUNDLE_ARTIFACT_TYPE,
        config=Struct(mediaType=EMPTY_CONFIG_MEDIA_TYPE, artifactType=BUNDLE_ARTIFACT_TYPE,
                      digest=str(EMPTY_CONFIG_DIGEST), size=len(EMPTY_CONFIG)),
        layers=[Struct(mediaType=bundle.media_type, digest=str(bundle.digest), size=bundle.size)],
        subject=Struct(mediaType=subject.media_type, digest=str(subject.digest), size=subject.size),
        annotations=_bundle_annotations(created),
    ))


def attach_bundle(
    client: RegistryClient, repository: str, subject: Descriptor, bundle: bytes, *, created: str
) -> AttachedReferrer:
    """Store ``bundle`` as a referrer of ``subject`` in ``repository``; keep the fallback index when needed.

    ``created`` is the RFC 3339 time for ``org.opencontainers.image.created``.

    Raises:
        RegistryError, AuthError: the registry refused (e.g. a manifest with ``subject``) or could not be reached.
    """
    push_blob_bytes(client, repository, EMPTY_CONFIG)
    bundle_digest = push_blob_bytes(client, repository, bundle)
    layer = Descriptor(BUNDLE_ARTIFACT_TYPE, bundle_digest, len(bundle))
    data = referrer_manifest_bytes(layer, subject, created=created)
    digest = Digest.from_bytes(data)
    response = _put_manifest(client, repository, str(digest), data, MEDIA_TYPE_MANIFEST)
    descriptor = Descriptor(MEDIA_TYPE_MANIFEST, digest, len(data), annotations=_bundle_annotations(created),
                            artifact_type=BUNDLE_ARTIFACT_TYPE)
    if response.headers.get("oci-subject") == str(subject.digest):
        logger.info("%s has the Referrers API: no fallback index needed", client.registry)
        return AttachedReferrer(descriptor, fallback_index_updated=False)
    updated = update_fallback_index(client, repository, subject.digest, descriptor)
    return AttachedReferrer(descriptor, fallback_index_updated=updated)


def update_fallback_index(client: RegistryClient, repository: str, subject: Digest, referrer: Descriptor) -> bool:
    """Add ``referrer`` to the image index at ``sha256-<hex>`` of ``subject`` (created when missing); ``False`` when
    it is listed already. Entries already there are kept as they are, in order.

    Raises:
        RegistryError, AuthError: refused, or the tag holds something that is not an image index.
    """
    tag = referrers_tag(subject)
    existing, etag = _fetch_index(client, repository, tag)
    entries: list[object] = []
    if existing is not None:
        entries = [as_struct(entry) for entry in existing]
        if any(isinstance(e, Mapping) and e.get("digest") == str(referrer.digest) for e in entries):
            return False
    entries.append(referrer.to_json())
    index = go_json_bytes(Struct(schemaVersion=2, mediaType=MEDIA_TYPE_INDEX, manifests=entries))
    headers = {"If-Match": etag} if etag else {}
    _put_manifest(client, repository, tag, index, MEDIA_TYPE_INDEX, headers=headers).close()
    logger.info("fallback index %s/%s:%s now lists %d referrers", client.registry, repository, tag, len(entries))
    return True


def fetch_referrers(client: RegistryClient, repository: str, subject: Digest) -> list[Descriptor]:
    """The referrers of ``subject``: from the Referrers API, else (404/400/405) from the fallback index tag.

    Raises:
        RegistryError, AuthError: the registry refused or could not be reached.
    """
    url = client.url(f"{repository}/referrers/{subject}")
    response = client.send("GET", url, scopes=(pull_scope(repository),), headers={"Accept": MEDIA_TYPE_INDEX})
    if response.status_code == 200:
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
            return _descriptors(doc["manifests"])
        logger.info("referrers API of %s sent no index: reading the fallback tag", client.registry)
    elif response.status_code in _UNSUPPORTED_STATUSES:
        response.close()
    else:
        check_response(response, 200, subject=f"referrers of {client.registry}/{repository}@{subject}")
    return fetch_fallback_index(client, repository, subject)


def fetch_fallback_index(client: RegistryClient, repository: str, subject: Digest) -> list[Descriptor]:
    """The descriptors listed by the ``sha256-<hex>`` index of ``subject`` (empty when there is none, or when the tag
    holds something that is not an image index).

    Raises:
        DigestMismatchError: the index does not match ``Docker-Content-Digest``. RegistryError, AuthError: refused.
    """
    try:
        entries, _ = _fetch_index(client, repository, referrers_tag(subject))
    except _NotAnIndexError as exc:
        logger.info("%s: no referrers read", exc)
        return []
    return _descriptors(entries or [])


def fetch_referrer_manifest(client: RegistryClient, repository: str, digest: Digest) -> Manifest | None:
    """The referrer manifest ``digest`` (digest-checked), or ``None`` when it is not an image manifest."""
    fetched = client.fetch_manifest(repository, str(digest))
    try:
        return Manifest.parse(fetched.data)
    except ModelKitError:
        return None


# ----- internals ---------------------------------------------------------------------------------------------------


class _NotAnIndexError(RegistryError):
    """The fallback tag holds something other than an image index (signing refuses to overwrite it)."""


def _bundle_annotations(created: str) -> dict[str, str]:
    return {
        ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
        ANNOTATION_BUNDLE_PREDICATE_TYPE: COSIGN_SIGN_PREDICATE_TYPE,
        ANNOTATION_CREATED: created,
    }


def _fetch_index(client: RegistryClient, repository: str, tag: str) -> tuple[list[object] | None, str | None]:
    """GET the index at ``tag``: its ``manifests`` list and ``ETag``, or ``(None, None)`` when the tag is missing."""
    subject = f"referrers index {client.registry}/{repository}:{tag}"
    response = client.send("GET", client.url(f"{repository}/manifests/{tag}"), scopes=(pull_scope(repository),),
                           headers={"Accept": MEDIA_TYPE_INDEX}, stream=True)
    try:
        if response.status_code == 404:
            return None, None
        check_response(response, 200, subject=subject)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_MANIFEST_BYTES:
                raise RegistryError(f"{subject} is larger than the 4 MiB manifest limit")
    except httpx.TransportError as exc:
        raise transport_failure(exc, registry=client.registry) from exc
    finally:
        response.close()
    data = bytes(body)
    claimed = response.headers.get("docker-content-digest")
    if claimed and claimed != str(Digest.from_bytes(data)):
        raise DigestMismatchError(f"{subject}: the bytes received do not hash to Docker-Content-Digest {claimed}",
                                  expected=claimed, actual=str(Digest.from_bytes(data)))
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise _NotAnIndexError(f"{subject} is not an image index: refusing to overwrite it")
    return list(doc["manifests"]), response.headers.get("etag")


def _put_manifest(
    client: RegistryClient, repository: str, reference: str, data: bytes, media_type: str,
    *, headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    response = client.send("PUT", client.url(f"{repository}/manifests/{reference}"),
                           scopes=(push_scope(repository),), content=data,
                           headers={"Content-Type": media_type, **(headers or {})})
    check_response(response, 201, subject=f"manifest {client.registry}/{repository}:{reference}")
    reported = response.headers.get("docker-content-digest")
    if reported and reported != str(Digest.from_bytes(data)):
        raise DigestMismatchError(
            f"registry stored manifest {client.registry}/{repository}:{reference} as {reported}, expected "
            f"{Digest.from_bytes(data)}", expected=str(Digest.from_bytes(data)), actual=reported,
        )
    return response


def _descriptors(entries: list[object]) -> list[Descriptor]:
    found: list[Descriptor] = []
    for entry in entries:
        try:
            found.append(Descriptor.from_json(entry))
        except ModelKitError as exc:
            logger.info("skipping a malformed referrer descriptor: %s", exc)
    return found
