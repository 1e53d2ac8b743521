"""Endpoints on this machine: an OCI layout directory or archive (source and sink) and the local store (source and
sink), for :func:`pymodelkit.ocilayout.endpoint.copy_items` (spec ``spec/transport.md`` §4).

Every blob a sink takes is hashed on the way in and checked against its descriptor (the store's ingest, the
archive writer, the layout writer), so a corrupt source never lands anywhere. A destination that checks only at its
end (a registry's final PUT) gets its blobs through :class:`VerifiedBlobSource`, which fails the read before a
corrupt blob's last byte goes out. A failed copy into a layout directory removes what it wrote (new blob files, and
the directory itself when it made it); into an archive, the partial file. The local store keeps ModelKits
only: kit's store has no place for signatures, so they stay in the archive or layout they came in.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pymodelkit.errors import DigestMismatchError, ModelKitError, NotFoundError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest, is_digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference
from pymodelkit.ocilayout.archive import ArchiveReader, ArchiveWriter
from pymodelkit.ocilayout.directory import LayoutDirectory
from pymodelkit.ocilayout.endpoint import BlobSource, ManifestItem, SourceManifest, manifest_field
from pymodelkit.ocilayout.layout import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    LayoutLocation,
    image_name_for,
    image_name_of,
    named_descriptor,
    ref_name_of,
)
from pymodelkit.store import LocalStore

__all__ = [
    "LayoutSink",
    "LayoutSource",
    "StoreSink",
    "StoreSource",
    "VerifiedBlobSource",
    "entry_names",
    "is_signature_name",
    "open_layout_sink",
    "open_layout_source",
    "select_root",
]

logger = logging.getLogger(__name__)

PIECE_BYTES = 1 << 20
BlobAction = Literal["copied", "mounted"]
# Tags that name what signs or is attached to a manifest, not a ModelKit: cosign's .sig/.att/.sbom, the referrers tag.
_SIGNATURE_NAME_RE = re.compile(r"^sha(?:256|384|512)-[0-9a-f]{64,128}(?:\.sig|\.att|\.sbom)?\Z")


class LayoutSource:
    """An OCI layout directory or archive as a copy source. ``scope`` (the root's reference, when known) decides
    between entries that share a ``ref.name``: the one of the same repository wins."""

    def __init__(self, reader: ArchiveReader | LayoutDirectory, description: str, *,
                 scope: Reference | None = None) -> None:
        self.reader = reader
        self.description = description
        self.index: list[Descriptor] = reader.index if isinstance(reader, ArchiveReader) else reader.read_index()
        self.scope = scope

    def find(self, name: str) -> Descriptor | None:
        """The index entry ``name`` selects: a digest, a full reference (``io.containerd.image.name``), or a
        ``ref.name``; ``None`` when there is none."""
        if is_digest(name):
            digest = Digest.parse(name)
            return next((d for d in self.index if d.digest == digest), None)
        full = [d for d in self.index if (ref := image_name_of(d)) is not None and name in (str(ref), ref.display())]
        if full:
            return full[0]
        named = [d for d in self.index if ref_name_of(d) == name]
        if len(named) > 1 and self.scope is not None:
            scoped = [d for d in named if (ref := image_name_of(d)) is not None and ref.repo_key == self.scope.repo_key]
            named = scoped or named
        return named[0] if named else None

    def fetch_manifest(self, name: str) -> SourceManifest | None:
        """The manifest ``name`` selects (see :meth:`find`; a digest need not be listed in the index)."""
        entry = self.find(name)
        if entry is None and is_digest(name):
            digest = Digest.parse(name)
            if self.reader.blob_size(digest) is None:
                return None
            data = self.reader.read_blob(digest, max_bytes=MAX_MANIFEST_BYTES)
            return SourceManifest(data, _declared_type(data), digest)
        if entry is None:
            return None
        data = self.read_manifest(entry)
        return SourceManifest(data, entry.media_type or _declared_type(data), entry.digest)

    def read_manifest(self, entry: Descriptor) -> bytes:
        """The bytes of an index entry's manifest, verified (digest and size).

        Raises:
            NotFoundError: the index names a manifest that is not among the blobs (one line, naming the digest).
        """
        if self.reader.blob_size(entry.digest) is None:
            raise NotFoundError(
                f"{self.description}: index.json names manifest {entry.digest}, which is not among its blobs"
            )
        data = self.reader.read_blob(entry.digest, max_bytes=MAX_MANIFEST_BYTES)
        if len(data) != entry.size:
            raise DigestMismatchError(
                f"{self.description}: manifest {entry.digest} is {len(data)} bytes, index.json says {entry.size}",
                expected=str(entry.size), actual=str(len(data)),
            )
        return data

    def reference_of(self, entry: Descriptor) -> Reference | None:
        """The full reference an index entry names (``io.containerd.image.name``), if any."""
        return image_name_of(entry)

    def fetch_referrers(self, digest: Digest) -> list[Descriptor] | None:
        """Layouts have no referrers API: ``None`` (the fallback tag is looked up instead)."""
        return None

    def check_blob(self, descriptor: Descriptor, what: str) -> None:
        """Raise a one-line error unless the blob is present with the descriptor's size.

        Raises:
            NotFoundError: missing. DigestMismatchError: another size.
        """
        size = self.reader.blob_size(descriptor.digest)
        if size is None:
            raise NotFoundError(f"{self.description}: {what} names blob {descriptor.digest}, which is missing")
        if size != descriptor.size:
            raise DigestMismatchError(
                f"{self.description}: blob {descriptor.digest} is {size} bytes, {what} says {descriptor.size}",
                expected=str(descriptor.size), actual=str(size),
            )

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        """The blob's bytes (its size checked against the descriptor first)."""
        self.check_blob(descriptor, "a manifest")
        return self.reader.open_blob(descriptor.digest, offset, length)


class LayoutSink:
    """An OCI archive being written (blobs one at a time) or a layout directory, as a copy destination.

    Call :meth:`finish` after the copy: it writes ``index.json`` (and, for an archive, moves it into place).
    """

    def __init__(self, target: ArchiveWriter | LayoutDirectory, description: str) -> None:
        self.target = target
        self.description = description
        self.max_concurrency = 1 if isinstance(target, ArchiveWriter) else 4
        self.entries: list[Descriptor] = []
        self.finished = False

    def accepts(self, item: ManifestItem) -> bool:
        """A layout keeps every kind of manifest."""
        return True

    def has_blob(self, descriptor: Descriptor) -> bool:
        """Tell whether the blob is in the layout already."""
        if isinstance(self.target, ArchiveWriter):
            return self.target.has_blob(descriptor.digest)
        return self.target.blob_size(descriptor.digest) == descriptor.size

    def write_blob(self, descriptor: Descriptor, source: BlobSource, on_bytes: Callable[[int], None]) -> BlobAction:
        """Stream the blob from ``source`` into the layout, verified on the way.

        Raises:
            DigestMismatchError: naming the source, when the bytes do not match the descriptor.
        """
        try:
            with contextlib.closing(source.open_blob(descriptor)) as chunks:
                self.target.add_blob(descriptor, _counted(chunks, on_bytes))
        except DigestMismatchError as exc:
            if exc.message.startswith(source.description):
                raise
            raise DigestMismatchError(f"{source.description}: {exc.message}", expected=exc.expected,
                                      actual=exc.actual) from None
        return "copied"

    def put_manifest(self, item: ManifestItem) -> bool:
        """Write the manifest blob and list it in the index under its names."""
        self.target.add_blob(item.descriptor, [item.data])
        image = image_name_for(item.reference) if item.reference is not None else None
        self.entries.append(named_descriptor(item.descriptor, item.tag, image))
        return True

    def finish(self) -> None:
        """Write ``index.json`` (an archive is complete and in place afterwards)."""
        if isinstance(self.target, ArchiveWriter):
            self.target.finish(self.entries)
        else:
            self.target.add_manifests(self.entries)
        self.finished = True

    def abort(self) -> None:
        """Undo an unfinished copy: an archive's partial file goes; a layout directory loses the blob files this
        copy added, and the directories and ``oci-layout`` it made (a new layout goes entirely). No-op once
        :meth:`finish` succeeded."""
        if self.finished:
            return
        if isinstance(self.target, ArchiveWriter):
            self.target.abort()
        else:
            self.target.discard()


class StoreSource:
    """The local store as a copy source: manifests of one repository by tag or digest, blobs from its files."""

    def __init__(self, store: LocalStore, reference: Reference) -> None:
        self.store = store
        self.reference = reference
        self.description = f"local storage ({reference.display()})"

    def fetch_manifest(self, name: str) -> SourceManifest | None:
        """The manifest a tag or digest names in the reference's repository, or ``None``."""
        ref = self.reference.with_digest(Digest.parse(name)) if is_digest(name) else self.reference.with_tag(name)
        try:
            descriptor = self.store.resolve(ref)
        except NotFoundError:
            return None
        data = self.store.read_blob(descriptor.digest, max_bytes=MAX_MANIFEST_BYTES)
        return SourceManifest(data, _declared_type(data), descriptor.digest)

    def fetch_referrers(self, digest: Digest) -> list[Descriptor] | None:
        """The store keeps no referrers: ``None``."""
        return None

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        """The blob's bytes from its file in ``blobs/``, after checking its size against the descriptor.

        Raises:
            NotFoundError: not in the store. DigestMismatchError: of another size.
        """
        path = self.store.blob_path(descriptor.digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {descriptor.digest} not found in local storage", path=str(path)) from None
        if size != descriptor.size:
            raise DigestMismatchError(
                f"blob {descriptor.digest} in local storage is {size} bytes, its manifest says {descriptor.size}",
                expected=str(descriptor.size), actual=str(size),
            )
        return _read_file(path, offset, length)


class StoreSink:
    """The local store as a copy destination. Keeps ModelKits (and their parents) only."""

    max_concurrency = 8

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.description = "local storage"

    def accepts(self, item: ManifestItem) -> bool:
        """Only ModelKits: kit's store has no place for signatures or referrers indexes."""
        return item.kind in ("modelkit", "parent")

    def has_blob(self, descriptor: Descriptor) -> bool:
        """Tell whether the store has the blob with the descriptor's size."""
        return self.store.has_blob(descriptor.digest, descriptor.size)

    def write_blob(self, descriptor: Descriptor, source: BlobSource, on_bytes: Callable[[int], None]) -> BlobAction:
        """Stream the blob into the store's ingest; it is committed only when its size and digest check out.

        Raises:
            DigestMismatchError: naming the source, when the bytes do not match the descriptor.
        """
        with self.store.ingest(size_hint=descriptor.size) as writer, \
                contextlib.closing(source.open_blob(descriptor)) as chunks:
            for chunk in chunks:
                writer.write(chunk)
                if writer.size > descriptor.size:
                    break
                on_bytes(writer.size)
            try:
                writer.commit(expected_digest=descriptor.digest, expected_size=descriptor.size, mode=0o600)
            except DigestMismatchError as exc:
                raise DigestMismatchError(f"{source.description}: {exc}", expected=exc.expected,
                                          actual=exc.actual) from None
        return "copied"

    def put_manifest(self, item: ManifestItem) -> bool:
        """Add the ModelKit's manifest to its repository, with its tag (none when it came by digest)."""
        if item.reference is None:
            raise ModelKitError(f"manifest {item.digest} has no repository to be stored in")
        tags = (item.reference.tag,) if item.reference.tag else ()
        self.store.add_manifest(item.reference.repo_key, item.data, tags=tags)
        return True


@dataclass(slots=True)
class _Hashing:
    """How far a blob's bytes have been hashed, in order; ``verified`` once all of them matched the digest."""

    hasher: Any
    done: int = 0
    verified: bool = False
    failure: DigestMismatchError | None = None


class VerifiedBlobSource:
    """``source``'s blobs, checked against their digests as they stream, for a destination that would find a
    corrupt blob only at its end (a registry answers ``400 DIGEST_INVALID`` to the final PUT, a registry error).

    A blob's bytes are hashed in order across however many reads serve them: one whole read (a single PUT) or
    ranged reads one after another (chunked PATCHes, resumed from any offset: bytes hashed already are not hashed
    again, and a gap is read and hashed first). The read that would hand over a blob's last byte raises
    :class:`DigestMismatchError` instead when the hash differs, so the destination never gets all of a corrupt
    blob. Thread-safe across blobs; each blob is read by one thread at a time, as :func:`copy_items` does.
    """

    def __init__(self, source: BlobSource) -> None:
        self.source = source
        self.description = source.description
        self._blobs: dict[Digest, _Hashing] = {}
        self._lock = threading.Lock()

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        """The blob's bytes from ``offset`` (``length`` of them, default: to the end), as ``source`` serves them.

        Raises (while iterating):
            DigestMismatchError: the blob's bytes, complete with this read, hash to another digest (or are more
                than its size); raised instead of yielding the last piece, and again on any later read.
        """
        return self._checked(descriptor, offset, length)

    def _checked(self, descriptor: Descriptor, offset: int, length: int | None) -> Generator[bytes, None, None]:
        with self._lock:
            state = self._blobs.get(descriptor.digest)
            if state is None:
                state = self._blobs[descriptor.digest] = _Hashing(hashlib.new(descriptor.digest.algorithm))
        if state.failure is not None:
            raise state.failure
        if not state.verified and offset > state.done:  # a read that skips ahead: hash the bytes it skips first
            with contextlib.closing(self.source.open_blob(descriptor, state.done, offset - state.done)) as gap:
                for piece in gap:
                    self._hash(descriptor, state, state.done, piece)
        position = offset
        with contextlib.closing(self.source.open_blob(descriptor, offset, length)) as chunks:
            for chunk in chunks:
                self._hash(descriptor, state, position, chunk)
                position += len(chunk)
                yield chunk

    def _hash(self, descriptor: Descriptor, state: _Hashing, position: int, chunk: bytes) -> None:
        """Hash the part of ``chunk`` (at ``position`` in the blob) beyond what is hashed; at the blob's end, check."""
        end = position + len(chunk)
        if state.verified or end <= state.done:
            return
        if position > state.done:  # the bytes before this chunk were never read: the blob cannot be checked
            raise ModelKitError(f"{self.description}: blob {descriptor.digest} could not be read from byte "
                                f"{state.done} to check its digest")
        state.hasher.update(memoryview(chunk)[state.done - position:])
        state.done = end
        if end < descriptor.size:
            return
        actual = f"{descriptor.digest.algorithm}:{state.hasher.hexdigest()}"
        if end == descriptor.size and actual == str(descriptor.digest):
            state.verified = True
            return
        got = actual if end == descriptor.size else f"more than {descriptor.size} bytes"
        state.failure = DigestMismatchError(
            f"{self.description}: blob digest mismatch: expected {descriptor.digest}, got {got}",
            expected=str(descriptor.digest), actual=got,
        )
        raise state.failure


def is_signature_name(name: str | None) -> bool:
    """Tell whether a layout name is a signature, attestation or referrers tag (``sha256-<hex>[.sig]``)."""
    return name is not None and _SIGNATURE_NAME_RE.match(name) is not None


@contextlib.contextmanager
def open_layout_source(location: LayoutLocation) -> Iterator[LayoutSource]:
    """Open the layout or archive of ``location`` for reading (closed on exit).

    Raises:
        NotFoundError, UnsafeArchiveError, ModelKitError: as :class:`ArchiveReader` and :class:`LayoutDirectory`.
    """
    if location.kind == "oci-archive":
        with ArchiveReader(location.path) as reader:
            yield LayoutSource(reader, f"oci-archive:{location.path}")
    else:
        yield LayoutSource(LayoutDirectory(location.path), f"oci:{location.path}")


@contextlib.contextmanager
def open_layout_sink(location: LayoutLocation) -> Iterator[LayoutSink]:
    """Open ``location`` for writing: a new archive or a layout directory (created if missing). Unless
    :meth:`LayoutSink.finish` ran, leaving the block undoes the copy (:meth:`LayoutSink.abort`): no archive file, no
    new layout directory, an existing layout as it was."""
    if location.kind == "oci-archive":
        sink = LayoutSink(ArchiveWriter(location.path), f"oci-archive:{location.path}")
    else:
        sink = LayoutSink(LayoutDirectory.create(location.path), f"oci:{location.path}")
    try:
        yield sink
    finally:
        sink.abort()


def select_root(source: LayoutSource, name: str | None) -> Descriptor:
    """The index entry a copy or pull starts from: the one ``name`` selects; without a name the only entry, else
    the first that is not a signature or referrer (``save`` writes the ModelKit first).

    Raises:
        NotFoundError: no entry by that name, or an empty index (one line, listing the names there are).
    """
    if name is not None:
        found = source.find(name)
        if found is None:
            names = ", ".join(entry_names(source.index)) or "none"
            raise NotFoundError(f"{source.description} has no manifest named {name} (it has: {names})",
                                reference=name)
        return found
    if len(source.index) == 1:
        return source.index[0]
    candidates = [d for d in source.index if (ref_name_of(d) or image_name_of(d)) and not is_signature_name(
        ref_name_of(d))]
    if not candidates:
        raise NotFoundError(f"{source.description} holds no named manifest; name one as {source.description}:NAME")
    if len(candidates) > 1:
        logger.info("%s holds %d manifests: using the first, %s", source.description, len(candidates),
                    entry_names(candidates[:1])[0])
    return candidates[0]


def entry_names(entries: Sequence[Descriptor]) -> list[str]:
    """The names of index entries, for messages: the full name, else the ``ref.name``, else the digest."""
    out = []
    for entry in entries:
        annotations = entry.annotations or {}
        out.append(annotations.get(ANNOTATION_IMAGE_NAME) or annotations.get(ANNOTATION_REF_NAME)
                   or str(entry.digest))
    return out


def _declared_type(data: bytes) -> str:
    return manifest_field(data, "mediaType") or MEDIA_TYPE_MANIFEST


def _counted(chunks: Iterator[bytes], on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    done = 0
    for chunk in chunks:
        yield chunk
        done += len(chunk)
        on_bytes(done)


def _read_file(path: os.PathLike[str] | str, offset: int, length: int | None) -> Generator[bytes, None, None]:
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            piece = handle.read(PIECE_BYTES if remaining is None else min(PIECE_BYTES, remaining))
            if not piece:
                if remaining:
                    raise StoreError(f"blob file {path} ended early: it changed while being read", path=str(path))
                return
            if remaining is not None:
                remaining -= len(piece)
            yield piece
