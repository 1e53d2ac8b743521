"""The buffers shared by pack and pull (``pymodelkit/_buffers.py``): the pool (reuse, blocking, close) and the fan-out
(order, a buffer given back only after every consumer read it, the first error, the threads ended)."""

from __future__ import annotations

import functools
import threading
import time

import pytest

from pymodelkit._buffers import BufferPool, ChunkFanout, PoolClosedError
from pymodelkit.errors import ModelKitError


def _threads(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_pool_reuses_its_buffers_and_blocks_while_all_are_in_use() -> None:
    pool = BufferPool(2, 16)
    first, second = pool.acquire(), pool.acquire()
    assert first is not second and len(first) == len(second) == pool.size == 16
    taken: list[bytearray] = []
    waiter = threading.Thread(target=lambda: taken.append(pool.acquire()))
    waiter.start()
    time.sleep(0.05)
    assert taken == []  # both buffers are out
    pool.release(second)
    waiter.join(5)
    assert taken == [second]


def test_closing_the_pool_wakes_a_waiting_acquire_and_fails_later_ones() -> None:
    pool = BufferPool(1, 8)
    held = pool.acquire()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.acquire()
        except PoolClosedError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    pool.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert [str(e) for e in errors] == ["the buffer pool is closed"]
    assert isinstance(errors[0], ModelKitError)
    pool.release(held)  # a buffer given back after close is not handed out again
    with pytest.raises(PoolClosedError, match="the buffer pool is closed"):
        pool.acquire()


def test_one_consumer_gets_every_chunk_in_order_and_each_buffer_back_after_reading_it() -> None:
    pool = BufferPool(3, 8)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def consume(chunk: memoryview) -> None:
        time.sleep(0.001)  # slower than the producer: the pool runs dry, and put waits on the queue
        with lock:
            events.append(("read", int(bytes(chunk))))

    with ChunkFanout([consume], depth=2, name="pymodelkit-test") as fan:
        assert len(_threads("pymodelkit-test-")) == 1
        for index in range(40):
            buffer = pool.acquire()
            buffer[:] = b"%08d" % index

            def release(buffer: bytearray = buffer, index: int = index) -> None:
                with lock:
                    events.append(("released", index))
                pool.release(buffer)

            fan.put(memoryview(buffer), release)
        fan.close()
    assert _threads("pymodelkit-test-") == []
    assert events == [(kind, i) for i in range(40) for kind in ("read", "released")]


def test_after_a_consumer_error_put_gives_its_chunk_back_and_raises_it_as_close_does() -> None:
    failure = OSError("hash failed")
    released: list[int] = []

    def broken(chunk: memoryview) -> None:
        raise failure

    fan = ChunkFanout([broken], name="pymodelkit-test")
    puts = 0
    with pytest.raises(OSError, match="hash failed") as info:
        for index in range(1000):  # the consumer fails on the first chunk; put says so once it has
            puts += 1
            fan.put(memoryview(b"x"), functools.partial(released.append, index))
            time.sleep(0.001)
    assert info.value is failure and puts < 1000
    with pytest.raises(OSError, match="hash failed") as info:
        fan.close()
    assert info.value is failure
    assert _threads("pymodelkit-test-") == []
    assert sorted(released) == list(range(puts))  # the failed consumer's chunks and the one put refused


def test_without_consumers_a_chunk_is_given_back_at_once_on_the_calling_thread() -> None:
    released: list[str] = []
    with ChunkFanout([], name="pymodelkit-test") as fan:
        assert _threads("pymodelkit-test-") == []
        fan.put(memoryview(b"abc"), lambda: released.append(threading.current_thread().name))
        assert released == [threading.current_thread().name]
        fan.close()


def test_leaving_the_block_on_a_producer_error_ends_the_threads_after_what_they_were_given() -> None:
    seen: list[bytes] = []
    fan = ChunkFanout([lambda chunk: seen.append(bytes(chunk))], name="pymodelkit-test")
    with pytest.raises(RuntimeError, match="producer failed"), fan:
        for index in range(5):
            fan.put(memoryview(b"%d" % index))
        raise RuntimeError("producer failed")
    assert seen == [b"0", b"1", b"2", b"3", b"4"]
    assert _threads("pymodelkit-test-") == []
