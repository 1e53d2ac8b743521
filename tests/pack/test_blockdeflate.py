"""Block deflate: valid raw deflate and gzip, the same bytes for any thread count and write chunking, the block
construction of format.md §4 rebuilt by hand, errors raised to the caller, and no thread left behind."""

from __future__ import annotations

import gzip
import os
import random
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from pymodelkit.pack import blockdeflate
from pymodelkit.pack.blockdeflate import BLOCK_BYTES, WINDOW_BYTES, BlockDeflater, crc32_combine
from pymodelkit.pack.compression import compression_backend, open_compressing_writer

B = BLOCK_BYTES
BACKENDS = {"isal": isal_zlib, "zlib": zlib}
SMALL_BLOCK = WINDOW_BYTES + 5000


def _data(size: int) -> bytes:
    """Random runs, each followed by a repeat of part of it (back-references, also across block boundaries)."""
    rng = random.Random(size)
    out = bytearray()
    while len(out) < size:
        run = rng.randbytes(rng.randrange(1, 40000))
        out += run + run[: rng.randrange(0, 30000)] * 2
    return bytes(out[:size])


@pytest.fixture(scope="module")
def stream() -> bytes:
    return _data(3 * B + 12345)


def _deflate(data: bytes, module: Any, level: int, *, workers: int, block_bytes: int | None = None,
             cuts: list[int] | None = None) -> tuple[bytes, BlockDeflater]:
    out = bytearray()
    deflater = BlockDeflater(out.extend, module, level, workers=workers, block_bytes=block_bytes)
    for piece in _pieces(data, cuts or [len(data) or 1]):
        deflater.write(piece)
    deflater.close()
    return bytes(out), deflater


def _pieces(data: bytes, cuts: list[int]) -> Iterator[memoryview]:
    view = memoryview(data)
    start = 0
    index = 0
    while start < len(data):
        step = max(1, cuts[index % len(cuts)])
        yield view[start : start + step]
        start += step
        index += 1


def _gzip(kind: str, data: bytes, *, workers: int | None = None, step: int = 4 << 20) -> bytes:
    out = bytearray()
    writer = open_compressing_writer(kind, out.extend, workers=workers)
    for piece in _pieces(data, [step]):
        writer.write(piece)
    writer.close()
    return bytes(out)


def _deflate_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("deflate")]


@pytest.mark.parametrize("backend", ["isal", "zlib"])
@pytest.mark.parametrize("size", [0, 1, B - 1, B, B + 1, 3 * B + 12345])
def test_round_trip_raw_and_gzip(backend: str, size: int, stream: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    data = stream[:size]
    raw, deflater = _deflate(data, BACKENDS[backend], 1, workers=2, cuts=[4 << 20])
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw) == data
    assert (deflater.crc32, deflater.size) == (zlib.crc32(data), size)
    monkeypatch.setenv("PYMODELKIT_GZIP_BACKEND", backend)
    assert gzip.decompress(_gzip("gzip-fastest", data)) == data


@pytest.mark.parametrize("backend", ["isal", "zlib"])
@pytest.mark.parametrize("kind", ["gzip", "gzip-fastest"])
def test_same_bytes_for_any_thread_count_and_chunking(backend: str, kind: str, stream: bytes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMODELKIT_GZIP_BACKEND", backend)
    first = _gzip(kind, stream, workers=1)
    for workers, step in [(2, 4 << 20), (4, 4 << 20), (2, 7000), (4, B), (1, B + 1), (None, 65536)]:
        assert _gzip(kind, stream, workers=workers, step=step) == first, (workers, step)
    assert gzip.decompress(first) == stream
    xfl = 0x04 if kind == "gzip-fastest" else 0x00
    assert first[:10] == bytes([0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xFF])
    assert compression_backend(kind).startswith(f"{backend}-") and compression_backend(kind).endswith("-blocks1m")


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=4 * SMALL_BLOCK + 100),
    cuts=st.lists(st.integers(min_value=1, max_value=2 * SMALL_BLOCK), min_size=1, max_size=6),
    workers=st.sampled_from([1, 2, 4]),
    backend=st.sampled_from(["isal", "zlib"]),
)
def test_chunking_never_changes_the_bytes(size: int, cuts: list[int], workers: int, backend: str,
                                          stream: bytes) -> None:
    data = stream[:size]
    module = BACKENDS[backend]
    expected, _ = _deflate(data, module, 1, workers=1, block_bytes=SMALL_BLOCK)
    raw, deflater = _deflate(data, module, 1, workers=workers, block_bytes=SMALL_BLOCK, cuts=cuts)
    assert raw == expected
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw) == data
    assert deflater.crc32 == zlib.crc32(data)


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_the_spec_construction_rebuilt_by_hand(backend: str, stream: bytes) -> None:
    module = BACKENDS[backend]
    expected = bytearray()
    for start in range(0, len(stream), B):
        block = stream[start : start + B]
        if start == 0:
            compressor = module.compressobj(2, module.DEFLATED, -15)
        else:
            compressor = module.compressobj(2, module.DEFLATED, -15, zdict=stream[start - WINDOW_BYTES : start])
        last = start + B >= len(stream)
        piece = compressor.compress(block) + compressor.flush(module.Z_FINISH if last else module.Z_SYNC_FLUSH)
        assert last or piece.endswith(b"\x00\x00\xff\xff")  # byte-aligned, not final
        expected += piece
    raw, _ = _deflate(stream, module, 2, workers=4, cuts=[999_999])
    assert raw == bytes(expected)


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_empty_stream_is_one_finished_empty_block(backend: str) -> None:
    module = BACKENDS[backend]
    compressor = module.compressobj(1, module.DEFLATED, -15)
    raw, _ = _deflate(b"", module, 1, workers=4)
    assert raw == compressor.flush(module.Z_FINISH)
    assert gzip.decompress(_gzip("gzip", b"")) == b""


class _FailingModule:
    """zlib, except that compressing the block that starts with ``marker`` raises."""

    DEFLATED = zlib.DEFLATED
    Z_SYNC_FLUSH = zlib.Z_SYNC_FLUSH
    Z_FINISH = zlib.Z_FINISH
    crc32 = staticmethod(zlib.crc32)

    def __init__(self, marker: bytes) -> None:
        self.marker = marker

    def compressobj(self, *args: Any, **kwargs: Any) -> Any:
        real = zlib.compressobj(*args, **kwargs)
        marker = self.marker

        class Compressor:
            def compress(self, block: memoryview) -> bytes:
                if bytes(block[: len(marker)]) == marker:
                    raise zlib.error("injected failure")
                return real.compress(block)

            def flush(self, mode: int) -> bytes:
                return real.flush(mode)

        return Compressor()


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_worker_error_reaches_the_caller_and_stops_the_threads(workers: int) -> None:
    data = bytearray(_data(8 * SMALL_BLOCK))
    data[3 * SMALL_BLOCK : 3 * SMALL_BLOCK + 8] = b"FAILHERE"
    out = bytearray()
    deflater = BlockDeflater(out.extend, _FailingModule(b"FAILHERE"), 1, workers=workers, block_bytes=SMALL_BLOCK)
    with pytest.raises(zlib.error, match="injected failure"):
        for piece in _pieces(bytes(data), [5000]):
            deflater.write(piece)
        deflater.close()
    assert _deflate_threads() == []
    assert bytes(data).startswith(zlib.decompressobj(-15).decompress(bytes(out)))  # only whole blocks, in order
    with pytest.raises(ValueError, match=r"^write to a BlockDeflater that is aborted$"):
        deflater.write(b"more")
    with pytest.raises(ValueError, match=r"^close of an aborted BlockDeflater$"):
        deflater.close()


def test_a_sink_error_reaches_the_caller_and_stops_the_threads() -> None:
    def sink(_: object) -> None:
        raise OSError("disk full")

    deflater = BlockDeflater(sink, isal_zlib, 1, workers=2, block_bytes=SMALL_BLOCK)
    with pytest.raises(OSError, match="disk full"):
        for piece in _pieces(_data(10 * SMALL_BLOCK), [SMALL_BLOCK]):
            deflater.write(piece)
        deflater.close()
    assert _deflate_threads() == []


@pytest.mark.parametrize("kind", ["gzip", "gzip-fastest", "zstd", "none"])
def test_no_thread_left_after_close_or_abort(kind: str, stream: bytes) -> None:
    before = set(threading.enumerate())
    writer = open_compressing_writer(kind, lambda _: None, workers=4)
    writer.write(stream)
    assert kind not in ("gzip", "gzip-fastest") or _deflate_threads()
    writer.abort()
    writer.abort()
    assert set(threading.enumerate()) == before
    writer = open_compressing_writer(kind, lambda _: None, workers=4)
    writer.write(stream)
    writer.close()
    writer.abort()
    assert set(threading.enumerate()) == before


def test_close_twice_writes_the_trailer_once() -> None:
    out = bytearray()
    writer = open_compressing_writer("gzip", out.extend)
    writer.write(b"hello")
    writer.close()
    writer.close()
    assert gzip.decompress(bytes(out)) == b"hello"
    assert out.endswith(zlib.crc32(b"hello").to_bytes(4, "little") + (5).to_bytes(4, "little"))
    assert out.count(zlib.crc32(b"hello").to_bytes(4, "little")) == 1


def test_one_block_streams_start_no_thread() -> None:
    before = set(threading.enumerate())
    seen: list[int] = []
    out = bytearray()

    def sink(data: bytes | bytearray | memoryview) -> None:
        seen.append(threading.active_count())
        out.extend(data)

    writer = open_compressing_writer("gzip-fastest", sink, workers=4)
    writer.write(_data(B))
    writer.close()
    assert set(threading.enumerate()) == before and max(seen) == len(before)
    assert gzip.decompress(bytes(out)) == _data(B)


def test_memory_is_bounded_by_blocks_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []

    class Counting(bytearray):
        def __init__(self, *args: Any) -> None:
            made.append(1)
            super().__init__(*args)

    monkeypatch.setattr(blockdeflate, "bytearray", Counting, raising=False)
    deflater = BlockDeflater(lambda _: None, isal_zlib, 1, workers=2, block_bytes=SMALL_BLOCK)
    for piece in _pieces(_data(50 * SMALL_BLOCK), [SMALL_BLOCK // 3]):
        deflater.write(piece)
    deflater.close()
    assert 1 <= len(made) <= 2 * 2 + 1  # (2 * workers + 1) block buffers


def test_block_size_under_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="under the deflate window"):
        BlockDeflater(lambda _: None, zlib, 1, block_bytes=WINDOW_BYTES - 1)


def test_crc32_combine_matches_zlib() -> None:
    for first, second in [(b"", b""), (b"a", b""), (b"", b"b"), (os.urandom(1000), os.urandom(B + 3))]:
        assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)
        assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == isal_zlib.crc32_combine(
            zlib.crc32(first), zlib.crc32(second), len(second))
