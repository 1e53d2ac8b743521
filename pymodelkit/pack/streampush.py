"""``pack_and_push``: pack a directory and push it, optionally without storing it (spec ``kitops-modelkit.md`` §2,
§5.2; ``oci-distribution.md`` §1.2-§1.8).

With the store (the default) this is :func:`~pymodelkit.pack.pipeline.pack` then
:func:`~pymodelkit.registry.transfer.push`: the push HEADs every blob and skips those the registry has, so packing and
pushing an unchanged directory again reads nothing (digest cache) and sends no blob byte.

With ``no_store=True`` nothing is written to the local store: each layer is streamed to the registry as it is
produced — one upload session per layer, ``POST``, then a ``PATCH`` each time :data:`STREAM_CHUNK_BYTES` of blob
bytes are ready, then ``PUT ?digest=`` with the rest once the digest is known — then the config and the manifest are
pushed. A 100 GB model needs no disk beyond its source. A layer the digest cache knows (an earlier pack of the same
files) is HEADed first and not produced at all when the registry has it. A dropped connection or a 5xx during a
layer's upload restarts that layer from its source files (the bytes were never stored), within ``retry``; the digest
cache file (a few KiB under ``$KITOPS_HOME``) is the only thing written locally.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymodelkit.errors import InvalidReferenceError, RegistryError
from pymodelkit.kitfile import Kitfile
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import parse_reference
from pymodelkit.pack.digestcache import DigestCache
from pymodelkit.pack.layers import BuiltLayer, LayerJob, build_layer
from pymodelkit.pack.pipeline import PackResult, assemble, build_layers, cached_or_built, gather_inputs, pack
from pymodelkit.progress import ProgressCallback
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.registry.transfer import DEFAULT_CHUNK_BYTES, DEFAULT_CONCURRENCY, PushResult, push
from pymodelkit.registry.upload import (
    UploadSession,
    cancel_upload,
    finish_bytes_upload,
    push_bytes,
    send_bytes_chunk,
    start_upload,
)
from pymodelkit.store import LocalStore

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource

__all__ = ["STREAM_CHUNK_BYTES", "PackAndPushResult", "UploadTarget", "pack_and_push"]

logger = logging.getLogger(__name__)

STREAM_CHUNK_BYTES = 16 << 20  # held in memory per layer being uploaded; one PATCH each


@dataclass(frozen=True, slots=True)
class PackAndPushResult:
    """What ``pack_and_push`` did: the pack (its manifest, config, Kitfile; stored only when ``stored``) and the
    push (blobs uploaded and skipped, ``bytes_uploaded``)."""

    pack: PackResult
    push: PushResult
    stored: bool


class UploadTarget:
    """A layer blob sent to a registry while it is produced: bytes gather to ``chunk_bytes``, each full chunk is a
    PATCH, and :meth:`commit` PUTs the rest with the digest (one monolithic PUT when the blob is under a chunk)."""

    def __init__(self, client: RegistryClient, repository: str, chunk_bytes: int = STREAM_CHUNK_BYTES) -> None:
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        self._client = client
        self._repository = repository
        self._buffer = bytearray(chunk_bytes)  # reused for every chunk: memory stays flat whatever the layer size
        self._filled = 0
        self._session: UploadSession | None = None
        self._done = False
        self.bytes_sent = 0

    def write(self, data: memoryview) -> None:
        view, size = memoryview(self._buffer), len(self._buffer)
        while data:
            take = min(size - self._filled, len(data))
            view[self._filled:self._filled + take] = data[:take]
            self._filled += take
            data = data[take:]
            if self._filled == size:
                self._session = send_bytes_chunk(self._client, self._open(), view)
                self.bytes_sent += size
                self._filled = 0

    def commit(self, digest: Digest, size: int) -> None:
        rest = memoryview(self._buffer)[: self._filled]
        finish_bytes_upload(self._client, self._open(), digest, rest)
        self.bytes_sent += self._filled
        self._filled = 0
        self._done = True
        logger.debug("streamed blob %s (%d bytes) to %s", digest.short(), size, self._repository)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._filled = 0
        if self._session is not None:
            cancel_upload(self._client, self._session)

    def _open(self) -> UploadSession:
        if self._session is None:
            self._session = start_upload(self._client, self._repository)
        return self._session


def pack_and_push(
    context: str | os.PathLike[str],
    tag: str,
    *,
    kitfile: str | os.PathLike[str] | Kitfile | None = None,
    compression: str = "none",
    layer_format: str = "tar",
    store: LocalStore | None = None,
    no_store: bool = False,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    on_progress: ProgressCallback | None = None,
    annotations: Mapping[str, str] | None = None,
    link: bool = False,
    digest_cache: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_bytes: int | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    format: str = "kitops",
) -> PackAndPushResult:
    """Pack ``context`` and push it to ``tag`` (``registry/repository[:tag]``, one tag), with or without the store.

    Args:
        context, kitfile, compression, layer_format, annotations, link, digest_cache, format: as
            :func:`pymodelkit.pack`.
        tag: where to push; it must name a registry. No tag means ``latest``.
        store: the local store (blobs, parents, the digest cache); default: the one under ``KITOPS_HOME``.
        no_store: stream the layers to the registry and store nothing (see the module docstring).
        credentials, plain_http, tls_verify, ca_bundle, concurrency, retry: as :func:`pymodelkit.push`.
        chunk_bytes: with the store, the push's chunk size (default: push's); without, bytes per PATCH (default
            :data:`STREAM_CHUNK_BYTES`).
        on_progress: pack's per-layer events, then (with the store) push's.

    Raises:
        InvalidReferenceError: ``tag`` has no registry, several tags, or a digest. And what :func:`pymodelkit.pack`
        and :func:`pymodelkit.push` raise.
    """
    reference, extra = parse_reference(tag)
    if extra:
        raise InvalidReferenceError(f"pack and push takes one tag, not {tag}", reference=tag)
    if reference.is_local:
        raise InvalidReferenceError(
            f"registry is required when pushing: {reference.display()} has no registry host", reference=tag
        )
    store = store if store is not None else LocalStore()
    if not no_store:
        packed = pack(context, kitfile=kitfile, tag=tag, compression=compression, layer_format=layer_format,
                      store=store, on_progress=on_progress, annotations=annotations, link=link,
                      digest_cache=digest_cache, format=format)
        assert packed.reference is not None
        pushed = push(packed.reference, store=store, credentials=credentials, plain_http=plain_http,
                      tls_verify=tls_verify, ca_bundle=ca_bundle, concurrency=concurrency,
                      chunk_bytes=chunk_bytes or DEFAULT_CHUNK_BYTES, on_progress=on_progress, retry=retry)
        return PackAndPushResult(packed, pushed, stored=True)
    return _stream_push(context, tag, kitfile=kitfile, compression=compression, layer_format=layer_format,
                        store=store, credentials=credentials, plain_http=plain_http, tls_verify=tls_verify,
                        ca_bundle=ca_bundle, on_progress=on_progress, annotations=annotations,
                        digest_cache=digest_cache, chunk_bytes=chunk_bytes or STREAM_CHUNK_BYTES, retry=retry,
                        format=format)


def _stream_push(
    context: str | os.PathLike[str],
    tag: str,
    *,
    kitfile: str | os.PathLike[str] | Kitfile | None,
    compression: str,
    layer_format: str,
    store: LocalStore,
    credentials: CredentialSource | None,
    plain_http: bool | None,
    tls_verify: bool,
    ca_bundle: str | None,
    on_progress: ProgressCallback | None,
    annotations: Mapping[str, str] | None,
    digest_cache: bool,
    chunk_bytes: int,
    retry: RetryPolicy,
    format: str,
) -> PackAndPushResult:
    inputs = gather_inputs(context, kitfile=kitfile, tag=tag, compression=compression, layer_format=layer_format,
                           store=store, annotations=annotations, format=format)
    reference = inputs.reference
    assert reference is not None
    repository = reference.repository
    cache = DigestCache.for_home(store.home) if digest_cache else None
    uploaded: dict[Digest, int] = {}
    skipped: list[Digest] = []
    with RegistryClient(reference.registry, credentials=credentials, plain_http=plain_http, tls_verify=tls_verify,
                        ca_bundle=ca_bundle, retry=retry) as client:

        def present(digest: Digest, size: int) -> bool:
            return client.has_blob(repository, digest, size)

        def produce(job: LayerJob) -> BuiltLayer:
            built = _upload_layer(client, repository, job, chunk_bytes, on_progress, retry)
            uploaded[built.descriptor.digest] = built.descriptor.size
            return built

        def build(job: LayerJob) -> BuiltLayer:
            built = cached_or_built(cache, job, present, produce, on_progress)
            if built.reused:  # from the digest cache, and the registry has it
                skipped.append(built.descriptor.digest)
            return built

        built = build_layers(inputs.jobs, build)
        filled, config_bytes, manifest, manifest_bytes = assemble(inputs, built, annotations)
        config = manifest.config
        if push_bytes(client, repository, config_bytes) == "present":
            skipped.append(config.digest)
        else:
            uploaded[config.digest] = config.size
        digest = client.put_manifest(repository, reference.tag, manifest_bytes, MEDIA_TYPE_MANIFEST)
    if cache is not None:
        cache.save()
    logger.info("pushed %s to %s without storing it", digest, reference)
    packed = PackResult(digest=digest, manifest=manifest, manifest_bytes=manifest_bytes, config_bytes=config_bytes,
                        kitfile=filled, reference=reference, tags=(reference.tag,),
                        reused=tuple(b.descriptor.digest for b in built if b.reused), stored=False)
    pushed = PushResult(reference=reference, digest=digest, uploaded=tuple(uploaded), mounted=(),
                        skipped=tuple(dict.fromkeys(skipped)), bytes_uploaded=sum(uploaded.values()))
    return PackAndPushResult(packed, pushed, stored=False)


def _upload_layer(
    client: RegistryClient,
    repository: str,
    job: LayerJob,
    chunk_bytes: int,
    on_progress: ProgressCallback | None,
    retry: RetryPolicy,
) -> BuiltLayer:
    """Produce the layer into an upload; on a temporary failure start the layer again from its files."""
    attempt, started = 0, time.monotonic()
    while True:
        attempt += 1
        try:
            return build_layer(job, lambda: [UploadTarget(client, repository, chunk_bytes)], on_progress)
        except RegistryError as exc:
            delay = retry.delay_s(attempt)
            if not exc.is_temporary or not retry.allows(attempt, time.monotonic() - started, delay):
                raise
            logger.info("layer %s: %s; producing it again in %.1fs (retry %d)", job.layer.path, exc, delay, attempt)
            time.sleep(delay)
