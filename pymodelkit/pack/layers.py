"""Building one layer: its inputs gathered first (the walk, the checks, the digest-cache key), then its bytes streamed
once through hashing, compression and the blob's destinations.

Spec ``kitops-modelkit.md`` §2.6-§2.10. A tar layer's entries come from :func:`~pymodelkit.pack.walk.walk_layer`
(kit's order, kit's warnings) and are listed before any byte is read, which is what the digest cache keys on. The
bytes then go: read into a pooled buffer (``stream_tar`` or ``readinto``) → the diffId's SHA-256 and the compressor
(when compressed) → the blob's SHA-256 and every :class:`BlobTarget` (the store's ingest file, a registry upload),
each stage on a thread of its own (:mod:`pymodelkit._buffers`) once the layer is over :data:`THREADED_BYTES`.

An uncompressed raw layer need not be copied at all: with ``link`` it is hashed and hard-linked into the store
(:meth:`LocalStore.link_blob`); when that is not possible (another filesystem) it is copied as any layer.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import stat
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pymodelkit._buffers import BufferPool, ChunkFanout
from pymodelkit.errors import PackError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import SHA256, Digest, compute_file_digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.mediatypes import (
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    ANNOTATION_LAYER_SUBTYPE,
    LayerMediaType,
)
from pymodelkit.pack.compression import compression_backend, media_type_compression, open_compressing_writer
from pymodelkit.pack.digestcache import CachedLayer, layer_key, stat_entry
from pymodelkit.pack.ignore import IgnoreMatcher
from pymodelkit.pack.plan import PlannedLayer
from pymodelkit.pack.tarstream import BLOCK_SIZE, END_OF_ARCHIVE, stream_tar
from pymodelkit.pack.walk import TarEntry, walk_layer
from pymodelkit.progress import ProgressCallback, ProgressEvent
from pymodelkit.store import LocalStore

__all__ = [
    "BUFFER_BYTES",
    "MCPB_MEDIA_TYPE",
    "THREADED_BYTES",
    "BlobTarget",
    "BuiltLayer",
    "LayerJob",
    "StoreTarget",
    "build_layer",
    "layer_descriptor",
    "prepare_layer",
]

logger = logging.getLogger(__name__)

BUFFER_BYTES = 4 << 20  # one read, one hash update, one write
POOL_BUFFERS = 6  # buffers per layer in flight: 24 MiB
# A compressed layer goes at the compressor's speed (100-300 MB/s), far below the read's: a short read-ahead keeps
# it fed, and two layers packed at once stay under the 100 MiB peak RSS with their compressors' own buffers.
COMPRESSED_POOL_BUFFERS = 3
THREADED_BYTES = 8 << 20  # smaller layers run their stages inline: starting threads would cost more than it saves
MCPB_MEDIA_TYPE = "application/vnd.kitops.modelkit.mcpb.v1.raw"


class BlobTarget(Protocol):
    """Where a layer's blob bytes go while they are produced; one target per destination and layer."""

    def write(self, data: memoryview) -> None:
        """Take the next bytes (the view is not valid after return)."""

    def commit(self, digest: Digest, size: int) -> None:
        """All bytes were written and hash to ``digest``: make the blob durable and visible."""

    def abort(self) -> None:
        """Drop what was written (idempotent; does nothing after commit)."""


class StoreTarget:
    """A blob into the local store's ingest, committed under the digest the pipeline computed (mode 0600, kit's)."""

    def __init__(self, store: LocalStore, size_hint: int | None = None) -> None:
        self._writer = store.ingest(hashing=False, size_hint=size_hint)

    def write(self, data: memoryview) -> None:
        self._writer.write(data)

    def commit(self, digest: Digest, size: int) -> None:
        self._writer.commit(expected_digest=digest, expected_size=size, mode=0o600)

    def abort(self) -> None:
        self._writer.abort()


@dataclass(frozen=True, slots=True)
class LayerJob:
    """One layer with its inputs gathered: tar ``entries`` or the raw ``source`` file, the digest-cache key."""

    layer: PlannedLayer
    compression: str
    raw: bool
    entries: tuple[TarEntry, ...]
    source: Path | None
    info: os.stat_result | None
    size: int  # bytes of the uncompressed stream: exact for a raw file, about (tar_size) for a tar
    cache_key: str
    newest_ns: int
    stat_ns: int = 0  # when the inputs were stat'ed (before any is read): the digest cache's racy window ends here


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    """A layer's descriptor and diffId; ``reused`` when it came from the digest cache (nothing read or written)."""

    descriptor: Descriptor
    diff_id: Digest
    reused: bool = False


def prepare_layer(
    context: Path,
    layer: PlannedLayer,
    matcher: IgnoreMatcher,
    compression: str,
    layer_format: str,
    on_warning: Callable[[str], None],
) -> LayerJob:
    """Walk (or stat) the layer's inputs, run kit's checks and compute the cache key; no file is read yet."""
    stat_ns = time.time_ns()
    if layer.kind == "mcpserver" or layer_format == "raw":
        compression = "none" if layer.kind == "mcpserver" else compression
        path = context / layer.clean_path
        try:
            info = path.stat()
        except FileNotFoundError:
            raise PackError(f"path {layer.path} does not exist", path=layer.path) from None
        if not stat.S_ISREG(info.st_mode):
            raise PackError(f"file {layer.path} is not a regular file", path=layer.path)
        if layer.kind == "mcpserver":
            _check_mcpb(path, layer.path)
        members: Sequence[TarEntry] = (stat_entry(layer.clean_path, path, info),)
        key, newest = layer_key(_inputs(context, layer, compression, "raw"), members)
        return LayerJob(layer, compression, True, (), path, info, info.st_size, key, newest, stat_ns)
    entries = tuple(walk_layer(context, layer.path, matcher, on_warning=on_warning, layer_type=layer.kind))
    key, newest = layer_key(_inputs(context, layer, compression, "tar"), entries)
    return LayerJob(layer, compression, False, entries, None, None, tar_size(entries), key, newest, stat_ns)


def tar_size(entries: Sequence[TarEntry]) -> int:
    """About the size of the tar stream of ``entries`` (one header block each; long names take more)."""
    total = len(END_OF_ARCHIVE)
    for entry in entries:
        total += BLOCK_SIZE
        if not entry.is_dir:
            total += entry.size + (-entry.size % BLOCK_SIZE)
    return total


def layer_descriptor(job: LayerJob, digest: Digest, size: int, media_type: str | None = None) -> Descriptor:
    """The layer's manifest descriptor: media type, digest, size and kit's annotations."""
    layer = job.layer
    annotations = {ANNOTATION_FILEPATH: layer.clean_path}
    if layer.kind == "prompt":
        annotations[ANNOTATION_LAYER_SUBTYPE] = "prompt"
    if job.raw:
        assert job.source is not None and job.info is not None
        annotations[ANNOTATION_FILE_METADATA] = _raw_metadata(job.source, job.info)
    return Descriptor(media_type or job_media_type(job), digest, size, annotations)


def job_media_type(job: LayerJob) -> str:
    """The layer's media type."""
    if job.layer.kind == "mcpserver":
        return MCPB_MEDIA_TYPE
    fmt = "raw" if job.raw else "tar"
    return str(LayerMediaType(job.layer.media_base, fmt, media_type_compression(job.compression)))


def cached_entry(job: LayerJob, built: BuiltLayer) -> CachedLayer:
    """What the digest cache records for a layer just built."""
    return CachedLayer(built.descriptor.media_type, built.descriptor.digest, built.descriptor.size, built.diff_id)


def build_layer(
    job: LayerJob,
    make_targets: Callable[[], Sequence[BlobTarget]],
    on_progress: ProgressCallback | None,
    *,
    link_store: LocalStore | None = None,
) -> BuiltLayer:
    """Produce the layer's bytes once into the targets ``make_targets`` opens, and commit them; return the layer's
    descriptor and diffId.

    ``link_store``: an uncompressed raw layer is hard-linked into this store instead when it can be (then no target
    is opened).

    Raises:
        PackError: a file cannot be read or changed size while it was read. What a target raises (StoreError,
        RegistryError) passes through; every target is aborted on failure.
    """
    layer = job.layer
    if job.raw and job.compression == "none" and link_store is not None:
        linked = _link_raw(job, link_store, on_progress)
        if linked is not None:
            return linked
    targets = make_targets()
    try:
        digest, size, diff_id, done = _stream(job, targets, on_progress)
        for target in targets:
            target.commit(digest, size)
    except BaseException:
        for target in targets:
            target.abort()
        raise
    if on_progress is not None:
        on_progress(ProgressEvent(layer.path, done, done, finished=True))
    kind = "mcpb" if layer.kind == "mcpserver" else layer.kind
    logger.info("%s %s layer: %s", "Saved" if targets else "Hashed", kind, digest)
    return BuiltLayer(layer_descriptor(job, digest, size), diff_id)


def _stream(
    job: LayerJob, targets: Sequence[BlobTarget], on_progress: ProgressCallback | None
) -> tuple[Digest, int, Digest, int]:
    """Returns the blob's digest and size, the diffId, and the uncompressed bytes streamed."""
    threaded = job.size >= THREADED_BYTES
    buffers = POOL_BUFFERS if job.compression == "none" else COMPRESSED_POOL_BUFFERS
    pool = BufferPool(buffers if threaded else 1, BUFFER_BYTES if threaded else min(BUFFER_BYTES, _pow2(job.size)))
    blob_hasher = hashlib.sha256()
    blob_size = 0

    def hash_blob(data: memoryview) -> None:
        nonlocal blob_size
        blob_hasher.update(data)
        blob_size += len(data)

    blob_consumers = [hash_blob, *(target.write for target in targets)]
    done = 0
    total = job.size if job.raw else None
    key = job.layer.path
    # Compressed output is not pooled: a short queue bounds it (each item up to a buffer's size, incompressible data).
    depth = POOL_BUFFERS if job.compression == "none" else 2
    with ChunkFanout(blob_consumers, threaded=threaded, depth=depth, name="blob") as blob_fan:
        if job.compression == "none":
            top = blob_fan
            diff_hasher = None
            compressor = None
        else:
            diff_hasher = hashlib.sha256()
            compressor = open_compressing_writer(job.compression, lambda out: blob_fan.put(memoryview(out)))
            top = ChunkFanout([diff_hasher.update, compressor.write], threaded=threaded, depth=buffers,
                              name="layer")
        try:
            with top:

                def emit(view: memoryview, buffer: bytearray) -> None:
                    nonlocal done
                    done += len(view)
                    top.put(view, lambda: pool.release(buffer))
                    if on_progress is not None:
                        on_progress(ProgressEvent(key, done, total))

                if job.raw:
                    _stream_file(job, pool, emit)
                else:
                    stream_tar(job.entries, pool.acquire, emit)
                top.close()
            if compressor is not None:
                compressor.close()
        except BaseException:
            if compressor is not None:
                compressor.abort()  # ends the deflate threads (after ``with top`` has joined its own)
            raise
        blob_fan.close()
    digest = Digest(SHA256, blob_hasher.hexdigest())
    diff_id = Digest(SHA256, diff_hasher.hexdigest()) if diff_hasher is not None else digest
    return digest, blob_size, diff_id, done


def _stream_file(job: LayerJob, pool: BufferPool, emit: Callable[[memoryview, bytearray], None]) -> None:
    assert job.source is not None
    done = 0
    try:
        source = open(job.source, "rb", buffering=0)  # noqa: SIM115 - closed below
    except OSError as err:
        raise PackError(f"cannot open {job.layer.path}: {_reason(err)}", path=job.layer.path) from None
    with source:
        while True:
            buffer = pool.acquire()
            try:
                count = source.readinto(buffer)
            except OSError as err:
                pool.release(buffer)
                raise PackError(f"cannot read {job.layer.path}: {_reason(err)}", path=job.layer.path) from None
            if not count:
                pool.release(buffer)
                break
            done += count
            emit(memoryview(buffer)[:count], buffer)
    if done != job.size:
        raise PackError(f"file {job.layer.path} changed size while it was being packed", path=job.layer.path)


def _link_raw(job: LayerJob, store: LocalStore, on_progress: ProgressCallback | None) -> BuiltLayer | None:
    """Hard-link the file into the store and hash it: no byte written. None (the file not read) when it cannot be
    linked."""
    assert job.source is not None
    digest = store.link_blob(job.source, lambda: _hash_file(job, on_progress))
    if digest is None:
        return None
    if on_progress is not None:
        on_progress(ProgressEvent(job.layer.path, job.size, job.size, finished=True))
    logger.info("Saved %s layer: %s (hard link)", "mcpb" if job.layer.kind == "mcpserver" else job.layer.kind, digest)
    return BuiltLayer(layer_descriptor(job, digest, job.size), digest)


def _hash_file(job: LayerJob, on_progress: ProgressCallback | None) -> Digest:
    assert job.source is not None
    report = None if on_progress is None else lambda done: on_progress(ProgressEvent(job.layer.path, done, job.size))
    digest, done = compute_file_digest(job.source, on_bytes=report)
    if done != job.size or os.stat(job.source).st_size != job.size:
        raise PackError(f"file {job.layer.path} changed size while it was being packed", path=job.layer.path)
    return digest


def _inputs(context: Path, layer: PlannedLayer, compression: str, fmt: str) -> dict[str, str]:
    return {
        "kind": layer.kind,
        "media_base": layer.media_base,
        "path": layer.clean_path,
        "context": os.fspath(context),
        "format": fmt,
        "compression": compression,
        "backend": compression_backend(compression),
    }


def _pow2(size: int) -> int:
    size = max(size, 64 << 10)
    return 1 << (size - 1).bit_length()


def _check_mcpb(path: Path, display: str) -> None:
    try:
        with zipfile.ZipFile(path) as bundle:
            names = bundle.namelist()
    except (zipfile.BadZipFile, OSError):
        raise PackError(f"invalid mcpb bundle {display}: not a ZIP archive", path=display) from None
    if "manifest.json" not in names:
        raise PackError(f"invalid mcpb bundle {display}: no manifest.json at its root", path=display)


def _raw_metadata(path: Path, info: os.stat_result) -> str:
    """kit's ``org.cncf.model.file.metadata+json``: name, mode, uid, gid, size, mtime (local, RFC 3339 nano)."""
    mtime = _dt.datetime.fromtimestamp(info.st_mtime_ns // 1_000_000_000).astimezone()
    nanos = info.st_mtime_ns % 1_000_000_000
    text = mtime.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += ("." + f"{nanos:09d}").rstrip("0")
    offset = mtime.strftime("%z")
    text += "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    metadata = Struct(
        name=path.name,
        mode=stat.S_IMODE(info.st_mode),
        uid=0,
        gid=0,
        size=info.st_size,
        mtime=text,
        typeflag=0,
    )
    return go_json_bytes(metadata).decode("utf-8")


def _reason(err: OSError) -> str:
    reason = err.strerror or str(err)
    return reason[:1].lower() + reason[1:]
