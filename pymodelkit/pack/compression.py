"""Layer compression codecs: writers for pack, readers for unpack.

``none`` passes bytes through; ``gzip`` (level 6) and ``gzip-fastest`` (level 1) write a gzip header as Go's
``compress/gzip`` does (no name, mtime 0, OS 255), so output is reproducible from run to run although the deflate
stream differs from Go's; ``zstd`` uses libzstd at its default level. Media types carry ``gzip`` for both gzip
variants. Spec ``format.md`` §4.

The deflate stream comes from ISA-L (the ``isal`` package, extra ``pymodelkit[isal]``) when it is installed, else
from zlib; ``PYMODELKIT_GZIP_BACKEND=zlib|isal`` forces one. ISA-L has levels 0-3: ``gzip-fastest`` uses its level 1
and ``gzip`` its level 2 (ISA-L's default); its level 0 expands incompressible data by a fifth. ISA-L deflates 5-40
times faster than zlib on this project's benchmark machine (random bytes: isal 1 about 600 MB/s, zlib 1 about
15 MB/s; text: 450 against 85 MB/s) at the same or a slightly better ratio. The two backends write different (both
valid) deflate streams, so a gzip layer's digest depends on the backend, as it already differs from kit's Go
encoder; :func:`compression_backend` names the backend, version, level and block size for the digest cache.

Both backends deflate in blocks on several threads (:mod:`pymodelkit.pack.blockdeflate`): the stream is cut at fixed
1 MiB offsets, each block is compressed alone with the previous 32 KiB as its dictionary and ended with a sync flush
(the last one with a finish), and the pieces are joined in order, one valid deflate stream. Determinism rule: the
bytes depend only on the input, the backend and its version, the level and the block size, never on the thread
count (``min(4, cpu_count)``) or on how the input arrives; the block size is part of the format (``format.md`` §4) and
of the backend string, so changing it changes every gzip digest. Why: one compressor thread was pack's limit.
On 2 shared cores, 1 GiB of weight-like data, two sessions of best of 5 interleaved: ISA-L level 1 alone 311 and
287 MB/s (single runs 182-311: the VM's speed varies), pack ``gzip-fastest`` single-stream 257 and 228 MB/s (0.83x,
0.80x), in blocks 297 and 299 MB/s (0.95x, 1.04x; single runs 246-299); ``gzip`` (ISA-L 2) 0.93x then 1.08x of
ISA-L 2 alone. zlib gains most, being the slowest stage (256 MiB): level 1 25.6 MB/s alone, pack 24.7 then
43.9 MB/s; level 6 8.0 alone, pack 8.3 then 15.6 MB/s. The ratio loss is 0.001% (1.32262 to 1.32261). Compressed
alone with 2 workers, blocks of 512 KiB, 1 MiB and 2 MiB were within noise of each other (464-522 MB/s), 128 and
256 KiB slower (351-471), 4 MiB too (372-400); 3 or 4 workers on 2 cores were no faster than 2.
zstd stays single-threaded: libzstd's worker threads change the bytes, and on 2 cores they were slower on
incompressible data (175-330 against 450-1190 MB/s).
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, BinaryIO, Protocol, cast

import zstandard

from pymodelkit import settings
from pymodelkit.errors import ModelKitError
from pymodelkit.pack.blockdeflate import BLOCK_BYTES, BlockDeflater

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
_ZSTD_PIECE_BYTES = 1 << 20
_BLOCKS = f"blocks{BLOCK_BYTES >> 20}m" if BLOCK_BYTES % (1 << 20) == 0 else f"blocks{BLOCK_BYTES >> 10}k"

Sink = Callable[[bytes | bytearray | memoryview], object]


class CompressingWriter(Protocol):
    """Accepts uncompressed bytes and forwards compressed bytes to a sink; ``close`` flushes the end."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Drop the stream after a failure: write nothing more and stop any thread the writer started. Idempotent, a
        no-op after ``close``; call it once no ``write`` is running."""


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

    def abort(self) -> None:
        pass


class _GzipWriter:
    """gzip with Go's header bytes: ``1f 8b 08 00 00000000 XFL ff``; raw deflate from zlib or ISA-L in blocks
    compressed on worker threads (:mod:`pymodelkit.pack.blockdeflate`)."""

    def __init__(self, sink: Sink, compression: str, workers: int | None) -> None:
        self._sink = sink
        level = _GZIP_LEVELS[compression]
        module: Any = zlib if gzip_backend() == "zlib" else _isal()
        backend_level = level if module is zlib else _ISAL_LEVELS[compression]
        xfl = b"\x04" if level == 1 else (b"\x02" if level == 9 else b"\x00")
        sink(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + xfl + b"\xff")
        self._deflate = BlockDeflater(sink, module, backend_level, workers=workers)
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._deflate.write(data)

    def close(self) -> None:
        if self._closed:
            return
        self._deflate.close()
        self._closed = True
        self._sink(self._deflate.crc32.to_bytes(4, "little") + (self._deflate.size & 0xFFFFFFFF).to_bytes(4, "little"))

    def abort(self) -> None:
        self._deflate.abort()


class _SinkFile:
    """The file-like end ``zstandard``'s stream writer writes to: each piece to the sink (a new ``bytes`` each)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink(data)
        return len(data)


class _ZstdWriter:
    """One zstd frame, handed to the sink in pieces of at most :data:`_ZSTD_PIECE_BYTES`: a 4 MiB input makes four
    1 MiB pieces, not one 3-4 MiB ``bytes``, which keeps the compressed bytes queued for the hash and store threads
    small (two zstd layers packed at once peaked at 112 MiB with whole-chunk outputs). The frame's bytes do not depend
    on how input or output is cut (no flush before the end)."""

    def __init__(self, sink: Sink) -> None:
        compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=False)
        target = cast("BinaryIO", _SinkFile(sink))  # zstandard calls only write() on it
        self._writer = compressor.stream_writer(target, write_size=_ZSTD_PIECE_BYTES, closefd=False)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._writer.write(data)

    def close(self) -> None:
        self._writer.flush(zstandard.FLUSH_FRAME)

    def abort(self) -> None:
        pass


def open_compressing_writer(compression: str, sink: Sink, *, workers: int | None = None) -> CompressingWriter:
    """A writer that compresses what it is given with ``compression`` and passes the result to ``sink`` (always on the
    thread calling ``write`` or ``close``). ``workers``: the deflate threads of gzip (default
    :func:`~pymodelkit.pack.blockdeflate.default_workers`); the bytes do not depend on it."""
    _check(compression)
    if compression == "none":
        return _Passthrough(sink)
    if compression == "zstd":
        return _ZstdWriter(sink)
    return _GzipWriter(sink, compression, workers)


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
    """What produces the bytes of ``compression``, with its version, level and (gzip) deflate block size:
    ``none``, ``zlib-1.2.13-6-blocks1m``, ``isal-1.9.1-2-blocks1m``, ``zstd-1.5.7-3``. Two packs with the same
    backend string write the same bytes."""
    _check(compression)
    if compression == "none":
        return "none"
    if compression == "zstd":
        return "zstd-" + ".".join(str(part) for part in zstandard.ZSTD_VERSION) + f"-{_ZSTD_LEVEL}"
    if gzip_backend() == "zlib":
        return f"zlib-{zlib.ZLIB_RUNTIME_VERSION}-{_GZIP_LEVELS[compression]}-{_BLOCKS}"
    import isal

    return f"isal-{isal.__version__}-{_ISAL_LEVELS[compression]}-{_BLOCKS}"


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
