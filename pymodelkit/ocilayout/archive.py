"""An OCI image layout in one tar file (skopeo's ``oci-archive:``): streamed writing, checked random-access reading
(spec ``spec/transport.md`` §3).

Writing: ``oci-layout``, the ``blobs`` and ``blobs/sha256`` directories, each blob as it streams in (hashed on the
way and checked against its descriptor), ``index.json`` last, two zero blocks. Headers are the Go-style ones of
:mod:`pymodelkit.pack.tarstream` (mode 0644/0755, uid 1000, zero times), so the same content gives the same archive
bytes. The file is written beside its final name and renamed into place only when complete; an operating-system
error (a full disk, a missing permission) names that final name, never the temp file, and a directory that does not
exist is refused before anything is written (as ``docker save -o`` does).

Reading refuses what unpack refuses and more: absolute names, ``..``, links, devices, anything other than
``oci-layout``, ``index.json``, ``blobs/<algorithm>/<hex>`` and their directories (Docker's ``manifest.json`` and
``repositories`` beside a layout are ignored), a duplicate member whose content differs, a member whose bytes run
past the end of the file, and a missing end-of-archive marker; a directory is refused with a message saying whether
it is an OCI layout (``oci:DIR`` reads it) or not. Blob bytes are read with ``pread`` in 1 MiB pieces;
their digests are checked by whoever consumes them (a store ingest, another archive, a registry's PUT).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
import tarfile
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from pymodelkit._atomic import fsync_dir, named_os_error
from pymodelkit.errors import DigestMismatchError, ModelKitError, NotFoundError, UnsafeArchiveError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.ocilayout.layout import (
    BLOBS_DIR,
    INDEX_FILE,
    MAX_INDEX_BYTES,
    MAX_LAYOUT_FILE_BYTES,
    OCI_LAYOUT_BYTES,
    OCI_LAYOUT_FILE,
    blob_member_name,
    digest_of_blob_name,
    index_bytes,
    parse_index,
    parse_oci_layout,
)
from pymodelkit.pack.tarstream import BLOCK_SIZE, END_OF_ARCHIVE, tar_header_blocks
from pymodelkit.pack.walk import TarEntry

__all__ = ["PIECE_BYTES", "ArchiveReader", "ArchiveWriter"]

logger = logging.getLogger(__name__)

PIECE_BYTES = 1 << 20
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_IGNORED_EXTRAS = frozenset({"manifest.json", "repositories"})  # docker save writes these beside the layout
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_TAR_ERRORS = (tarfile.TarError, EOFError, ValueError, UnicodeDecodeError)


class ArchiveWriter:
    """Writes an OCI archive to ``path`` as a stream. Not thread-safe: blobs are written one after the other.

    Use it as a context manager; leaving the block without :meth:`finish` removes the partial file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():  # found now, not by the rename after every byte is written
            raise ModelKitError(f"cannot save to {self.path}: it is a directory (name an archive file, or write "
                                f"oci:{self.path} for an OCI layout directory)")
        parent = self.path.parent
        if not parent.is_dir():
            if parent.exists():
                raise ModelKitError(f"cannot save to {self.path}: {parent} is not a directory")
            raise NotFoundError(f"cannot save to {self.path}: directory {parent} does not exist", path=str(parent))
        self._temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            self._file: BinaryIO | None = open(self._temp, "xb", buffering=PIECE_BYTES)  # noqa: SIM115 - closed in finish/abort
        except OSError as exc:
            raise named_os_error(exc, self.path, [self._temp]) from exc
        self._blobs: set[Digest] = set()
        self.bytes_written = 0
        self._put(tar_header_blocks(_file_entry(OCI_LAYOUT_FILE, len(OCI_LAYOUT_BYTES))))
        self._put_padded(OCI_LAYOUT_BYTES)
        self._dirs: set[str] = set()

    def has_blob(self, digest: Digest) -> bool:
        """Tell whether the blob is in the archive already."""
        return digest in self._blobs

    def add_blob(self, descriptor: Descriptor, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        """Append the blob ``descriptor`` names, its bytes taken from ``chunks`` (hashed as they are written).

        Raises:
            DigestMismatchError: the bytes are more or fewer than ``descriptor.size``, or hash to another digest; the
                archive is then unusable (abort it).
        """
        digest = descriptor.digest
        if digest in self._blobs:
            return
        for directory in (BLOBS_DIR, f"{BLOBS_DIR}/{digest.algorithm}"):
            if directory not in self._dirs:
                self._dirs.add(directory)
                self._put(tar_header_blocks(TarEntry(directory, Path(), True, _DIR_MODE, 0)))
        self._put(tar_header_blocks(_file_entry(blob_member_name(digest), descriptor.size)))
        hasher = hashlib.new(digest.algorithm)
        written = 0
        for chunk in chunks:
            if written + len(chunk) > descriptor.size:
                raise DigestMismatchError(
                    f"blob {digest} is longer than the {descriptor.size} bytes its descriptor says",
                    expected=str(descriptor.size), actual=f"more than {descriptor.size}",
                )
            hasher.update(chunk)
            self._put(chunk)
            written += len(chunk)
        if written != descriptor.size:
            raise DigestMismatchError(
                f"blob {digest} ended at {written} of its {descriptor.size} bytes",
                expected=str(descriptor.size), actual=str(written),
            )
        actual = hasher.hexdigest()
        if actual != digest.hex:
            raise DigestMismatchError(
                f"blob {digest}: its bytes hash to {digest.algorithm}:{actual}",
                expected=str(digest), actual=f"{digest.algorithm}:{actual}",
            )
        self._put(_ZERO_BLOCK[: -written % BLOCK_SIZE])
        self._blobs.add(digest)

    def finish(self, manifests: Sequence[Descriptor]) -> Path:
        """Write ``index.json`` listing ``manifests`` and the end of the archive, then move it into place.

        Raises:
            NotFoundError: a manifest of the index is not in the archive.
        """
        for descriptor in manifests:
            if descriptor.digest not in self._blobs:
                raise NotFoundError(f"manifest {descriptor.digest} of the index is not in the archive")
        data = index_bytes(manifests)
        self._put(tar_header_blocks(_file_entry(INDEX_FILE, len(data))))
        self._put_padded(data)
        self._put(END_OF_ARCHIVE)
        handle = self._require_open()
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        except OSError as exc:
            raise named_os_error(exc, self.path, [self._temp]) from exc
        self._file = None
        try:
            os.replace(self._temp, self.path)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()
            if isinstance(exc, OSError):
                raise named_os_error(exc, self.path, [self._temp]) from exc
            raise
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Drop the partial archive. Safe to call more than once, and after :meth:`finish`. The temp file goes also
        when closing it fails (its buffered tail cannot be written either when the disk is full)."""
        handle, self._file = self._file, None
        if handle is None:
            return
        try:
            handle.close()
        except OSError as exc:
            logger.debug("closing the partial archive %s: %s", self._temp, exc)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._require_open().write(data)
        except OSError as exc:  # ENOSPC from write names no file: name the archive
            raise named_os_error(exc, self.path, [self._temp]) from exc
        self.bytes_written += len(data)

    def _put_padded(self, data: bytes) -> None:
        self._put(data)
        self._put(_ZERO_BLOCK[: -len(data) % BLOCK_SIZE])

    def _require_open(self) -> BinaryIO:
        if self._file is None:
            raise ModelKitError(f"archive {self.path} is closed")
        return self._file


@dataclass(slots=True)
class _Member:
    """Where one member's bytes are in the file; ``copies`` are earlier members of the same name (offsets)."""

    offset: int
    size: int
    copies: list[int] = field(default_factory=list)


class ArchiveReader:
    """Reads an OCI archive (a seekable tar file): the index, and blobs as streams. Thread-safe for reading.

    Opening scans every header (seeking over the data, so a large archive opens quickly) and applies the checks of
    the module docstring; ``oci-layout`` and ``index.json`` are read and parsed.

    Raises (from the constructor):
        NotFoundError: the file does not exist.
        UnsafeArchiveError: a member that is refused, a truncated or corrupt archive, a duplicate with other content.
        ModelKitError: no ``oci-layout`` or ``index.json``, or either malformed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.where = f"archive {self.path}"
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise NotFoundError(f"archive {self.path} not found", path=str(self.path)) from None
        try:
            info = os.fstat(self._fd)
            if stat.S_ISDIR(info.st_mode):
                raise ModelKitError(_directory_message(self.path))
            self._size = info.st_size
            self._members = self._scan()
            self.index = self._read_index()
        except BaseException:
            os.close(self._fd)
            raise

    # ----- queries ---------------------------------------------------------------------------------------------

    def blob_size(self, digest: Digest) -> int | None:
        """The size of the blob's member, or ``None`` when the archive has no such blob."""
        member = self._members.get(blob_member_name(digest))
        return None if member is None else member.size

    def open_blob(self, digest: Digest, offset: int = 0, length: int | None = None) -> Generator[bytes, None, None]:
        """The blob's bytes from ``offset`` (``length`` of them, default: to its end), in pieces of at most 1 MiB.

        Raises:
            NotFoundError: the archive has no such blob (one line, naming the digest).
        """
        member = self._require_blob(digest)
        return self._read_range(member.offset, member.size, offset, length)

    def read_blob(self, digest: Digest, *, max_bytes: int) -> bytes:
        """A small blob whole, verified against its digest.

        Raises:
            NotFoundError: no such blob. UnsafeArchiveError: larger than ``max_bytes``.
            DigestMismatchError: the bytes hash to something else.
        """
        member = self._require_blob(digest)
        if member.size > max_bytes:
            raise UnsafeArchiveError(
                f"{self.where}: blob {digest} is {member.size} bytes, more than the {max_bytes} allowed here",
                entry=blob_member_name(digest),
            )
        data = os.pread(self._fd, member.size, member.offset)
        _check_digest(self.where, digest, data)
        return data

    def check_duplicates(self) -> None:
        """Hash every copy of a repeated blob member; refuse the archive when the copies differ.

        Raises:
            UnsafeArchiveError: a duplicate member with other content.
        """
        for name, member in self._members.items():
            digest = digest_of_blob_name(name)
            if digest is None:
                continue
            for offset in [*member.copies, member.offset] if member.copies else ():
                hasher = hashlib.new(digest.algorithm)
                for piece in self._read_range(offset, member.size, 0, None):
                    hasher.update(piece)
                if hasher.hexdigest() != digest.hex:
                    raise UnsafeArchiveError(
                        f"{self.where}: duplicate member {name} with different content", entry=name
                    )

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- internals -------------------------------------------------------------------------------------------

    def _require_blob(self, digest: Digest) -> _Member:
        member = self._members.get(blob_member_name(digest))
        if member is None:
            raise NotFoundError(f"{self.where} has no blob {digest}", path=str(self.path))
        return member

    def _read_range(self, start: int, size: int, offset: int, length: int | None) -> Generator[bytes, None, None]:
        if offset < 0 or offset > size:
            raise ValueError(f"offset {offset} is outside a blob of {size} bytes")
        end = size if length is None else min(size, offset + length)
        position = offset
        while position < end:
            piece = os.pread(self._fd, min(PIECE_BYTES, end - position), start + position)
            if not piece:
                raise UnsafeArchiveError(f"{self.where} is truncated: it ends inside a blob", entry=None)
            position += len(piece)
            yield piece

    def _scan(self) -> dict[str, _Member]:
        members: dict[str, _Member] = {}
        last = ""
        with open(self._fd, "rb", closefd=False) as raw:
            try:
                tar = tarfile.open(fileobj=raw, mode="r:")  # noqa: SIM115 - closed below
            except _TAR_ERRORS as exc:
                raise UnsafeArchiveError(f"{self.where} is not a tar archive: {_reason(exc)}", entry=None) from None
            with tar:
                while True:
                    try:
                        info = tar.next()
                    except _TAR_ERRORS as exc:
                        raise UnsafeArchiveError(
                            f"{self.where} is corrupt after member '{last}': {_reason(exc)}", entry=last
                        ) from None
                    if info is None:
                        break
                    last = info.name
                    self._accept(info, members)
                end = tar.offset
        self._check_end(end, last)
        return members

    def _accept(self, info: tarfile.TarInfo, members: dict[str, _Member]) -> None:
        name = _clean_name(info.name)
        if info.isdir():
            if name not in (BLOBS_DIR, "") and not (name.startswith(BLOBS_DIR + "/") and name.count("/") == 1):
                raise UnsafeArchiveError(f"{self.where}: unexpected directory {info.name}", entry=info.name)
            return
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            kind = "link" if info.issym() or info.islnk() else "not a regular file"
            raise UnsafeArchiveError(f"{self.where}: refused member {info.name} ({kind})", entry=info.name)
        if info.offset_data + info.size > self._size:
            raise UnsafeArchiveError(
                f"{self.where} is truncated: member {info.name} needs {info.size} bytes, the file ends "
                f"{self._size - info.offset_data} bytes into it", entry=info.name,
            )
        if name in _IGNORED_EXTRAS:
            logger.debug("%s: ignoring %s", self.where, name)
            return
        is_blob = digest_of_blob_name(name) is not None
        if not is_blob and name not in (OCI_LAYOUT_FILE, INDEX_FILE):
            raise UnsafeArchiveError(
                f"{self.where}: unexpected member {info.name}: an OCI archive holds only oci-layout, index.json "
                "and blobs/<algorithm>/<hex>", entry=info.name,
            )
        previous = members.get(name)
        if previous is None:
            members[name] = _Member(info.offset_data, info.size)
            return
        if previous.size != info.size or (
            not is_blob and self._pread_all(previous) != os.pread(self._fd, info.size, info.offset_data)
        ):
            raise UnsafeArchiveError(f"{self.where}: duplicate member {info.name} with different content",
                                     entry=info.name)
        # The last copy is the one read (tar semantics); check_duplicates hashes every copy of a blob.
        members[name] = _Member(info.offset_data, info.size, [*previous.copies, previous.offset])

    def _check_end(self, end: int, last: str) -> None:
        """After the last member: a zero block (the end-of-archive marker), never other bytes or nothing at all."""
        tail = os.pread(self._fd, BLOCK_SIZE, end)
        if not tail:
            raise UnsafeArchiveError(
                f"{self.where} is truncated: it ends after member '{last}' without the end-of-archive blocks",
                entry=last,
            )
        if len(tail) < BLOCK_SIZE:  # Go's reader wants one whole zero block (the second may be missing)
            raise UnsafeArchiveError(f"{self.where} is truncated: it ends inside a tar block after member '{last}'",
                                     entry=last)
        if tail != _ZERO_BLOCK:
            raise UnsafeArchiveError(f"{self.where} is corrupt: a damaged tar header after member '{last}'",
                                     entry=last)

    def _pread_all(self, member: _Member) -> bytes:
        return os.pread(self._fd, member.size, member.offset)

    def _read_small(self, name: str, limit: int) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise ModelKitError(f"{self.where} is not an OCI archive: it has no {name}")
        if member.size > limit:
            raise UnsafeArchiveError(f"{self.where}: {name} is {member.size} bytes, more than the {limit} allowed",
                                     entry=name)
        return self._pread_all(member)

    def _read_index(self) -> list[Descriptor]:
        parse_oci_layout(self._read_small(OCI_LAYOUT_FILE, MAX_LAYOUT_FILE_BYTES), self.where)
        return parse_index(self._read_small(INDEX_FILE, MAX_INDEX_BYTES), self.where)


def _directory_message(path: Path) -> str:
    """What to say when an archive path is a directory: whether it is an OCI layout (``oci:DIR`` reads it)."""
    if (path / OCI_LAYOUT_FILE).is_file():
        return (f"cannot read {path} as an OCI archive: it is a directory holding an OCI layout; write oci:{path} "
                "to read it as one")
    return (f"cannot read {path} as an OCI archive: it is a directory but not an OCI layout (no oci-layout file); "
            "name an OCI archive file, or oci:DIR for a layout directory")


def _file_entry(name: str, size: int) -> TarEntry:
    return TarEntry(name, Path(), False, _FILE_MODE, size)


def _clean_name(name: str) -> str:
    """The member name without a leading ``./`` or trailing ``/``; refuses names that could escape a directory."""
    text = name
    while text.startswith("./"):
        text = text[2:]
    text = text.rstrip("/")
    if name.startswith("/") or "\x00" in name or ".." in text.split("/") or "\\" in text:
        raise UnsafeArchiveError(f"illegal member name {name!r} in archive", entry=name)
    return "" if text == "." else text


def _check_digest(where: str, digest: Digest, data: bytes) -> None:
    actual = hashlib.new(digest.algorithm, data).hexdigest()
    if actual != digest.hex:
        raise DigestMismatchError(
            f"{where}: blob {digest} is corrupt: its bytes hash to {digest.algorithm}:{actual}",
            expected=str(digest), actual=f"{digest.algorithm}:{actual}",
        )


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
