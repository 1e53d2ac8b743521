"""Layer codecs: Go-style gzip header, reproducible output, and readers that undo every writer."""

from __future__ import annotations

import gzip
import io
import os

import pytest

from pymodelkit.errors import ModelKitError
from pymodelkit.pack.compression import media_type_compression, open_compressing_writer, open_decompressing_reader


def _compress(kind: str, data: bytes) -> bytes:
    out = bytearray()
    writer = open_compressing_writer(kind, out.extend)
    for start in range(0, len(data), 7000):
        writer.write(memoryview(data)[start : start + 7000])
    writer.close()
    return bytes(out)


@pytest.mark.parametrize(("kind", "xfl"), [("gzip", 0x00), ("gzip-fastest", 0x04)])
def test_gzip_header_is_gos(kind: str, xfl: int) -> None:
    blob = _compress(kind, b"hello" * 1000)
    assert blob[:10] == bytes([0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xFF])
    assert gzip.decompress(blob) == b"hello" * 1000


@pytest.mark.parametrize("kind", ["none", "gzip", "gzip-fastest", "zstd"])
def test_round_trip_and_reproducible(kind: str) -> None:
    data = os.urandom(50_000) + b"\x00" * 200_000
    first = _compress(kind, data)
    assert first == _compress(kind, data)
    reader = open_decompressing_reader(media_type_compression(kind), io.BytesIO(first))
    assert reader.read() == data


def test_media_type_word() -> None:
    assert [media_type_compression(k) for k in ("none", "gzip", "gzip-fastest", "zstd")] == [
        "none", "gzip", "gzip", "zstd",
    ]
    with pytest.raises(ModelKitError, match="invalid compression 'lz4'"):
        media_type_compression("lz4")


def test_zstd_is_one_frame_in_pieces_of_at_most_a_mib_with_the_bytes_of_one_stream() -> None:
    import zstandard

    data = os.urandom(6 << 20) + bytes(3 << 20) + b"tail"
    pieces: list[int] = []
    out = io.BytesIO()

    def sink(piece: bytes | bytearray | memoryview) -> None:
        pieces.append(len(piece))
        out.write(piece)

    writer = open_compressing_writer("zstd", sink)
    for start in range(0, len(data), 4 << 20):  # pack's 4 MiB reads
        writer.write(memoryview(data)[start : start + (4 << 20)])
    writer.close()
    reference = zstandard.ZstdCompressor(level=3, write_checksum=False).compressobj()
    expected = reference.compress(data) + reference.flush()
    assert out.getvalue() == expected  # the same frame as one stream over the whole input
    assert max(pieces) <= 1 << 20 and len(pieces) > 6
    assert zstandard.ZstdDecompressor().decompressobj().decompress(out.getvalue()) == data
