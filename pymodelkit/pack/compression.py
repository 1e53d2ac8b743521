"""Layer compression codecs: writers for pack, readers for unpack.

``none`` passes bytes through; ``gzip`` (level 6) and ``gzip-fastest`` (level 1) write a gzip header as Go's
``compress/gzip`` does (no name, mtime 0, OS 255), so output is reproducible from run to run although the deflate
stream differs from Go's; ``zstd`` uses libzstd at its default level. Media types carry ``gzip`` for both gzip
variants.

The deflate stream comes from ISA-L (the ``isal`` package, extra ``pymodelkit[isal]``) when it is installed, else
from zlib; ``PYMODELKIT_GZIP_BACKEND=zlib|isal`` forces one. ISA-L has levels 0-3: ``gzip-fastest`` uses its level 1
and ``gzip`` its level 2 (ISA-L's default); its level 0 expands incompressible data by a fifth. ISA-L deflates 5-40
times faster than zlib on this project's benchmark machine (random bytes: isal 1 about 600 MB/s, zlib 1 about
15 MB/s; text: 450 against 85 MB/s) at the same or a slightly better ratio. The two backends write different (both
valid) deflate streams, so a gzip layer's digest depends on the backend, as it already differs from kit's Go
encoder; :func:`compression_backend` names the backend and version for the digest cache. zstd stays
single-threaded: libzstd's worker threads change the bytes, and on 2 cores they were slower on incompressible data
(175-330 against 450-1190 MB/s).
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, BinaryIO, Protocol

import zstandard

from pymodelkit import settings
from pymodelkit.errors import ModelKitError

__all__ = [
    "COMPRESSION_CHOICES",
    "CompressingWriter",
    "compression_backend",
    "gzip_backend",
    "media_type_compression",
    "open_compressing_writer",
    "open_decompressing_reader",
]

COMPRESSION_CHOICES = ("none", "gzip", "gzip-fastest", "zstd")
_GZIP_LEVELS = {"gzip": 6, "gzip-fastest": 1}
_ISAL_LEVELS = {"gzip": 2, "gzip-fastest": 1}
_ZSTD_LEVEL = 3

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
    """gzip with Go's header bytes: ``1f 8b 08 00 00000000 XFL ff``; raw deflate from zlib or ISA-L."""

    def __init__(self, sink: Sink, compression: str) -> None:
        self._sink = sink
        level = _GZIP_LEVELS[compression]
        module: Any = zlib if gzip_backend() == "zlib" else _isal()
        backend_level = level if module is zlib else _ISAL_LEVELS[compression]
        self._deflate = module.compressobj(backend_level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc32: Callable[[bytes | bytearray | memoryview, int], int] = module.crc32
        self._crc = 0
        self._size = 0
        xfl = b"\x04" if level == 1 else (b"\x02" if level == 9 else b"\x00")
        sink(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + xfl + b"\xff")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._crc = self._crc32(data, self._crc)
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
        self._compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=False).compressobj()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        out = self._compressor.compress(data)
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
    return _GzipWriter(sink, compression)


def gzip_backend() -> str:
    """The deflate library gzip layers use now: ``PYMODELKIT_GZIP_BACKEND`` if set, else ``isal`` when the ``isal``
    package imports, else ``zlib``. Raises ModelKitError when ``isal`` is asked for and not installed."""
    chosen = settings.gzip_backend()
    if chosen == "zlib":
        return "zlib"
    if _isal() is not None:
        return "isal"
    if chosen == "isal":
        raise ModelKitError("PYMODELKIT_GZIP_BACKEND=isal, but the isal package is not installed "
                            "(pip install 'pymodelkit[isal]')")
    return "zlib"


def compression_backend(compression: str) -> str:
    """What produces the bytes of ``compression``, with its version and level: ``none``, ``zlib-1.2.13-6``,
    ``isal-1.9.1-2``, ``zstd-1.5.7-3``. Two packs with the same backend string write the same bytes."""
    _check(compression)
    if compression == "none":
        return "none"
    if compression == "zstd":
        return "zstd-" + ".".join(str(part) for part in zstandard.ZSTD_VERSION) + f"-{_ZSTD_LEVEL}"
    if gzip_backend() == "zlib":
        return f"zlib-{zlib.ZLIB_RUNTIME_VERSION}-{_GZIP_LEVELS[compression]}"
    import isal

    return f"isal-{isal.__version__}-{_ISAL_LEVELS[compression]}"


@functools.lru_cache(maxsize=1)
def _isal() -> ModuleType | None:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


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
