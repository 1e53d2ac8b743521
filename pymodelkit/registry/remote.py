"""The read commands against a registry: ``unpack`` straight from it, and remote ``list``, ``inspect``, ``info`` and
``remove`` (spec ``kitops-modelkit.md`` §5.2 "kit remove --remote", §5.3, §7, §8; ``oci-distribution.md`` §1.11,
§1.12).

:class:`RemoteModelKits` is what ``pymodelkit.unpack`` falls back to when a reference is not in the local store: it
fetches a manifest, puts its config into the store through ``download_blob`` (verified at commit), and later fetches
only the layers unpack selected. Nothing is recorded in the store's indexes unless the whole ModelKit ends up there;
the blobs otherwise stay as cache that ``gc`` reclaims. ``list``, ``inspect`` and ``info`` read the manifest and the
config only, into memory, and never touch the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from pymodelkit.catalog import ListedModelKit, format_inspect_json, kitfile_for_info, listed_modelkit
from pymodelkit.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    ModelKitError,
    RegistryError,
    RegistryNotFoundError,
)
from pymodelkit.kitfile import Kitfile
from pymodelkit.modelpack.convert import kitfile_for_manifest
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference, parse_reference, parse_single_reference
from pymodelkit.progress import ProgressCallback, ProgressEvent
from pymodelkit.registry.client import BLOB_GET_HEADERS, FetchedManifest, RegistryClient, pull_scope
from pymodelkit.registry.download import download_blob
from pymodelkit.registry.responses import check_response, transport_failure
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.registry.transfer import DEFAULT_CONCURRENCY, _parse_model_manifest
from pymodelkit.store import LocalStore, Removal

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource
    from pymodelkit.signing.verification import ManifestVerifier

__all__ = [
    "MAX_CONFIG_BYTES",
    "RemoteModelKit",
    "RemoteModelKits",
    "fetch_remote_modelkit",
    "fetch_small_blob",
    "info_remote",
    "inspect_remote",
    "list_remote",
    "remove_remote",
]

logger = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 4 << 20  # the store's read limit for small blobs; a Kitfile config is a few KiB


@dataclass(frozen=True, slots=True)
class RemoteModelKit:
    """A ModelKit as a registry serves it: its reference, the manifest (exact bytes, digest, parsed) and the config
    bytes, verified against the manifest's config descriptor."""

    reference: Reference
    digest: Digest
    manifest_bytes: bytes
    manifest: Manifest
    config: bytes

    @property
    def kitfile(self) -> Kitfile:
        """The Kitfile: the config of a KitOps ModelKit; of a ModelPack artifact, its Kitfile annotation or one rebuilt
        from its layers. Raises ModelKitError for a ModelPack with an unknown layer type, KitfileError for a bad one."""
        return kitfile_for_manifest(self.manifest, self.config)


class RemoteModelKits:
    """ModelKits fetched from registries into the local store for one ``unpack``: one client per registry, reused.

    :meth:`fetch_manifest` gets a manifest and downloads its config into ``store``; :meth:`fetch_layers` downloads the
    layers asked for. Use it as a context manager (or call :meth:`close`). Not thread-safe.

    Args:
        store: where blobs go (through ingest, verified at commit).
        credentials, plain_http, tls_verify, ca_bundle, retry: as :class:`RegistryClient`.
        concurrency: layers downloaded at once.
        on_progress: per-blob download events (key: short digest); called from worker threads.
    """

    def __init__(
        self,
        store: LocalStore,
        *,
        credentials: CredentialSource | None = None,
        plain_http: bool | None = None,
        tls_verify: bool = True,
        ca_bundle: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._store = store
        self._options = _ClientOptions(credentials, plain_http, tls_verify, ca_bundle, retry)
        self._concurrency = concurrency
        self._on_progress = on_progress
        self._clients: dict[str, RegistryClient] = {}
        self._fetched: dict[str, FetchedManifest] = {}  # by str(reference)

    def fetch_manifest(
        self, ref: Reference, *, verify: ManifestVerifier | None = None
    ) -> tuple[Descriptor, Manifest]:
        """Fetch the manifest ``ref`` names and download its config into the store.

        ``verify`` checks the manifest's signatures first: when it raises, nothing has been written to the store.

        Raises:
            InvalidReferenceError: ``ref``'s registry is ``localhost`` (no registry to ask).
            RegistryNotFoundError: the registry has no such tag or digest. ModelKitError: not a model artifact.
            RegistryError, AuthError, DigestMismatchError: as :func:`download_blob`. SignatureError: from ``verify``.
        """
        _require_registry(ref, "unpacking")
        client = self._client(ref.registry)
        fetched = client.fetch_manifest(ref.repository, ref.tag or str(ref.digest))
        manifest = _parse_model_manifest(ref, fetched.data, fetched.media_type)
        if verify is not None:
            verify(client, ref, fetched.digest)
        logger.info("fetching %s from %s (not in local storage)", ref.display(), ref.registry)
        download_blob(client, ref.repository, manifest.config, self._store, retry=self._options.retry)
        self._fetched[str(ref)] = fetched
        return Descriptor(MEDIA_TYPE_MANIFEST, fetched.digest, len(fetched.data)), manifest

    def fetch_layers(self, ref: Reference, layers: Sequence[Descriptor]) -> list[Digest]:
        """Download the ``layers`` of ``ref`` the store lacks; returns the digests downloaded.

        Does nothing for a reference :meth:`fetch_manifest` did not fetch (one read from the local store). When every
        blob of the ModelKit is then in the store, its manifest is recorded there under ``ref``'s tag, as a pull would.

        Raises:
            RegistryError, AuthError, DigestMismatchError: as :func:`download_blob` (the first failure).
        """
        fetched = self._fetched.get(str(ref))
        if fetched is None:
            return []
        client = self._client(ref.registry)
        missing = list({d.digest: d for d in layers if not self._store.has_blob(d.digest)}.values())
        if missing:
            workers = max(1, min(self._concurrency, len(missing)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pymodelkit") as pool:
                futures = [pool.submit(self._download, client, ref.repository, d) for d in missing]
                for future in futures:
                    future.result()
        manifest = Manifest.parse(fetched.data)
        if all(self._store.has_blob(d.digest) for d in [manifest.config, *(manifest.layers or ())]):
            self._store.add_manifest(ref.repo_key, fetched.data, tags=(ref.tag,) if ref.tag else ())
            logger.info("every blob of %s is now in local storage: recorded it", ref.display())
        return [d.digest for d in missing]

    def verify_stored(self, ref: Reference, digest: Digest, verify: ManifestVerifier) -> None:
        """Check, against ``ref``'s registry, the signatures of a manifest the local store already holds
        (``digest``); nothing is fetched into the store. Raises SignatureError, RegistryError, AuthError."""
        _require_registry(ref, "verifying a ModelKit")
        verify(self._client(ref.registry), ref, digest)

    def close(self) -> None:
        """Close every registry connection."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> RemoteModelKits:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _client(self, registry: str) -> RegistryClient:
        if registry not in self._clients:
            self._clients[registry] = self._options.client(registry)
        return self._clients[registry]

    def _download(self, client: RegistryClient, repository: str, blob: Descriptor) -> None:
        key = blob.digest.short()
        callback = self._on_progress

        def on_bytes(held: int) -> None:
            if callback is not None:
                callback(ProgressEvent(key, held, blob.size))

        download_blob(client, repository, blob, self._store, on_bytes=on_bytes, retry=self._options.retry)
        if callback is not None:
            callback(ProgressEvent(key, blob.size, blob.size, True))


def fetch_remote_modelkit(client: RegistryClient, ref: Reference) -> RemoteModelKit:
    """Fetch a ModelKit's manifest and config from ``client``'s registry into memory (no layer is fetched).

    Raises:
        RegistryNotFoundError: no such tag or digest. ModelKitError: not a model artifact.
        DigestMismatchError: the config's bytes do not match its descriptor. RegistryError, AuthError: refused.
    """
    fetched = client.fetch_manifest(ref.repository, ref.tag or str(ref.digest))
    manifest = _parse_model_manifest(ref, fetched.data, fetched.media_type)
    config = fetch_small_blob(client, ref.repository, manifest.config)
    return RemoteModelKit(ref, fetched.digest, fetched.data, manifest, config)


def list_remote(
    repository: str | Reference,
    *,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    page_size: int | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> list[ListedModelKit]:
    """The ModelKits of a registry repository, one row per tag in the registry's order, as ``kit list REPO`` shows.

    ``repository`` is ``registry/repository`` (every tag, following the registry's pages of ``page_size``) or
    ``registry/repository:tag|@digest`` (that one). Rows name the repository without the registry, as kit's do;
    tags that are not ModelKits (other artifacts, indexes) are left out. Reads manifests and configs only.

    Raises:
        InvalidReferenceError: no registry host, or a malformed reference.
        RegistryNotFoundError: no such repository, tag or digest. RegistryError, AuthError: refused.
    """
    ref = parse_single_reference(repository)
    _require_registry(ref, "listing a remote repository")
    with _ClientOptions(credentials, plain_http, tls_verify, ca_bundle, retry).client(ref.registry) as client:
        if ref.has_reference:
            targets = [ref]
        else:
            targets = [ref.with_tag(tag) for tag in client.list_tags(ref.repository, page_size=page_size)]
        rows: list[ListedModelKit] = []
        for target in targets:
            try:
                kit = fetch_remote_modelkit(client, target)
                kitfile = kit.kitfile  # a ModelPack with an unknown layer type fails here: skipped like the others
            except ModelKitError as exc:
                if ref.has_reference or isinstance(exc, RegistryError | DigestMismatchError):
                    raise
                logger.info("skipping %s: %s", target.display(), exc)
                continue
            tag = target.tag or str(target.digest)
            rows.append(listed_modelkit(ref.repository, kit.digest, [tag], kit.manifest, kitfile))
    return rows


def inspect_remote(
    reference: str | Reference,
    *,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> str:
    """kit's ``inspect -r`` JSON (digest, cliVersion, Kitfile, manifest), read from the registry: manifest and config
    only, no layer. Raises as :func:`fetch_remote_modelkit`; InvalidReferenceError without tag, digest or registry."""
    ref = _require_tag_or_digest(reference)
    _require_registry(ref, "inspecting a remote ModelKit")
    with _ClientOptions(credentials, plain_http, tls_verify, ca_bundle, retry).client(ref.registry) as client:
        kit = fetch_remote_modelkit(client, ref)
    return format_inspect_json(kit.digest, kit.manifest, _kitops_kitfile(kit))


def info_remote(
    reference: str | Reference,
    *,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> Kitfile:
    """The Kitfile of a ModelKit in a registry, as ``info -r`` shows it (dump it with ``dump_kitfile``); reads the
    manifest and config only. Raises as :func:`inspect_remote`."""
    ref = _require_tag_or_digest(reference)
    _require_registry(ref, "reading a remote ModelKit")
    with _ClientOptions(credentials, plain_http, tls_verify, ca_bundle, retry).client(ref.registry) as client:
        kit = fetch_remote_modelkit(client, ref)
    return kitfile_for_info(_kitops_kitfile(kit))


def remove_remote(
    reference: str | Reference,
    *,
    force: bool = False,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> Removal:
    """Remove a ModelKit, or one of its tags, from a registry, as ``kit remove --remote`` does.

    By tag without ``force``: untag it (``DELETE /v2/<repo>/manifests/<tag>``; the manifest and its other tags stay).
    By digest, or with ``force``: delete the manifest by digest, which removes every tag pointing at it. The reference
    is resolved first, so the returned :class:`Removal` names the manifest digest either way.

    Raises:
        InvalidReferenceError: no tag or digest, or no registry host.
        RegistryNotFoundError: no such tag or digest.
        RegistryError: ``remote registry does not support untagging`` (the registry answered 400 or 405 to a tag
            DELETE; registry:2 v2.8 deletes by digest only), ``removing models is unsupported by registry <host>``
            (405: deletes disabled), or another refusal. AuthError: no delete access.
    """
    ref = parse_reference(reference)[0] if isinstance(reference, str) else reference
    if not ref.has_reference:
        raise InvalidReferenceError(f"tag or digest is required when removing ({reference})", reference=str(reference))
    _require_registry(ref, "removing a remote ModelKit")
    with _ClientOptions(credentials, plain_http, tls_verify, ca_bundle, retry).client(ref.registry) as client:
        digest = client.fetch_manifest(ref.repository, ref.tag or str(ref.digest)).digest
        if ref.tag and not force:
            logger.info("Untagging remote ModelKit %s", ref.display())
            _untag(client, ref)
            return Removal(ref.repo_key, digest, ref.tag, untagged_only=True)
        logger.info("Deleting remote ModelKit %s", ref.with_digest(digest).display())
        try:
            client.delete_manifest(ref.repository, str(digest))
        except RegistryError as exc:
            if exc.status == 405:
                raise _refusal(f"removing models is unsupported by registry {ref.registry}", exc) from exc
            raise
    return Removal(ref.repo_key, digest, ref.tag or None, untagged_only=False)


# ----- internals ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClientOptions:
    credentials: CredentialSource | None
    plain_http: bool | None
    tls_verify: bool
    ca_bundle: str | None
    retry: RetryPolicy

    def client(self, registry: str) -> RegistryClient:
        return RegistryClient(registry, credentials=self.credentials, plain_http=self.plain_http,
                              tls_verify=self.tls_verify, ca_bundle=self.ca_bundle, retry=self.retry)


def _untag(client: RegistryClient, ref: Reference) -> None:
    try:
        client.delete_manifest(ref.repository, ref.tag)
    except RegistryNotFoundError as exc:
        raise RegistryNotFoundError(
            f"reference {ref.tag} not found in remote registry {ref.registry}/{ref.repository}",
            method=exc.method, url=exc.url, status=exc.status, code=exc.code, oci_message=exc.oci_message,
            detail=exc.detail, errors=exc.errors,
        ) from exc
    except RegistryError as exc:
        if exc.status in (400, 405):
            raise _refusal(
                "failed to untag ModelKit in remote: remote registry does not support untagging (removing by digest, "
                "or with force, deletes the ModelKit and every tag pointing at it)", exc,
            ) from exc
        raise


def _refusal(message: str, exc: RegistryError) -> RegistryError:
    said = " ".join(part for part in (str(exc.status), exc.code or "") if part)
    return RegistryError(
        f"{message} [registry answered {said} to {exc.method} {exc.url}]",
        method=exc.method, url=exc.url, status=exc.status, code=exc.code, oci_message=exc.oci_message,
        detail=exc.detail, errors=exc.errors,
    )


def fetch_small_blob(
    client: RegistryClient, repository: str, blob: Descriptor, *, max_bytes: int = MAX_CONFIG_BYTES,
    kind: str = "configs",
) -> bytes:
    """GET a small blob (a config; a signature's payload or bundle) into memory, following redirects, checked against
    the descriptor's size and digest (in the descriptor's algorithm) before it is returned.

    Raises:
        ModelKitError: the descriptor says more than ``max_bytes`` (the message names ``kind``, e.g. "configs").
        DigestMismatchError: the bytes received differ in size or digest.
        RegistryError, AuthError: not found, refused or unreachable.
    """
    subject = f"blob {blob.digest} in {client.registry}/{repository}"
    if blob.size > max_bytes:
        raise ModelKitError(f"{subject} is {blob.size} bytes: refusing {kind} over {max_bytes} bytes")
    response = client.send_following("GET", client.url(f"{repository}/blobs/{blob.digest}"),
                                     scopes=(pull_scope(repository),), headers=BLOB_GET_HEADERS, stream=True)
    try:
        check_response(response, 200, subject=subject)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > blob.size:
                break
    except httpx.TransportError as exc:
        raise transport_failure(exc, registry=client.registry) from exc
    finally:
        response.close()
    data = bytes(body)
    actual = Digest(blob.digest.algorithm, hashlib.new(blob.digest.algorithm, data).hexdigest())
    if len(data) != blob.size or actual != blob.digest:
        raise DigestMismatchError(
            f"{subject}: received {len(data)}{'+' if len(data) > blob.size else ''} bytes hashing to {actual}, "
            f"expected {blob.size} bytes with that digest; refusing it",
            expected=str(blob.digest), actual=str(actual),
        )
    return data


def _kitops_kitfile(kit: RemoteModelKit) -> Kitfile:
    return kit.kitfile  # KitOps config, or a ModelPack's Kitfile annotation / rebuilt Kitfile


def _require_tag_or_digest(reference: str | Reference) -> Reference:
    ref = parse_single_reference(reference)
    if not ref.has_reference:
        raise InvalidReferenceError(
            f"missing tag or digest from ModelKit reference '{reference}'", reference=str(reference)
        )
    return ref


def _require_registry(ref: Reference, doing: str) -> None:
    if ref.is_local:
        raise InvalidReferenceError(
            f"registry is required when {doing}: {ref.display()} has no registry host", reference=str(ref)
        )
