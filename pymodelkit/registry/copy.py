"""``copy``: a ModelKit (or any OCI artifact) from one registry repository, OCI layout or OCI archive to another,
blob by blob with no local staging, optionally with its signatures (spec ``spec/transport.md`` §5;
``oci-distribution.md`` §1.4-§1.8, §1.10, §2; ``signing.md`` §4, §8.3).

A blob the destination has is skipped (HEAD); between repositories of one registry it is mounted; otherwise it
streams from a source GET straight into the destination's upload: one PUT for blobs under ``chunk_bytes``, else
PATCHes of ``chunk_bytes``, each fed by a ranged GET of just that chunk. After a fault the upload resumes as a push
does: ask the destination where the session stands, then GET the source again from the acknowledged offset (or
restart the blob when the session is lost). The destination checks each digest at its PUT; blobs from an OCI layout
or archive are also checked as they stream (:class:`~pymodelkit.ocilayout.local.VerifiedBlobSource`), so a corrupt
archive fails as a digest mismatch before its last byte is sent. Manifests go last: the
ModelKit under the destination tag, then the ``.sig`` tag, the referrers, and the ``sha256-<hex>`` fallback index
(merged with one already there; not written when the destination has a referrers API).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin

import httpx

from pymodelkit.errors import InvalidReferenceError, NotFoundError, RegistryError, RegistryNotFoundError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.mediatypes import MEDIA_TYPE_INDEX
from pymodelkit.oci.reference import OTHER_TRANSPORTS, Reference, parse_single_reference
from pymodelkit.ocilayout.endpoint import (
    BlobSource,
    CopyResult,
    ManifestItem,
    Sink,
    Source,
    SourceManifest,
    collect_signatures,
    copy_items,
    manifest_item,
)
from pymodelkit.ocilayout.layout import (
    LayoutLocation,
    is_layout_location,
    parse_layout_location,
    transport_prefix,
)
from pymodelkit.ocilayout.local import (
    LayoutSink,
    LayoutSource,
    VerifiedBlobSource,
    open_layout_sink,
    open_layout_source,
    select_root,
)
from pymodelkit.progress import ProgressCallback
from pymodelkit.registry.client import BLOB_GET_HEADERS, RegistryClient, pull_scope
from pymodelkit.registry.responses import check_response, redact_url, transport_failure
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.registry.transfer import DEFAULT_CHUNK_BYTES, DEFAULT_CONCURRENCY
from pymodelkit.registry.upload import FileSpan, run_upload

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource
    from pymodelkit.registry.tls import CaBundle, ClientCert

__all__ = ["RegistryEndpoint", "copy", "parse_endpoint_location"]

logger = logging.getLogger(__name__)

BlobAction = Literal["copied", "mounted"]
_NO_REFERRERS_API = frozenset({400, 404, 405, 501})
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_MAX_REFERRER_PAGES = 100


class RegistryEndpoint:
    """One repository of a registry as a copy source and sink. Thread-safe (the client is).

    Args:
        client: the registry connection (shared by both sides when they are the same registry).
        reference: the repository (its tag or digest is not used here).
        chunk_bytes: blobs of at least this size go in PATCHes of this size; smaller ones in one PUT.
        retry: the retry policy of each blob's upload session.
        concurrency: blobs in flight at once when this is the destination.
    """

    def __init__(self, client: RegistryClient, reference: Reference, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 retry: RetryPolicy = DEFAULT_RETRY_POLICY, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.client = client
        self.repository = reference.repository
        self.description = f"{client.registry}/{reference.repository}"
        self.chunk_bytes = chunk_bytes
        self.retry = retry
        self.max_concurrency = concurrency
        self._referrers_api: dict[Digest, bool] = {}

    # ----- as a source -----------------------------------------------------------------------------------------

    def fetch_manifest(self, name: str) -> SourceManifest | None:
        """GET the manifest a tag or digest names, or ``None`` on 404."""
        try:
            fetched = self.client.fetch_manifest(self.repository, name)
        except RegistryNotFoundError:
            return None
        return SourceManifest(fetched.data, fetched.media_type, fetched.digest)

    def fetch_referrers(self, digest: Digest) -> list[Descriptor] | None:
        """The referrers API's list for ``digest`` (every page), or ``None`` when the registry has no such API."""
        url = self.client.url(f"{self.repository}/referrers/{digest}")
        found: list[Descriptor] = []
        for _ in range(_MAX_REFERRER_PAGES):
            response = self.client.send("GET", url, scopes=(pull_scope(self.repository),),
                                        headers={"Accept": MEDIA_TYPE_INDEX})
            if response.status_code in _NO_REFERRERS_API:
                response.close()
                return None
            check_response(response, 200, subject=f"referrers of {digest} in {self.description}")
            try:
                doc = json.loads(response.content)
                entries = doc.get("manifests") if isinstance(doc, dict) else None
                if not isinstance(entries, list):
                    return None  # not an index: treat as no API, the fallback tag is read instead
                found += [Descriptor.from_json(entry) for entry in entries]
            except ValueError:
                return None
            match = _LINK_NEXT_RE.search(response.headers.get("link", ""))
            if match is None:
                return found
            url = urljoin(str(response.url), match.group(1))
        return found

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        """Stream the blob's bytes from ``offset`` (``length`` of them, default: to the end) with one GET, ranged
        when not the whole blob. A 200 to a ranged request is read from its start, the first ``offset`` bytes
        dropped.

        Raises (while iterating):
            RegistryError: not found, an error status, a dropped connection (``is_temporary``) or a short body.
        """
        end = descriptor.size if length is None else min(descriptor.size, offset + length)
        return self._stream(descriptor, offset, end)

    def _stream(self, descriptor: Descriptor, offset: int, end: int) -> Generator[bytes, None, None]:
        if offset >= end:  # never ask for a range at or past the end (v2.8 answers a broken 416)
            return
        headers = dict(BLOB_GET_HEADERS)
        if offset != 0 or end != descriptor.size:
            headers["Range"] = f"bytes={offset}-{end - 1}"
        digest = descriptor.digest
        url = self.client.url(f"{self.repository}/blobs/{digest}")
        response = self.client.send_following("GET", url, scopes=(pull_scope(self.repository),), headers=headers,
                                              stream=True, retry=False)
        try:
            check_response(response, 200, 206, subject=f"blob {digest} in {self.description}")
            skip = offset if response.status_code == 200 else 0
            if response.status_code == 206:
                match = _CONTENT_RANGE_RE.match(response.headers.get("content-range", ""))
                if match is None or int(match.group(1)) != offset:
                    raise RegistryError(
                        f"blob {digest} in {self.description}: 206 with Content-Range "
                        f"{response.headers.get('content-range')!r}, expected bytes from {offset}",
                        method="GET", url=redact_url(response.request.url), status=206, is_temporary=True,
                    )
            position = offset
            for chunk in response.iter_bytes():
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                    if not chunk:
                        continue
                piece = chunk[: end - position]
                position += len(piece)
                yield piece
                if position >= end:
                    return
            raise RegistryError(
                f"blob {digest} from {self.description}: the body ended at byte {position} of {end}",
                method="GET", url=redact_url(response.request.url), status=response.status_code, is_temporary=True,
            )
        except httpx.TransportError as exc:
            raise transport_failure(exc, registry=self.client.registry) from exc
        finally:
            response.close()

    # ----- as a sink -------------------------------------------------------------------------------------------

    def accepts(self, item: ManifestItem) -> bool:
        """Every manifest but parents (they belong to other repositories; a push does not carry them either)."""
        return item.kind != "parent"

    def has_blob(self, descriptor: Descriptor) -> bool:
        """HEAD the blob: present with the descriptor's size (or a size the registry does not say)."""
        return self.client.has_blob(self.repository, descriptor.digest, descriptor.size)

    def write_blob(self, descriptor: Descriptor, source: BlobSource, on_bytes: Callable[[int], None]) -> BlobAction:
        """Mount the blob from the source repository when it is on this registry, else stream it into an upload
        session, resuming after faults.

        Raises:
            RegistryError: the destination refused, or the retries are spent; names the blob and both ends.
        """
        mount_from = None  # another repository of this registry: mount, no bytes sent
        if (isinstance(source, RegistryEndpoint) and source.client.registry == self.client.registry
                and source.repository != self.repository):
            mount_from = source.repository
        outcome = run_upload(
            self.client, self.repository, descriptor.digest, descriptor.size,
            span=lambda offset, length: _SourceSpan(source, descriptor, offset, length, on_bytes),
            chunk_bytes=self.chunk_bytes, retry=self.retry, on_offset=on_bytes,
            mount_from=mount_from,
            failed=lambda error, attempts: self._blob_error(descriptor, source, error, attempts),
        )
        if outcome == "mounted":
            on_bytes(descriptor.size)
            return "mounted"
        return "copied"

    def put_manifest(self, item: ManifestItem) -> bool:
        """PUT the manifest under its tag (or by digest). A referrers fallback index is merged with the one already
        at the destination, and not written at all when the destination has a referrers API.

        Raises:
            RegistryError: the destination refused the manifest, naming it, its type and the destination.
        """
        data = item.data
        if item.kind == "referrers-index":
            assert item.subject is not None and item.tag is not None
            if self._has_referrers_api(item.subject):
                logger.info("%s has a referrers API: no fallback index written", self.description)
                return False
            merged = self._merge_referrers_index(item)
            if merged is None:
                return True
            data = merged
        reference = item.tag or str(item.digest)
        try:
            self.client.put_manifest(self.repository, reference, data, item.media_type)
        except RegistryError as exc:
            kind = item.descriptor.artifact_type or item.media_type
            raise type(exc)(
                f"{self.description} refused manifest {item.digest} ({kind}) as {reference}: {exc.message}",
                method=exc.method, url=exc.url, status=exc.status, code=exc.code, oci_message=exc.oci_message,
                detail=exc.detail, errors=exc.errors, is_temporary=exc.is_temporary,
            ) from exc
        return True

    # ----- internals -------------------------------------------------------------------------------------------

    def _has_referrers_api(self, subject: Digest) -> bool:
        if subject not in self._referrers_api:
            self._referrers_api[subject] = self.fetch_referrers(subject) is not None
        return self._referrers_api[subject]

    def _merge_referrers_index(self, item: ManifestItem) -> bytes | None:
        """The index to PUT: the item's own bytes when the destination has none, else the destination's entries
        plus the new ones; ``None`` when the destination lists them all already."""
        assert item.tag is not None
        existing = self.fetch_manifest(item.tag)
        if existing is None:
            return item.data
        if existing.data == item.data:
            return None
        try:
            old = json.loads(existing.data).get("manifests") or []
            new = json.loads(item.data).get("manifests") or []
        except (ValueError, AttributeError):
            return item.data  # the destination's tag is not an index: replace it
        have = {entry.get("digest") for entry in old if isinstance(entry, dict)}
        added = [entry for entry in new if isinstance(entry, dict) and entry.get("digest") not in have]
        if not added:
            return None
        return go_json_bytes(Struct(schemaVersion=2, mediaType=MEDIA_TYPE_INDEX, manifests=[*old, *added]))

    def _blob_error(self, descriptor: Descriptor, source: BlobSource, error: RegistryError,
                    attempts: int) -> RegistryError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return type(error)(
            f"copying blob {descriptor.digest} from {source.description} to {self.description} failed{tries}: "
            f"{error.message}",
            method=error.method, url=error.url, status=error.status, code=error.code, oci_message=error.oci_message,
            detail=error.detail, errors=error.errors, is_temporary=error.is_temporary,
        )


class _SourceSpan(FileSpan):
    """A request body of ``length`` bytes of a blob from ``offset``, streamed from a copy source instead of a
    file. Replayable: each pass opens the source again at ``offset`` (the auth layer resends after a 401)."""

    def __init__(self, source: BlobSource, descriptor: Descriptor, offset: int, length: int,
                 on_bytes: Callable[[int], None]) -> None:
        super().__init__(-1, offset, length)
        self._source = source
        self._descriptor = descriptor
        self._on_bytes = on_bytes

    def __iter__(self) -> Iterator[bytes]:
        position, end = self.offset, self.offset + self.length
        with contextlib.closing(self._source.open_blob(self._descriptor, self.offset, self.length)) as chunks:
            for chunk in chunks:
                piece = chunk[: end - position]
                position += len(piece)
                yield piece
                self._on_bytes(position)
                if position >= end:
                    break
        if position < end:
            raise RegistryError(
                f"blob {self._descriptor.digest} from {self._source.description} ended at byte {position} of {end}",
                is_temporary=True,
            )


def parse_endpoint_location(text: str | Reference) -> Reference | LayoutLocation:
    """A copy end: ``oci:PATH[:NAME]``, ``oci-archive:PATH[:NAME]``, or a registry reference (``docker://`` allowed
    in front, as skopeo writes it; no tag means ``latest``).

    Raises:
        InvalidReferenceError: malformed, several tags, a reference without a registry host, or another transport
            (``docker-archive:x.tar``, ``tar:/x.tar``: one of skopeo's, or a ``word:`` before a path).
    """
    if not isinstance(text, Reference) and is_layout_location(text):
        return parse_layout_location(text)
    if isinstance(text, Reference):
        ref = text
    else:
        prefix = transport_prefix(text)
        unknown = InvalidReferenceError(
            f"unknown transport {prefix!r} in {text!r}: copy takes oci:DIR[:NAME], oci-archive:FILE[:NAME], "
            "docker://REFERENCE or a registry reference", reference=text,
        )
        # A "word:" before a path is never a registry host (a port is digits), whatever the reference parser says.
        before_path = prefix is not None and not text.startswith("docker://") and text[len(prefix):].startswith(
            ("/", "."))
        if prefix in OTHER_TRANSPORTS or before_path:
            raise unknown
        ref = parse_single_reference(text.removeprefix("docker://"))
    if ref.is_local:
        raise InvalidReferenceError(
            f"registry is required when copying: {ref.display()} has no registry host (use push or save for "
            "local ModelKits)", reference=str(ref),
        )
    return ref.with_default_tag()


def copy(
    source: str | Reference,
    destination: str | Reference,
    *,
    with_signatures: bool = False,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: CaBundle | None = None,
    client_cert: ClientCert | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    on_progress: ProgressCallback | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> CopyResult:
    """Copy a ModelKit between registries, repositories, OCI layouts (``oci:DIR[:NAME]``) and OCI archives
    (``oci-archive:FILE[:NAME]``), keeping its manifest digest.

    Args:
        source, destination: registry references or layout locations; a registry reference without a tag means
            ``latest``. A destination reference by digest must match the source's digest.
        with_signatures: also copy the cosign ``sha256-<hex>.sig`` tag, the referrers and the referrers fallback
            index of the manifest.
        credentials, plain_http, tls_verify, ca_bundle, client_cert: as :class:`RegistryClient`, for both ends.
        concurrency: blobs in flight at once (an archive destination takes one at a time).
        chunk_bytes: blobs of at least this size go to a registry in PATCHes of this size.
        on_progress: per-blob events (key: short digest) and a ``total`` event; called from worker threads.
        retry: retries of each request and of each blob's upload session.

    Returns:
        a :class:`CopyResult`: the digest, and the blobs copied, mounted (same registry) and skipped.

    Raises:
        InvalidReferenceError: a malformed end, or a destination digest that is not the source's.
        NotFoundError: the source has no such manifest, or an archive's index names a missing blob.
        RegistryError: a registry refused (the destination refusing the artifact type names it) or failed.
        DigestMismatchError, UnsafeArchiveError: corrupt or hostile source content.
    """
    if concurrency < 1 or chunk_bytes < 1:
        raise ValueError("concurrency and chunk_bytes must be at least 1")
    src, dst = parse_endpoint_location(source), parse_endpoint_location(destination)
    clients: dict[str, RegistryClient] = {}

    def client_for(registry: str) -> RegistryClient:
        if registry not in clients:
            clients[registry] = RegistryClient(registry, credentials=credentials, plain_http=plain_http,
                                               tls_verify=tls_verify, ca_bundle=ca_bundle, client_cert=client_cert,
                                               retry=retry)
        return clients[registry]

    with contextlib.ExitStack() as stack:
        stack.callback(_close_all, clients)
        origin: Source
        if isinstance(src, Reference):
            origin = RegistryEndpoint(client_for(src.registry), src, chunk_bytes=chunk_bytes, retry=retry)
            root_name = str(src.digest) if src.digest is not None else src.tag
            fetched = origin.fetch_manifest(root_name)
            if fetched is None:
                raise NotFoundError(f"manifest {src} not found", reference=str(src))
            source_ref: Reference | None = src
        else:
            layout_source = stack.enter_context(open_layout_source(src))
            entry = select_root(layout_source, src.name)
            fetched = SourceManifest(layout_source.read_manifest(entry), entry.media_type, entry.digest)
            source_ref = layout_source.reference_of(entry)
            layout_source.scope = source_ref
            origin = layout_source
        if isinstance(dst, Reference) and dst.digest is not None and dst.digest != fetched.digest:
            raise InvalidReferenceError(
                f"cannot copy {source} to {dst}: its manifest digest is {fetched.digest}", reference=str(dst)
            )
        sink: Sink
        if isinstance(dst, Reference):
            sink = RegistryEndpoint(client_for(dst.registry), dst, chunk_bytes=chunk_bytes, retry=retry,
                                    concurrency=concurrency)
            tag: str | None = dst.tag or None
            name_ref: Reference | None = dst
        else:
            sink = stack.enter_context(open_layout_sink(dst))
            tag = dst.name if dst.name and ":" not in dst.name else (source_ref.tag if source_ref else None) or None
            name_ref = source_ref.with_tag(tag) if source_ref is not None and tag else source_ref
        items = [manifest_item(fetched, tag=tag, reference=name_ref, kind="modelkit")]
        if with_signatures:
            signatures = collect_signatures(origin, fetched.digest, name_ref)
            if not signatures:
                logger.warning("no signatures found for %s in %s", fetched.digest, origin.description)
            items += signatures
        blobs: BlobSource = origin
        if isinstance(origin, LayoutSource) and isinstance(sink, RegistryEndpoint):
            blobs = VerifiedBlobSource(origin)  # the registry would check each digest only at its final PUT
        result = copy_items(blobs, sink, items, concurrency=concurrency, on_progress=on_progress)
        if isinstance(sink, LayoutSink):
            sink.finish()
    logger.info("copied %s from %s to %s", fetched.digest, source, destination)
    return result


def _close_all(clients: dict[str, RegistryClient]) -> None:
    for client in clients.values():
        client.close()
