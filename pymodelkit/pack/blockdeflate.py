"""Raw deflate on several cores whose bytes depend only on the input: fixed-size blocks, each compressed on a worker
thread with the previous 32 KiB as its dictionary, concatenated in order (the pigz construction).

Spec ``format.md`` §4 (gzip block construction). The uncompressed stream is cut at fixed offsets into blocks of
:data:`BLOCK_BYTES` (the last block holds the rest; an empty stream is one empty block). Block *i* is compressed by a
fresh raw deflate (window 2^15, the backend's ``compressobj(level, DEFLATED, -15)``) primed with the last 32 KiB of
block *i-1* as its preset dictionary (block 0 has none), fed the whole block in one call and ended with
``Z_SYNC_FLUSH``, except the last block, ended with ``Z_FINISH``. Every block but the last therefore ends on a byte
boundary with an empty stored block (``00 00 ff ff``) and without the final-block bit, so the concatenation is one
valid raw deflate stream. Its bytes are a pure function of the input, the backend (module and version), the level and
the block size: the thread count and the way the input is cut into :meth:`BlockDeflater.write` calls change nothing,
because a block is only compressed once it is complete, always in one call.

Threads: :meth:`BlockDeflater.write` copies the input into a block buffer (the caller's view is only valid until
``write`` returns) and hands each full block to a pool of ``workers`` threads (``zlib``, ISA-L and their ``crc32``
release the GIL), then passes finished blocks to the sink in order, on the caller's thread. At most
``workers + 1`` blocks are in flight, so memory stays at about ``(workers + 2) * BLOCK_BYTES`` plus their output
whatever the stream size; ``write`` waits for the oldest block when that many are pending. With ``workers=1``, and
for a stream of one block, blocks are compressed inline and no thread is started. Each worker also computes its
block's CRC-32; the ordered side combines them (``crc32_combine``, in Python here: 32 carry-less steps a block).
A worker's exception is raised by the ``write`` or ``close`` that collects its block; then, and on :meth:`abort`,
the pool is shut down and joined, so no thread outlives the deflater.
"""

from __future__ import annotations

import collections
import functools
import os
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["BLOCK_BYTES", "MAX_WORKERS", "WINDOW_BYTES", "BlockDeflater", "crc32_combine", "default_workers"]

BLOCK_BYTES = 1 << 20  # part of the format (format.md §4); ISA-L's own threaded writer uses the same size
WINDOW_BYTES = 32 << 10
MAX_WORKERS = 4

Sink = Callable[[bytes | bytearray | memoryview], object]
_Result = tuple[bytes, bytes, int]
_CRC_POLY = 0xEDB88320  # CRC-32 (IEEE), reflected


def default_workers() -> int:
    """Worker threads for one stream: ``min(MAX_WORKERS, CPUs this process may run on)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


class BlockDeflater:
    """Raw deflate of everything written, in :data:`BLOCK_BYTES` blocks compressed by ``workers`` threads, emitted in
    order to ``sink``. ``module`` is ``zlib`` or ``isal.isal_zlib`` (anything with ``compressobj`` taking ``zdict``,
    ``crc32``, ``DEFLATED``, ``Z_SYNC_FLUSH`` and ``Z_FINISH``). Call :meth:`close` to end the stream, or
    :meth:`abort` to drop it; afterwards :attr:`crc32` and :attr:`size` describe the uncompressed bytes."""

    def __init__(self, sink: Sink, module: Any, level: int, *, workers: int | None = None,
                 block_bytes: int | None = None) -> None:
        self._sink = sink
        self._module = module
        self._level = level
        self._workers = default_workers() if workers is None else max(1, workers)
        self._block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        if self._block_bytes < WINDOW_BYTES:
            raise ValueError(f"block size {self._block_bytes} is under the deflate window ({WINDOW_BYTES})")
        self._max_pending = self._workers + 1  # one block queued per worker, besides the one being filled: memory
        self._executor: ThreadPoolExecutor | None = None
        self._pending: collections.deque[tuple[Future[_Result], bytearray, int]] = collections.deque()
        self._free: list[bytearray] = []
        self._buffer = bytearray(self._block_bytes)
        self._fill = 0
        self._zdict: bytes | None = None
        self._blocks = 0
        self._crc = 0
        self._size = 0
        self._state = "open"

    @property
    def crc32(self) -> int:
        """CRC-32 of the uncompressed bytes emitted so far (all of them after :meth:`close`)."""
        return self._crc

    @property
    def size(self) -> int:
        """Number of uncompressed bytes emitted so far (all of them after :meth:`close`)."""
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Take ``data`` (copied: the caller may reuse it once this returns); may emit finished blocks."""
        if self._state != "open":
            raise ValueError(f"write to a BlockDeflater that is {self._state}")
        view = memoryview(data).cast("B")
        try:
            position = 0
            length = len(view)
            while position < length:
                if self._fill == self._block_bytes:
                    self._submit(last=False)
                take = min(self._block_bytes - self._fill, length - position)
                self._buffer[self._fill : self._fill + take] = view[position : position + take]
                self._fill += take
                position += take
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Compress the last block, emit everything in order, stop the threads. Raises a worker's error, and
        ValueError after :meth:`abort`. Idempotent."""
        if self._state == "closed":
            return
        if self._state == "aborted":
            raise ValueError("close of an aborted BlockDeflater")
        try:
            self._submit(last=True)
            self._drain(0)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        self._shutdown()

    def abort(self) -> None:
        """Drop the stream: emit nothing more, cancel queued blocks, join the threads. Idempotent; a no-op after
        :meth:`close`. Call it once no ``write`` is running."""
        if self._state == "closed":
            return
        self._state = "aborted"
        self._pending.clear()
        self._free.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _submit(self, *, last: bool) -> None:
        block, length = self._buffer, self._fill
        zdict = self._zdict
        if not last:
            self._zdict = bytes(memoryview(block)[length - WINDOW_BYTES : length])
        self._blocks += 1
        if self._workers == 1 or (last and self._blocks == 1):
            result = _deflate_block(self._module, self._level, memoryview(block)[:length], zdict, last)
            self._emit(result, length)
            self._fill = 0
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="deflate")
        future = self._executor.submit(_deflate_block, self._module, self._level, memoryview(block)[:length], zdict,
                                       last)
        self._pending.append((future, block, length))
        self._drain(self._max_pending)
        if not last:  # the next block's buffer (none after the last block)
            self._buffer = self._free.pop() if self._free else bytearray(self._block_bytes)
        self._fill = 0

    def _drain(self, limit: int) -> None:
        """Emit finished blocks from the head; wait for the oldest while more than ``limit`` are pending."""
        while self._pending and (len(self._pending) > limit or self._pending[0][0].done()):
            future, block, length = self._pending[0]
            result = future.result()
            self._pending.popleft()
            self._free.append(block)
            self._emit(result, length)

    def _emit(self, result: _Result, length: int) -> None:
        head, tail, crc = result
        self._crc = crc32_combine(self._crc, crc, length)
        self._size += length
        if head:
            self._sink(head)
        if tail:
            self._sink(tail)


def _deflate_block(module: Any, level: int, block: memoryview, zdict: bytes | None, last: bool) -> _Result:
    if zdict is None:
        compressor = module.compressobj(level, module.DEFLATED, -zlib.MAX_WBITS)
    else:
        compressor = module.compressobj(level, module.DEFLATED, -zlib.MAX_WBITS, zdict=zdict)
    head = compressor.compress(block)
    tail = compressor.flush(module.Z_FINISH if last else module.Z_SYNC_FLUSH)
    return head, tail, module.crc32(block)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc1`` of ``A``, ``crc2`` of ``B`` and ``len(B)`` (zlib's ``crc32_combine``)."""
    if length2 == 0:
        return crc1
    return _multmodp(_x8nmodp(length2), crc1) ^ crc2


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial, both reflected (bit 31 is x^0)."""
    product = 0
    mask = 1 << 31
    while a:
        if a & mask:
            product ^= b
            a ^= mask
        mask >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1
    return product


@functools.lru_cache(maxsize=8)
def _x8nmodp(count: int) -> int:
    """x^(8 * count) modulo the CRC polynomial: the operator that shifts a CRC over ``count`` zero bytes."""
    result = 1 << 31  # x^0
    power = 1 << 23  # x^8
    while count:
        if count & 1:
            result = _multmodp(power, result)
        power = _multmodp(power, power)
        count >>= 1
    return result
