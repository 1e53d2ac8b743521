"""Moving bytes through threads in reused buffers: a bounded pool of buffers, and a fan-out that gives each chunk, in
order, to consumers that run on threads of their own and gives its buffer back once all are done with it.

Pack uses both for a layer's stages (read → hash, compress, write: ``pack/layers.py``); pull uses the pool for the
socket's read-ahead and the fan-out for the SHA-256 of a blob written through the page cache
(``registry/download.py``). ``hashlib``, ``zlib``, ``zstandard``, ``os.write`` and ``recv_into`` release the GIL on
large buffers, so the stages overlap: a transfer runs at the speed of its slowest stage, not the sum of all, and
memory stays at the pool's size whatever the blob's. This module imports nothing of pymodelkit but the errors, so
any package can use it. Spec: none (an implementation matter; the bytes are the same whatever the threading).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

from pymodelkit.errors import ModelKitError

__all__ = ["BufferPool", "ChunkFanout", "Consumer", "PoolClosedError"]

Consumer = Callable[[memoryview], object]
_STOP = object()


class PoolClosedError(ModelKitError):
    """:meth:`BufferPool.acquire` on a closed pool: its user is stopping (raised to the thread that waited)."""


class BufferPool:
    """``count`` bytearrays of ``size`` bytes, handed out by :meth:`acquire` (which blocks while all are in use) and
    given back by :meth:`release`. Memory stays at ``count * size`` whatever the layer size. Thread-safe."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()  # None: wakes a waiter after close
        self._closed = False
        for _ in range(count):
            self._free.put(bytearray(size))

    def acquire(self) -> bytearray:
        """A free buffer (its content is whatever it held last).

        Raises:
            PoolClosedError: the pool is closed (also when it was closed while this call waited).
        """
        buffer = self._free.get()
        if buffer is None or self._closed:
            self._free.put(None)  # for the next caller
            raise PoolClosedError("the buffer pool is closed")
        return buffer

    def release(self, buffer: bytearray) -> None:
        """Give ``buffer`` back."""
        self._free.put(buffer)

    def close(self) -> None:
        """Make :meth:`acquire` raise :class:`PoolClosedError`, in the callers it blocks too: for a producer that
        waits for buffers its consumer will never give back."""
        self._closed = True
        self._free.put(None)


class _Item:
    __slots__ = ("chunk", "pending", "release")

    def __init__(self, chunk: memoryview, release: Callable[[], None] | None, pending: int) -> None:
        self.chunk = chunk
        self.release = release
        self.pending = pending


class ChunkFanout:
    """Give each chunk to every consumer, in order, each consumer on a thread of its own (``threaded``) or inline.

    :meth:`put` hands over a chunk and a ``release`` callback, called once every consumer is done with the chunk (it
    returns the buffer to its pool); with no consumer, at once. A consumer must not keep the view after it returns.
    The first exception a consumer raises stops that consumer (it then only releases what it is given) and is raised
    by the next :meth:`put` (which releases its chunk, given to no one) or by :meth:`close`, which waits for every
    consumer to finish. Use as a context manager: leaving the block without :meth:`close` (an exception in the
    producer) stops the threads once they have consumed what they were given. One thread at a time calls
    :meth:`put`.
    """

    def __init__(self, consumers: Sequence[Consumer], *, threaded: bool = True, depth: int = 3,
                 name: str = "pack") -> None:
        self._consumers = list(consumers)
        self._threaded = threaded and len(self._consumers) > 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._queues: list[queue.Queue[object]] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        if self._threaded:
            for index, consumer in enumerate(self._consumers):
                inbox: queue.Queue[object] = queue.Queue(maxsize=depth)
                thread = threading.Thread(target=self._run, args=(consumer, inbox), name=f"{name}-{index}",
                                          daemon=True)
                self._queues.append(inbox)
                self._threads.append(thread)
                thread.start()

    def put(self, chunk: memoryview, release: Callable[[], None] | None = None) -> None:
        """Hand ``chunk`` to every consumer; raises the first error a consumer has raised so far."""
        if not self._threaded:
            try:
                for consumer in self._consumers:
                    consumer(chunk)
            finally:
                if release is not None:
                    release()
            return
        try:
            self._raise_error()
        except BaseException:
            if release is not None:
                release()
            raise
        item = _Item(chunk, release, len(self._queues))
        for inbox in self._queues:
            inbox.put(item)

    def close(self) -> None:
        """Wait until every consumer has consumed every chunk; raise the first consumer error."""
        self._finish()
        self._raise_error()

    def __enter__(self) -> ChunkFanout:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        for inbox in self._queues:
            inbox.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _raise_error(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def _run(self, consumer: Consumer, inbox: queue.Queue[object]) -> None:
        failed = False
        while True:
            item = inbox.get()
            if item is _STOP:
                return
            assert isinstance(item, _Item)
            if not failed:
                try:
                    consumer(item.chunk)
                except BaseException as exc:  # handed to the producer thread
                    failed = True
                    with self._lock:
                        if self._error is None:
                            self._error = exc
            with self._lock:
                item.pending -= 1
                done = item.pending == 0
            if done and item.release is not None:
                item.release()
