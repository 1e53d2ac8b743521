"""A direct-I/O sink for one blob file: bytes are copied into page-aligned staging buffers and each full buffer is
written with ``O_DIRECT`` on a background thread, bypassing the page cache.

Why (issue #6, hot path; measured on a 2-vCPU VM, ext4 on virtio): writing a new 1 GiB file through the page cache
costs 0.4-1.9 s of system CPU, because every new page-cache page faults (the VM hands freed memory back to its
host); on two cores that competes with SHA-256 and the socket reads. The same GiB written with ``O_DIRECT`` from
aligned 4 MiB buffers went at 1.35-1.44 GB/s for 0.06 s of system CPU (the sink's own 1 MiB x 4 buffers: as fast),
and leaves no dirty pages for the final ``fsync``. Reading the blob back afterwards comes from the disk (650-750
MB/s instead of ~950 from the cache): acceptable.

How. The sink owns :data:`BUFFER_COUNT` anonymous ``mmap`` buffers of :data:`BUFFER_BYTES` (page-aligned, as
``O_DIRECT`` requires). :meth:`DirectSink.write` copies into the current buffer; a full one is handed to the sink's
thread, which writes it (``os.pwrite`` releases the GIL) while the caller fills the next: the caller, which may also
be reading a socket or feeding a hasher, does not wait for the disk unless every buffer is in flight. Every full
buffer is a multiple of :data:`ALIGNMENT` at an aligned offset; :meth:`DirectSink.finish` writes the aligned part of
the last buffer directly and the tail after clearing ``O_DIRECT`` (Linux lets ``fcntl(F_SETFL)`` toggle it on an
open file).

A sink may also be given an ``observe`` callable (the blob writer passes its SHA-256's ``update``): every full buffer
goes to a second thread, which calls it on the buffer, in order, while the first writes the same buffer; a buffer is
reused once both are done with it. :meth:`DirectSink.fill` lets a reader (``socket.recv_into``) put its bytes
straight into the current staging buffer, so a download's bytes are copied once, by the kernel, and then only hashed
and written (issue #6: the copy into the staging buffer, under the GIL, was the pull's largest cost after SHA-256).

An error of the thread's write (``ENOSPC``, ``EIO``) is the very ``OSError`` ``os.write`` would have raised; it is
raised by the next :meth:`~DirectSink.write`, :meth:`~DirectSink.check` or :meth:`~DirectSink.finish` (so is what
``observe`` raised; :meth:`~DirectSink.fill` does not raise either). Where ``O_DIRECT`` cannot be set (no
such flag: macOS, Windows; a filesystem that refuses it) :meth:`DirectSink.open` returns ``None`` and the caller
writes through the page cache; when a direct write fails with ``EINVAL`` (an alignment the device or file system
does not take; a refused write writes nothing) the sink clears the flag and carries on with buffered writes, calling
its ``writeback`` hook after each buffer. Both are logged at debug level only. Spec: none (an implementation
matter).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import queue
import threading
from collections.abc import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ALIGNMENT", "BUFFER_BYTES", "BUFFER_COUNT", "DirectSink", "Observer", "ReadInto", "set_direct"]

logger = logging.getLogger(__name__)

ALIGNMENT = 4096  # offset, length and memory alignment of every direct write (covers 512 and 4096-byte sectors)
# Chosen by measurement (1 GiB pack and pull on the 2-vCPU VM; 1, 2, 4, 8 MiB x 2, 2 MiB x 3-4, 1 MiB x 3-4,
# 512 KiB x 8): the disk takes 1-8 MiB direct writes at the same ~1.7 GB/s, so what counts is how many buffers absorb
# the jitter of a loaded machine; 1 MiB x 4 packed as fast as 4 MiB x 2 (and faster than 2 MiB x 2) for half the
# memory, and pulled as fast as any. 4 MiB a writer at most (mapped as needed): a pull of 5 layers of 200 MiB at once
# peaked at 74-75 MiB RSS, against 54-55 through the page cache.
BUFFER_BYTES = 1 << 20
BUFFER_COUNT = 4  # one being filled, one being written, two ready
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)

Writeback = Callable[[int, int], None]  # (offset, length) just written through the page cache
Observer = Callable[[memoryview], None]  # given each buffer's bytes, in order (a hasher's update)
ReadInto = Callable[[memoryview], int]  # fills (a prefix of) the view it is given; returns the count, 0 at the end


def set_direct(fd: int, enable: bool) -> None:
    """Set or clear ``O_DIRECT`` on the open file ``fd``. Raises OSError when it cannot be done (also where the
    platform has no ``O_DIRECT``)."""
    if fcntl is None or not _O_DIRECT:
        raise OSError(errno.EOPNOTSUPP, "O_DIRECT is not available on this platform")
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    wanted = flags | _O_DIRECT if enable else flags & ~_O_DIRECT
    if wanted != flags:
        fcntl.fcntl(fd, fcntl.F_SETFL, wanted)


class DirectSink:
    """Writes one file's bytes, from its offset ``start`` on, with ``O_DIRECT`` from staging buffers on a thread of
    its own (and gives them to ``observe`` on a second one). Not thread-safe: one caller. Make it with :meth:`open`;
    end it with :meth:`finish` (every byte is on the file, not yet fsynced) or :meth:`close` (drop: pending writes are
    skipped). Either way the threads are gone and the buffers unmapped afterwards."""

    def __init__(
        self,
        fd: int,
        *,
        start: int = 0,
        buffer_bytes: int = BUFFER_BYTES,
        buffers: int = BUFFER_COUNT,
        writeback: Writeback | None = None,
        observe: Observer | None = None,
    ) -> None:
        if buffer_bytes <= 0 or buffer_bytes % ALIGNMENT or buffers < 1 or start % ALIGNMENT:
            raise ValueError(f"direct I/O needs {ALIGNMENT}-byte aligned buffers and start, and at least one buffer")
        self._fd = fd
        self._size = buffer_bytes
        self._writeback = writeback
        self._observe = observe
        self._count = buffers
        self._maps: list[mmap.mmap] = []  # mapped as needed, up to ``buffers``: a disk that keeps up needs two
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[tuple[int, int, int] | None] = queue.SimpleQueue()
        self._seen: queue.SimpleQueue[tuple[int, int, int] | None] = queue.SimpleQueue()  # for the observer
        self._users: list[int] = [0] * buffers  # threads still using each submitted buffer (1 or 2)
        self._users_lock = threading.Lock()
        self._current: int | None = None  # index of the buffer being filled
        self._view: memoryview | None = None  # over that buffer
        self._fill = 0  # bytes in it
        self._offset = start  # file offset of the current buffer's first byte
        self._direct = True  # cleared when the first direct write fails with EINVAL, and for the tail
        self._proven = False  # a direct write succeeded (for the log: a later EINVAL still falls back)
        self._error: BaseException | None = None  # the thread's first failure, raised to the caller
        self._dropping = False  # close(): the thread skips what is left
        self._thread: threading.Thread | None = None  # started with the first full buffer
        self._observer: threading.Thread | None = None  # likewise, when there is ``observe``
        self._ended = False

    @classmethod
    def open(
        cls,
        fd: int,
        *,
        start: int = 0,
        buffer_bytes: int | None = None,
        buffers: int | None = None,
        writeback: Writeback | None = None,
        observe: Observer | None = None,
    ) -> DirectSink | None:
        """A sink for ``fd``, with ``O_DIRECT`` set on it; ``None`` (flag left clear) when the flag cannot be set.
        Buffers default to :data:`BUFFER_COUNT` of :data:`BUFFER_BYTES`. ``observe`` is given every byte, in order,
        on a thread of its own (see the module docstring)."""
        try:
            set_direct(fd, True)
        except OSError as exc:
            logger.debug("no direct I/O on fd %d (%s): writing through the page cache", fd, exc.strerror or exc)
            return None
        try:
            return cls(
                fd,
                start=start,
                buffer_bytes=BUFFER_BYTES if buffer_bytes is None else buffer_bytes,
                buffers=BUFFER_COUNT if buffers is None else buffers,
                writeback=writeback,
                observe=observe,
            )
        except BaseException:
            set_direct(fd, False)
            raise

    @property
    def direct(self) -> bool:
        """Whether the sink still writes with ``O_DIRECT`` (false after an ``EINVAL`` fallback or :meth:`finish`)."""
        return self._direct

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Take every byte of ``data`` (copied: the caller may reuse it on return). Blocks while every buffer is being
        written or observed. Raises what an earlier background write (an OSError) or ``observe`` failed with."""
        self._raise_error()
        if self._ended:
            raise ValueError("direct sink is finished or closed")
        view = memoryview(data).cast("B")
        while view:
            if self._view is None:
                self._current = self._take_buffer()
                self._view = memoryview(self._maps[self._current])
                self._fill = 0
            count = min(len(view), self._size - self._fill)
            self._view[self._fill : self._fill + count] = view[:count]
            self._fill += count
            view = view[count:]
            if self._fill == self._size:
                self._submit()
                self._raise_error()

    def fill(self, readinto: ReadInto, limit: int) -> int:
        """Call ``readinto`` once on the free part of the current staging buffer (at most ``limit`` bytes), so its bytes
        land there without a copy; returns the count it returned (0: the end of its stream; also, without calling
        it, for a ``limit`` of 0 or less). Those bytes are taken as
        :meth:`write` takes them. What ``readinto`` raises is raised, with nothing taken. A background write's failure
        is not raised here: :meth:`check` raises it (so that the caller can tell the two apart)."""
        if self._ended:
            raise ValueError("direct sink is finished or closed")
        if limit <= 0:
            return 0
        if self._view is None:
            self._current = self._take_buffer()
            self._view = memoryview(self._maps[self._current])
            self._fill = 0
        room = min(self._size - self._fill, limit)
        with self._view[self._fill : self._fill + room] as target:
            count = readinto(target)
        if count < 0 or count > room:
            raise ValueError(f"readinto returned {count} for a buffer of {room} bytes")
        self._fill += count
        if self._fill == self._size:
            self._submit()
        return count

    def check(self) -> None:
        """Raise what an earlier background write (an OSError) or ``observe`` failed with, if one did."""
        self._raise_error()

    def finish(self) -> None:
        """Write what is buffered (the tail with ``O_DIRECT`` cleared), wait for the threads, free the buffers, and
        leave ``O_DIRECT`` clear. Raises what a write (an OSError) or ``observe`` failed with (the sink is then
        closed)."""
        if self._ended:
            self._raise_error()
            return
        try:
            if self._view is not None and self._fill:
                self._submit()
            self._stop()
            self._raise_error()
            if self._direct:
                self._direct = False
                set_direct(self._fd, False)
        except BaseException:
            self.close()
            if self._direct:  # the fd is the caller's: leave it as it was before the sink
                self._direct = False
                with contextlib.suppress(OSError):
                    set_direct(self._fd, False)
            raise
        self._release()

    def close(self) -> None:
        """Drop the sink: buffered and pending bytes are not written (nor observed). Waits for its threads.
        Idempotent; never raises what a write failed with."""
        if self._thread is not None:
            self._dropping = True
            self._stop()
        self._release()

    def _take_buffer(self) -> int:
        """A free buffer's index; a new buffer while fewer than ``buffers`` exist and none is free."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            if len(self._maps) < self._count:
                self._maps.append(_anonymous_map(self._size))
                return len(self._maps) - 1
        return self._free.get()

    def _submit(self) -> None:
        assert self._current is not None and self._view is not None
        if self._thread is None:
            self._start_threads()
        self._view.release()
        item = (self._current, self._fill, self._offset)
        if self._observe is not None:
            self._users[self._current] = 2
            self._seen.put(item)
        self._work.put(item)
        self._offset += self._fill
        self._current, self._view, self._fill = None, None, 0

    def _start_threads(self) -> None:
        """Start the writer thread and, with ``observe``, the observer; each is kept only once it has started, so a
        failed start (no more threads) leaves nothing running and :meth:`close` has nothing to join."""
        writer = threading.Thread(target=self._run, name="pymodelkit-directio", daemon=True)
        writer.start()
        self._thread = writer
        if self._observe is not None:
            observer = threading.Thread(target=self._run_observer, name="pymodelkit-hash", daemon=True)
            try:
                observer.start()
            except BaseException:
                self._stop()
                raise
            self._observer = observer

    def _stop(self) -> None:
        if self._observer is not None:
            self._seen.put(None)
            self._observer.join()
            self._observer = None
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None

    def _done_with(self, index: int) -> None:
        """One thread is done with buffer ``index``: it is free once no thread uses it."""
        if self._observe is not None:
            with self._users_lock:
                self._users[index] -= 1
                if self._users[index] > 0:
                    return
        self._free.put(index)

    def _fail(self, exc: BaseException) -> None:
        with self._users_lock:  # the writer and the observer may fail at once: the first error is kept
            if self._error is None:
                self._error = _detached(exc)

    def _release(self) -> None:
        self._ended = True
        if self._view is not None:
            self._view.release()
            self._view = None
        for buffer in self._maps:
            try:
                buffer.close()
            except BufferError:  # pragma: no cover - a view is still held somewhere: the collector frees it
                logger.debug("direct I/O buffer still in use at close")
        self._maps = []

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            index, length, offset = item
            try:
                if self._error is None and not self._dropping:
                    with memoryview(self._maps[index]) as view:
                        self._write_buffer(view[:length], offset)
            except BaseException as exc:  # raised to the caller by its next write or finish
                self._fail(exc)
            finally:
                self._done_with(index)

    def _run_observer(self) -> None:
        assert self._observe is not None
        while (item := self._seen.get()) is not None:
            index, length, _ = item
            try:
                if self._error is None and not self._dropping:
                    with memoryview(self._maps[index]) as view, view[:length] as part:
                        self._observe(part)
            except BaseException as exc:  # raised to the caller by its next write or finish
                self._fail(exc)
            finally:
                self._done_with(index)

    def _write_buffer(self, view: memoryview, offset: int) -> None:
        """Write ``view`` at ``offset``: its aligned part directly (while direct), the rest through the page cache."""
        end = offset + len(view)
        if self._direct:
            aligned = len(view) - len(view) % ALIGNMENT
            done = self._write_direct(view[:aligned], offset)
            view, offset = view[done:], offset + done
            if view and self._direct:  # an unaligned tail (or what a short write left): not for O_DIRECT
                self._direct = False
                set_direct(self._fd, False)
        buffered_from = offset
        _pwrite_all(self._fd, view, offset)
        if self._writeback is not None and end > buffered_from:
            self._writeback(buffered_from, end - buffered_from)

    def _write_direct(self, view: memoryview, offset: int) -> int:
        """Write as much of the aligned ``view`` as stays aligned; returns the bytes written. Falls back to buffered
        mode (returning early) on the first write's ``EINVAL`` or an unaligned short write."""
        done = 0
        while done < len(view):
            try:
                written = os.pwrite(self._fd, view[done:], offset + done)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # A refused write wrote nothing. The first one: the device wants another alignment; a later one
                # (proven): the file system takes direct writes only at a larger alignment than ours (an 8 KiB-sector
                # XFS, 16 KiB-sector drives, 64 KiB pages) and this one is the part of the last buffer aligned to 4 KiB
                # only. Either way the rest goes through the page cache.
                logger.debug("direct write refused at byte %d%s (%s): writing through the page cache",
                             offset + done, " after direct writes" if self._proven else "", exc.strerror or exc)
                self._direct = False
                set_direct(self._fd, False)
                return done
            if written <= 0:
                raise OSError(errno.EIO, "write wrote nothing")
            self._proven = True
            done += written
            if written % ALIGNMENT:  # the rest would start unaligned
                return done
        return done


def _detached(exc: BaseException) -> BaseException:
    """``exc`` without the thread's tracebacks (their frames hold views of the buffers, which could not be unmapped
    while the exception lives)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__context__
    return exc


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "write wrote nothing")
        view = view[written:]
        offset += written


def _anonymous_map(size: int) -> mmap.mmap:
    """``size`` bytes of private anonymous memory: page-aligned, as ``O_DIRECT`` needs."""
    flags = getattr(mmap, "MAP_PRIVATE", None)
    if flags is None:  # pragma: no cover - Windows (never direct: O_DIRECT does not exist there)
        return mmap.mmap(-1, size)
    return mmap.mmap(-1, size, flags=flags)
