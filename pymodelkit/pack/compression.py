"""Layer compression codecs: writers for pack, readers for unpack.

``none`` passes bytes through; ``gzip`` (level 6) and ``gzip-fastest`` (level 1) write a gzip header as Go's
``compress/gzip`` does (no name, mtime 0, OS 255), so output is reproducible from run to run although the deflate
stream differs from Go's; ``zstd`` uses libzstd at its default level. Media types carry ``gzip`` for both gzip
variants.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol

import zstandard

from pymodelkit.errors import ModelKitError

__all__ = [
    "COMPRESSION_CHOICES",
    "CompressingWriter",
    "media_type_compression",
    "open_compressing_writer",
    "open_decompressing_reader",
]

COMPRESSION_CHOICES = ("none", "gzip", "gzip-fastest", "zstd")
_GZIP_LEVELS = {"gzip": 6, "gzip-fastest": 1}

Sink = Callable[[bytes | bytearray | memoryview], object]


class CompressingWriter(Protocol):
    """Accepts uncompressed bytes and forwards compressed bytes to a sink; ``close`` flushes the end."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def close(self) -> None: ...


def media_type_compression(compression: str) -> str:
    """The compression word of the media type for a ``--compression`` choice (``gzip-fastest`` is ``gzip``)."""
    _check(compression)
    return "gzip" if compression.startswith("gzip") else compression


class _Passthrough:
    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._sink(data)

    def close(self) -> None:
        pass


class _GzipWriter:
    """gzip with Go's header bytes: ``1f 8b 08 00 00000000 XFL ff``."""

    def __init__(self, sink: Sink, level: int) -> None:
        self._sink = sink
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0
        xfl = b"\x04" if level == 1 else (b"\x02" if level == 9 else b"\x00")
        sink(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + xfl + b"\xff")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._deflate.compress(data)
        if out:
            self._sink(out)

    def close(self) -> None:
        self._sink(self._deflate.flush())
        self._sink(self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little"))


class _ZstdWriter:
    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._compressor = zstandard.ZstdCompressor(level=3, write_checksum=False).compressobj()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        out = self._compressor.compress(bytes(data))
        if out:
            self._sink(out)

    def close(self) -> None:
        self._sink(self._compressor.flush())


def open_compressing_writer(compression: str, sink: Sink) -> CompressingWriter:
    """A writer that compresses what it is given with ``compression`` and passes the result to ``sink``."""
    _check(compression)
    if compression == "none":
        return _Passthrough(sink)
    if compression == "zstd":
        return _ZstdWriter(sink)
    return _GzipWriter(sink, _GZIP_LEVELS[compression])


def open_decompressing_reader(compression: str, source: BinaryIO) -> BinaryIO:
    """A file object yielding the uncompressed bytes of ``source`` (``none``, ``gzip`` or ``zstd``)."""
    if compression == "none":
        return source
    if compression == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        return reader
    raise ModelKitError(f"unsupported layer compression {compression!r}")


def _check(compression: str) -> None:
    if compression not in COMPRESSION_CHOICES:
        raise ModelKitError(
            f"invalid compression {compression!r}: must be one of {', '.join(COMPRESSION_CHOICES)}"
        )
