"""The blob writer: bytes go to ``storage/ingest/``, are hashed as written, and appear in ``blobs/`` only on commit.

``commit`` fsyncs the file, checks the size and digest it is given, sets the mode, renames the file into
``blobs/sha256/<hex>`` and fsyncs that directory (STYLE rule 9, after containerd's ``Writer.Commit``). A blob that is
already present counts as success and our copy is discarded. While a writer is open it holds an ``flock`` on its
ingest file, so ``fsck``/``gc`` in any process can tell a live ingest from a stray one left by a crash.

Writing a large new file is the slow part of pack and pull, and an ``fsync`` at the end of a multi-GiB write waits
for all of it. So, on Linux, every :data:`WRITEBACK_BYTES` written the writer asks the kernel to start writing those
pages out (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait): the disk works while we hash and read,
and the final ``fsync`` finds little left to do (measured: 2 GiB written and fsynced at 0.9-1.1 GB/s plain, 1.2-2.2
GB/s with early writeback). ``fsync`` stays the durability guarantee; early writeback only moves work earlier.

A writer told the blob will be large (``size_hint`` of at least :data:`DIRECT_MIN_BYTES`) bypasses the page cache
instead, unless ``PYMODELKIT_DIRECT_IO`` is off: its bytes go through a :class:`~pymodelkit.store.directio.DirectSink`
(``O_DIRECT`` writes of aligned staging buffers on a thread of the sink's). On the 2-vCPU VM of issue #6 a new GiB
written through the page cache cost 0.4-1.9 s of system CPU (each new cache page faults: the VM gives freed memory
back to its host), taken from SHA-256 and the socket reads, which held pack of an uncompressed layer to 0.57-0.9x of
``hashlib.sha256`` alone and pull to about 0.5x of ``curl -o``; written with ``O_DIRECT`` the same GiB went at
1.35-1.44 GB/s for 0.06 s of system CPU. Nothing is left dirty, so early writeback has nothing to do, and ``commit``'s
``fsync`` only writes the last few KiB and the metadata. The price: reading the blob back comes from the disk (650-750
MB/s, not ~950 from the cache). Where ``O_DIRECT`` cannot be used the writer silently writes through the page cache
as above. Measured with it (1 GiB; two sets of 3 runs, interleaved with ``PYMODELKIT_DIRECT_IO=0``, on the same
machine while others used it): pack of an uncompressed layer 382-955 -> 611-1006 MB/s (medians 443 and 748 -> 777
and 925; ``hashlib.sha256`` alone 993-1081) and 0.9-2.2 -> 0.24-0.39 s of system CPU; pull of one layer 291-668 ->
464-614 MB/s (``curl -o`` 489-1071) and 0.5-2.0 -> 0.25-0.36 s of system CPU.

A writer made with ``hashing=False`` does not hash: its caller hashes the same bytes (on another thread, overlapping
the write) and gives the digest to ``commit`` as ``expected_digest``, which is then taken as the digest. A direct-I/O
writer that hashes does so on a thread of its sink's (``DirectSink(observe=...)``), over the staging buffers, while
they are written: ``hash_when_direct=True`` asks for that even of a ``hashing=False`` writer, whose caller then
hashes only when :attr:`BlobWriter.hashing` is false. :meth:`BlobWriter.write_from` lets a reader (a socket's
``recv_into``) fill the staging buffers directly: a pull's bytes are then copied once, by the kernel.

A verified writer can give its file descriptor back (:meth:`BlobWriter.park`) and still be committed or aborted
later: ``pull`` verifies every blob of a ModelKit before it commits any, and a ModelKit of more layers than the
process may open files (a soft limit of 1024 on many systems) would otherwise fail with ``EMFILE``. A parked file is
renamed to ``<name>.held-<hold>`` and kept live for ``fsck``/``gc`` by one flocked *hold* file per ingest directory
and process (``pymodelkit_hold-<hold>``, :mod:`pymodelkit.store.holds`), so a pull holds O(concurrency) descriptors,
not one per blob (measured: 11 above the baseline for 300 and for 1,500 layers at concurrency 5, against 306 for 300
before). Its commit reopens the file by path (``O_NOFOLLOW``) and checks it is the very file that was verified,
unchanged: same device, inode, size, mtime and ctime (ctime cannot be set by an unprivileged process; a write or
rename changes it, to the file system's timestamp granularity). That relies on the ingest directory and its files
being writable by the store's owner only (directory ``0755``, files ``0600``, as they are made here): the store's
owner, who can write ``blobs/`` directly anyway, is not defended against. The rename into ``blobs/`` was always by
path, so a held descriptor never guarded more than that. A commit of a blob already in the store does not reopen
the file: it is removed. A park that fails or is interrupted (``KeyboardInterrupt`` included) leaves no file,
descriptor or hold count behind: the writer is aborted.

A writer used in a process forked from the one that made it closes its descriptors but never removes the parent's
files (nor releases its holds).

(Over 400 lines: the writer's states - writing, direct, verified, parked - share one set of bookkeeping.)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from pymodelkit import settings
from pymodelkit._atomic import fsync_dir, named_os_error
from pymodelkit.errors import DigestMismatchError, StoreError
from pymodelkit.oci.digest import SHA256, Digest
from pymodelkit.store.directio import DirectSink, ReadInto
from pymodelkit.store.holds import INGEST_PREFIX, Hold, create_locked, held_name, is_ingest_live
from pymodelkit.store.layout import DIR_MODE, blob_path, ingest_dir

__all__ = ["DIRECT_MIN_BYTES", "INGEST_PREFIX", "WRITEBACK_BYTES", "BlobWriter", "is_ingest_live", "start_writeback"]

logger = logging.getLogger(__name__)

WRITEBACK_BYTES = 32 << 20  # start writeback of each 32 MiB written
DIRECT_MIN_BYTES = 32 << 20  # a blob expected to be this large is written with O_DIRECT (below, the cache costs little)
_SYNC_FILE_RANGE_WRITE = 2
_SCRATCH_BYTES = 1 << 20  # write_from's reads without a direct sink


class BlobWriter:
    """Writes one blob under ``storage/ingest/``. Not thread-safe: one writer per thread.

    Use it as a context manager: leaving the block without :meth:`commit` (or with an exception) aborts the write.

    ``size_hint``: the size the blob is expected to have. At :data:`DIRECT_MIN_BYTES` or more the bytes bypass the
    page cache (see the module docstring) unless ``PYMODELKIT_DIRECT_IO`` is off; it is only a hint (``commit`` checks
    the size it is given). ``hash_when_direct``: hash even with ``hashing=False`` when the bytes bypass the page cache
    (then off the caller's thread); :attr:`hashing` tells.
    """

    def __init__(
        self, storage: Path, *, hashing: bool = True, size_hint: int | None = None, hash_when_direct: bool = False
    ) -> None:
        direct = size_hint is not None and size_hint >= DIRECT_MIN_BYTES and settings.direct_io()
        self._storage = storage
        self._pid = os.getpid()  # a forked child never removes the files of this process
        self._sink: DirectSink | None = None
        self._hold: Hold | None = None  # the hold keeping the parked file live (park() to commit or abort)
        self._parked: _Identity | None = None  # set by park(): the fd is closed; the file's identity when parked
        ingest = ingest_dir(storage)
        ingest.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.path, fd = create_locked(ingest, lambda: f"{INGEST_PREFIX}{secrets.token_hex(8)}")
        self._fd: int | None = fd
        self._hasher = hashlib.sha256() if hashing or (direct and hash_when_direct) else None
        if direct:
            try:
                self._sink = DirectSink.open(
                    self._fd,
                    writeback=functools.partial(start_writeback, self._fd),
                    observe=None if self._hasher is None else self._hasher.update,
                )
            except BaseException:
                self._discard()
                raise
            if self._sink is None and not hashing:
                self._hasher = None  # no direct I/O after all: the caller hashes
        self._hash_inline = self._hasher is not None and self._sink is None  # else the sink's thread hashes
        self._scratch: bytearray | None = None  # write_from's buffer without a sink
        self._size = 0
        self._flushed = 0  # bytes whose writeback has been started
        self._done = False
        self._verified: Digest | None = None  # set by verify(): fsynced, size and digest checked
        self.was_present = False  # set by commit: the blob was in the store already, our copy was discarded

    @property
    def size(self) -> int:
        """Bytes written so far (every byte :meth:`write` and :meth:`write_from` took, also those still in a
        direct-I/O buffer)."""
        return self._size

    @property
    def hashing(self) -> bool:
        """Whether the writer hashes what it is given (else ``commit`` takes the caller's ``expected_digest``)."""
        return self._hasher is not None

    @property
    def staged(self) -> bool:
        """Whether the bytes go through a direct sink's staging buffers (which :meth:`write_from` reads into); true
        also after the sink fell back to the page cache on ``EINVAL``, until the bytes are verified."""
        return self._sink is not None

    @property
    def direct_io(self) -> bool:
        """Whether the writer is writing with ``O_DIRECT`` (through a :class:`DirectSink`), bypassing the page cache."""
        return self._sink is not None and self._sink.direct

    @property
    def parked(self) -> bool:
        """Whether :meth:`park` gave the file descriptor back (the writer is verified, not yet committed or
        aborted)."""
        return self._parked is not None and not self._done

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the blob. Raises :class:`StoreError` after commit, abort or verify, and the OSError of a
        failed write (with direct I/O, possibly of bytes an earlier call took): then abort."""
        fd = self._require_writable()
        view = memoryview(data).cast("B")
        if self._hash_inline:
            assert self._hasher is not None
            self._hasher.update(view)
        try:
            if self._sink is not None:
                self._sink.write(view)  # raises what a background write failed with (the caller aborts)
                self._size += len(view)
                return
            while view:
                written = os.write(fd, view)
                view = view[written:]
                self._size += written
        except OSError as exc:
            raise named_os_error(exc, self.path) from None
        if self._size - self._flushed >= WRITEBACK_BYTES:
            start_writeback(fd, self._flushed, self._size - self._flushed)
            self._flushed = self._size

    def write_from(self, readinto: ReadInto, limit: int) -> int:
        """Append up to ``limit`` bytes that ``readinto`` (a ``socket.recv_into``: it fills a prefix of the view it is
        given and returns the count, 0 at the end of its stream) reads, calling it until ``limit`` or the end. With
        direct I/O they are read straight into the staging buffers. Returns the bytes taken (less than ``limit``: the
        stream ended). What ``readinto`` raises is raised; the bytes taken before it stay written (:attr:`size`).
        Raises as :meth:`write`."""
        self._require_writable()
        taken = 0
        while taken < limit:
            if self._sink is not None:
                try:
                    self._sink.check()  # what a background write failed with
                except OSError as exc:
                    raise named_os_error(exc, self.path) from None
                count = self._sink.fill(readinto, limit - taken)
                self._size += count
            else:
                if self._scratch is None:
                    self._scratch = bytearray(_SCRATCH_BYTES)
                with memoryview(self._scratch) as scratch, scratch[: min(limit - taken, len(scratch))] as target:
                    count = readinto(target)
                    if count < 0 or count > len(target):
                        raise ValueError(f"readinto returned {count} for a buffer of {len(target)} bytes")
                    self.write(target[:count])
            if count == 0:
                break
            taken += count
        return taken

    def verify(self, *, expected_digest: Digest | None = None, expected_size: int | None = None) -> Digest:
        """Make the bytes durable (fsync) and check their size and digest, without putting the blob in the store:
        :meth:`commit` does that, later (``pull`` verifies every blob before it commits any). Returns the digest.

        A writer that does not hash (``hashing=False``, and :attr:`hashing` false: no ``hash_when_direct`` sink) takes
        ``expected_digest`` (required) as the digest of what was written.
        No more bytes may be written once it has verified. Called again, it checks the expected values against what
        was verified (without touching the file: it may be parked).

        Raises:
            DigestMismatchError: the size or digest differs from the expected one; the ingest file is removed.
            StoreError: the writer was already committed or aborted.
        """
        self._require_live()
        if self._verified is not None:
            self._check_expected(self._verified, expected_digest, expected_size)
            return self._verified
        fd = self._fd
        assert fd is not None  # only a verified writer gives its fd back
        if self._hasher is None and expected_digest is None:
            self.abort()
            raise StoreError("blob writer without hashing: commit needs the digest of the bytes written")
        try:
            if self._sink is not None:
                sink, self._sink = self._sink, None
                sink.finish()
            os.fsync(fd)
        except OSError as exc:
            self.abort()
            raise named_os_error(exc, self.path) from None
        except BaseException:
            self.abort()
            raise
        digest = Digest(SHA256, self._hasher.hexdigest()) if self._hasher is not None else expected_digest
        assert digest is not None
        self._check_expected(digest, expected_digest, expected_size)
        self._verified = digest
        return digest

    def park(self, *, expected_digest: Digest | None = None, expected_size: int | None = None) -> Digest:
        """Verify (unless :meth:`verify` already did), then close the ingest file: the writer holds no file
        descriptor until :meth:`commit` (which reopens the file, checks it is the one verified, and moves it into
        ``blobs/``) or :meth:`abort` (which removes it). Returns the digest. Parking a parked writer does nothing.

        Until then the file is kept live for ``fsck``/``gc`` by a hold file shared by every parked writer of the
        ingest directory in this process (one descriptor in all); :attr:`path` is the file's new name.

        Raises:
            DigestMismatchError: the size or digest differs from the expected one; the ingest file is removed.
            StoreError: the writer was already committed or aborted.
            OSError: renaming or closing the file failed; the ingest file is removed.
        """
        digest = self.verify(expected_digest=expected_digest, expected_size=expected_size)
        if self._parked is not None:
            return digest
        fd = self._fd
        assert fd is not None
        old = self.path
        new: Path | None = None
        opened: os.stat_result | None = None
        try:
            opened = os.fstat(fd)
            # The hold is taken before our own flock goes with the fd: the file is live all along.
            self._hold = Hold.acquire(old.parent)
            new = old.with_name(held_name(old.name, self._hold.token))
            os.rename(old, new)
            self.path = new
            self._parked = _identity(os.fstat(fd))  # after the rename, which changes ctime
            self._fd = None
            os.close(fd)
        except BaseException as exc:
            self._unpark(fd, opened, old, new)
            if isinstance(exc, OSError):
                raise named_os_error(exc, old) from None
            raise
        return digest

    def _unpark(self, fd: int, opened: os.stat_result | None, old: Path, new: Path | None) -> None:
        """Abort after a park that failed or was interrupted anywhere: take the descriptor back if it is still open on
        our file (not closed already, nor reused since), remove the file under either name, give the hold back."""
        self._parked = None
        if self._fd is None and opened is not None:
            with contextlib.suppress(OSError):
                if _same_file(os.fstat(fd), opened):
                    self._fd = fd
        self._done = True
        if os.getpid() == self._pid:
            for name in (old, new):
                if name is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name)
        self._close()

    def commit(
        self,
        *,
        expected_digest: Digest | None = None,
        expected_size: int | None = None,
        mode: int = 0o600,
    ) -> tuple[Digest, int]:
        """Verify (unless :meth:`verify` already did), then move the blob into ``blobs/sha256/<hex>``. Returns its
        digest and size.

        A parked writer's file is reopened by path first and must be the file that was verified, unchanged (see the
        module docstring); the bytes were fsynced by the verification, before this rename. When the blob is in the
        store already, the ingest file is removed without being opened.

        Raises:
            DigestMismatchError: the size or digest differs from the expected one; the ingest file is removed.
            StoreError: the writer was already committed or aborted, or its parked file was changed or removed since
                it was verified (the ingest file is then removed).
        """
        digest = self.verify(expected_digest=expected_digest, expected_size=expected_size)
        target = blob_path(self._storage, digest)
        try:
            if target.exists():  # our copy is not needed: a parked one is not even opened again
                self.was_present = True
                self._discard()
            else:
                fd = self._reopen() if self._fd is None else self._fd
                os.fchmod(fd, mode)
                target.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.replace(self.path, target)
                self._close()
                fsync_dir(target.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        logger.debug("committed blob %s (%d bytes)", digest, self._size)
        return digest, self._size

    def abort(self) -> None:
        """Drop the ingest file. Safe to call more than once, and after commit (then it does nothing)."""
        if self._done:
            return
        self._done = True
        self._discard()

    def __del__(self) -> None:
        # A writer dropped without commit or abort: end its direct-I/O thread (which would wait forever) and close the
        # file; the ingest file, no longer locked, is a stray for gc.
        with contextlib.suppress(Exception):
            if not self._done:
                self._close()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    def _require_live(self) -> None:
        if self._done:
            raise StoreError("blob writer is closed: it was committed or aborted")

    def _require_writable(self) -> int:
        self._require_live()
        if self._verified is not None:
            raise StoreError("blob writer is verified: no more bytes can be written")
        assert self._fd is not None  # only a verified writer gives its fd back
        return self._fd

    def _check_expected(self, digest: Digest, expected_digest: Digest | None, expected_size: int | None) -> None:
        """Raise DigestMismatchError (dropping the ingest) when the size or digest is not the expected one."""
        if expected_size is not None and expected_size != self._size:
            self.abort()
            raise DigestMismatchError(
                f"blob size mismatch: expected {expected_size} bytes, wrote {self._size}",
                expected=expected_size,
                actual=self._size,
            )
        if expected_digest is not None and expected_digest != digest:
            self.abort()
            raise DigestMismatchError(
                f"blob digest mismatch: expected {expected_digest}, got {digest}",
                expected=str(expected_digest),
                actual=str(digest),
            )

    def _reopen(self) -> int:
        """Open the parked file again (read-only: it is only chmod-ed and renamed) and check it is the one that was
        verified, unchanged. Raises StoreError (the caller aborts) when it is not, or is gone."""
        parked = self._parked
        assert parked is not None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise StoreError(f"parked ingest file {self.path} cannot be opened again: {exc.strerror}") from None
        self._fd = fd
        if _identity(os.fstat(fd)) != parked:
            raise StoreError(f"parked ingest file {self.path} was changed after it was verified")
        return fd

    def _discard(self) -> None:
        self._drop_sink()
        if os.getpid() == self._pid:  # in a forked child the file is the parent's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._close()

    def _drop_sink(self) -> None:
        """Stop the sink's thread (before the fd is closed: it writes to it) and free its buffers."""
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.close()

    def _close(self) -> None:
        self._drop_sink()
        try:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)
        finally:
            self._release_hold()

    def _release_hold(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.release()  # a no-op in a forked child: the hold is the parent's


_Identity = tuple[int, int, int, int, int]


def _identity(st: os.stat_result) -> _Identity:
    """What tells a file from any other and from itself changed: device, inode, size, mtime and ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _same_file(st: os.stat_result, other: os.stat_result) -> bool:
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` from ``offset`` to disk, without waiting
    (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``); elsewhere, or if the call fails, do nothing."""
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


@functools.lru_cache(maxsize=1)
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function
