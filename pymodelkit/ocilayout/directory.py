"""An OCI image layout in a directory (skopeo's ``oci:``): reading blobs and the index, adding blobs and names
(spec ``spec/transport.md`` §2).

Blobs are written beside their final name, hashed as written, checked against their descriptor and renamed into
``blobs/<algorithm>/<hex>``; ``index.json`` is replaced whole (temp then rename), after every blob it names. Adding
a manifest under a name another entry has moves the name, as a tag moves. Blob files are opened with
``O_NOFOLLOW``: a layout whose blobs are symlinks is refused.

A writer remembers what it made — the directories and ``oci-layout`` of :meth:`LayoutDirectory.create`, each blob
file that was not there before — and :meth:`LayoutDirectory.discard` removes exactly that: a failed copy into a new
layout leaves no directory, one into an existing layout leaves it as it was (its ``index.json`` is only written at
the end). An operating-system error while writing a blob names the blob's file, never its temp file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path

from pymodelkit._atomic import fsync_dir, named_os_error, write_atomic
from pymodelkit.errors import DigestMismatchError, ModelKitError, NotFoundError, UnsafeArchiveError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.ocilayout.layout import (
    INDEX_FILE,
    MAX_INDEX_BYTES,
    MAX_LAYOUT_FILE_BYTES,
    OCI_LAYOUT_BYTES,
    OCI_LAYOUT_FILE,
    blob_member_name,
    index_bytes,
    parse_index,
    parse_oci_layout,
    ref_name_of,
)

__all__ = ["LayoutDirectory"]

PIECE_BYTES = 1 << 20
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class LayoutDirectory:
    """An OCI layout directory at ``path``. Reading needs an existing layout; :meth:`create` makes one.

    Thread-safe for reading and for adding blobs; :meth:`add_manifests` must not run concurrently with itself.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.where = f"layout {self.path}"
        self._made: list[Path] = []  # directories and files this object created, in order (see discard)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> LayoutDirectory:
        """Open the layout at ``path``, creating the directory, ``oci-layout`` and ``blobs/sha256`` if missing.

        Raises:
            ModelKitError: ``path`` exists and is a layout of an unsupported version, or is not a directory.
        """
        layout = cls(path)
        if layout.path.exists() and not layout.path.is_dir():
            raise ModelKitError(f"cannot write oci:{layout.path}: it is not a directory")
        try:
            layout._make_dirs(layout.path / "blobs" / "sha256")
            marker = layout.path / OCI_LAYOUT_FILE
            if marker.exists():
                parse_oci_layout(layout._read_small(OCI_LAYOUT_FILE, MAX_LAYOUT_FILE_BYTES), layout.where)
            else:
                write_atomic(marker, OCI_LAYOUT_BYTES, mode=_FILE_MODE)
                layout._made.append(marker)
        except BaseException:
            layout.discard()
            raise
        return layout

    def discard(self) -> None:
        """Remove what this object wrote: the blob files it added, then the ``oci-layout`` file and the directories
        :meth:`create` made (a directory only while empty). Call it after a failed copy, when no write is running;
        a layout that existed keeps everything it had. Errors removing are ignored (the copy's error matters)."""
        with self._lock:
            made, self._made = self._made, []
        for path in reversed(made):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()

    # ----- reading ---------------------------------------------------------------------------------------------

    def read_index(self) -> list[Descriptor]:
        """The manifests of ``index.json``, after checking ``oci-layout``.

        Raises:
            NotFoundError: ``path`` is not an OCI layout (no ``oci-layout``). ModelKitError: a malformed file.
        """
        if not (self.path / OCI_LAYOUT_FILE).is_file():
            raise NotFoundError(f"{self.where} is not an OCI layout: it has no oci-layout file", path=str(self.path))
        parse_oci_layout(self._read_small(OCI_LAYOUT_FILE, MAX_LAYOUT_FILE_BYTES), self.where)
        if not (self.path / INDEX_FILE).exists():
            return []
        return parse_index(self._read_small(INDEX_FILE, MAX_INDEX_BYTES), self.where)

    def blob_size(self, digest: Digest) -> int | None:
        """The size of the blob file, or ``None`` when the layout has no such blob (or it is not a regular file)."""
        try:
            st = os.lstat(self.path / blob_member_name(digest))
        except FileNotFoundError:
            return None
        return st.st_size if _is_regular(st.st_mode) else None

    def open_blob(self, digest: Digest, offset: int = 0, length: int | None = None) -> Generator[bytes, None, None]:
        """The blob's bytes from ``offset`` (``length`` of them, default: to its end) in pieces of at most 1 MiB.

        Raises:
            NotFoundError: no such blob. UnsafeArchiveError: the blob is a symlink.
        """
        if self.blob_size(digest) is None:
            self._open(digest)  # raises the precise error: missing, or a symlink
        return self._iter_blob(digest, offset, length)

    def read_blob(self, digest: Digest, *, max_bytes: int) -> bytes:
        """A small blob whole, verified against its digest.

        Raises:
            NotFoundError: no such blob. UnsafeArchiveError: larger than ``max_bytes`` or a symlink.
            DigestMismatchError: the bytes hash to something else.
        """
        fd = self._open(digest)
        with open(fd, "rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UnsafeArchiveError(f"{self.where}: blob {digest} is larger than {max_bytes} bytes",
                                     entry=blob_member_name(digest))
        actual = hashlib.new(digest.algorithm, data).hexdigest()
        if actual != digest.hex:
            raise DigestMismatchError(
                f"{self.where}: blob {digest} is corrupt: its bytes hash to {digest.algorithm}:{actual}",
                expected=str(digest), actual=f"{digest.algorithm}:{actual}",
            )
        return data

    # ----- writing ---------------------------------------------------------------------------------------------

    def add_blob(self, descriptor: Descriptor, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write the blob ``descriptor`` names from ``chunks``; a blob already present (same size) is kept.

        Raises:
            DigestMismatchError: the bytes differ in size or digest from ``descriptor``; nothing is left behind.
        """
        digest = descriptor.digest
        if self.blob_size(digest) == descriptor.size:
            return
        target = self.path / blob_member_name(digest)
        existed = os.path.lexists(target)
        temp = target.with_name(f".{digest.hex}.{secrets.token_hex(4)}.tmp")
        hasher = hashlib.new(digest.algorithm)
        written = 0
        try:
            self._make_dirs(target.parent)
            with open(temp, "xb", buffering=PIECE_BYTES) as handle:
                for chunk in chunks:
                    written += len(chunk)
                    if written > descriptor.size:
                        raise DigestMismatchError(
                            f"blob {digest} is longer than the {descriptor.size} bytes its descriptor says",
                            expected=str(descriptor.size), actual=f"more than {descriptor.size}",
                        )
                    hasher.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if written != descriptor.size:
                raise DigestMismatchError(f"blob {digest} ended at {written} of its {descriptor.size} bytes",
                                          expected=str(descriptor.size), actual=str(written))
            if hasher.hexdigest() != digest.hex:
                raise DigestMismatchError(
                    f"blob digest mismatch: expected {digest}, got {digest.algorithm}:{hasher.hexdigest()}",
                    expected=str(digest), actual=f"{digest.algorithm}:{hasher.hexdigest()}",
                )
            os.chmod(temp, _FILE_MODE)
            os.replace(temp, target)
            if not existed:  # a blob that was there (of another size) is replaced, not removed by discard
                with self._lock:
                    self._made.append(target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise named_os_error(exc, target, [temp]) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def add_manifests(self, manifests: Sequence[Descriptor]) -> None:
        """Add ``manifests`` (with their name annotations) to ``index.json``: a name another entry has moves to the
        new entry, an identical entry is not repeated.

        Raises:
            NotFoundError: a manifest's blob is not in the layout.
        """
        for descriptor in manifests:
            if self.blob_size(descriptor.digest) != descriptor.size:
                raise NotFoundError(f"{self.where}: manifest {descriptor.digest} is not among its blobs")
        existing = self.read_index() if (self.path / INDEX_FILE).exists() else []
        names = {ref_name_of(d) for d in manifests} - {None}
        kept = [d for d in existing if ref_name_of(d) not in names and d not in manifests]
        write_atomic(self.path / INDEX_FILE, index_bytes([*kept, *manifests]), mode=_FILE_MODE)

    # ----- internals -------------------------------------------------------------------------------------------

    def _make_dirs(self, directory: Path) -> None:
        """``mkdir -p directory``, remembering each directory made (outermost first) for :meth:`discard`."""
        missing: list[Path] = []
        for path in (directory, *directory.parents):
            if path.is_dir():
                break
            missing.append(path)
        for path in reversed(missing):
            try:
                path.mkdir(mode=_DIR_MODE)
            except FileExistsError:
                if not path.is_dir():
                    raise
                continue  # made by someone else meanwhile: not ours to remove
            with self._lock:
                self._made.append(path)

    def _open(self, digest: Digest) -> int:
        path = self.path / blob_member_name(digest)
        try:
            return os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            raise NotFoundError(f"{self.where} has no blob {digest}", path=str(path)) from None
        except OSError as exc:
            if os.path.islink(path):
                raise UnsafeArchiveError(f"{self.where}: blob {digest} is a symlink", entry=str(path)) from None
            raise exc

    def _read_small(self, name: str, limit: int) -> bytes:
        path = self.path / name
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            raise ModelKitError(f"{self.where} is not an OCI layout: it has no {name}") from None
        with open(fd, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise UnsafeArchiveError(f"{self.where}: {name} is larger than {limit} bytes", entry=name)
        return data

    def _iter_blob(self, digest: Digest, offset: int, length: int | None) -> Generator[bytes, None, None]:
        fd = self._open(digest)  # opened on first use, so a stream that is never read holds no descriptor
        try:
            size = os.fstat(fd).st_size
            end = size if length is None else min(size, offset + length)
            position = offset
            while position < end:
                piece = os.pread(fd, min(PIECE_BYTES, end - position), position)
                if not piece:
                    raise UnsafeArchiveError(f"{self.where}: a blob shrank while being read", entry=None)
                position += len(piece)
                yield piece
        finally:
            os.close(fd)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)
