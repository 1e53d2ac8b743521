"""Tar bytes exactly as Go's ``archive/tar`` writes them for kit's headers, streamed through one reused buffer.

Implements spec ``kitops-modelkit.md`` §2.6: USTAR headers (long ASCII names split at the last ``/``), a PAX
extended header (``<dir>/PaxHeaders.0/<base>``) before entries USTAR cannot hold (non-ASCII or unsplittable names,
sizes of 8 GiB and more), uid 1000, gid 0, zero times, NUL padding to 512 and exactly two zero blocks at the end.
Python's ``tarfile`` differs on nearly each of these points, so headers are built here byte by byte. Which entries
go in, and in which order, is :mod:`pymodelkit.pack.walk`'s business.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from pymodelkit.errors import PackError
from pymodelkit.kitfile.paths import clean_path
from pymodelkit.pack.walk import TarEntry

__all__ = ["BLOCK_SIZE", "DEFAULT_BUFFER_BYTES", "END_OF_ARCHIVE", "stream_tar", "tar_header_blocks", "write_tar"]

BLOCK_SIZE = 512
DEFAULT_BUFFER_BYTES = 4 << 20
END_OF_ARCHIVE = bytes(2 * BLOCK_SIZE)  # Go's Writer.Close: two zero blocks, no padding to a 10240-byte record

_UID = 1000
_GID = 0
_NAME_SIZE = 100
_PREFIX_SIZE = 155
_MAX_OCTAL_SIZE = 8**11  # sizes from here on do not fit the 12-byte octal field: PAX "size" record
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_MIN_BUFFER_BYTES = 64 << 10
_MAX_MODE = 8**7
# The constant parts of a USTAR block (see _main_block), for the fast path of the usual entry: ASCII name of at most
# 100 bytes, size under 8 GiB. Checksum = the sum of every byte with the checksum field counted as 8 spaces.
_OWNER_FIELDS = b"%07o\x00%07o\x00" % (_UID, _GID)
_MTIME_FIELD = b"%011o\x00" % 0
_TAIL = bytes(100) + b"ustar\x0000" + bytes(64) + b"0000000\x00" * 2 + bytes(_PREFIX_SIZE + 12)
_CONSTANT_SUM = sum(_OWNER_FIELDS) + sum(_MTIME_FIELD) + sum(_TAIL) + 8 * 0x20


def tar_header_blocks(entry: TarEntry) -> bytes:
    """Return the header block(s) Go's ``tar.Writer.WriteHeader`` writes for ``entry`` as kit fills it in.

    One 512-byte USTAR block, or a PAX extended header (its block, its records padded to 512) followed by the
    entry's block.
    """
    name = os.fsencode(entry.name)
    size = 0 if entry.is_dir else entry.size
    if len(name) <= _NAME_SIZE and size < _MAX_OCTAL_SIZE and 0 <= entry.mode < _MAX_MODE and _is_ascii(name):
        return _fast_block(name, entry.mode, size, entry.is_dir)
    typeflag = 0x35 if entry.is_dir else 0x30  # '5' directory, '0' regular file
    pax: dict[bytes, bytes] = {}
    ustar_ok = True
    if not _is_ascii(name) or len(name) > _NAME_SIZE:
        pax[b"path"] = name
        ustar_ok = _split_ustar_path(name) is not None
    if size >= _MAX_OCTAL_SIZE:
        pax[b"size"] = str(size).encode()
        ustar_ok = False
    if ustar_ok:
        return bytes(_ustar_block(name, entry.mode, size, typeflag))
    records = b"".join(_pax_record(key, pax[key]) for key in sorted(pax))
    extended = _pax_extended_block(entry.name, len(records))
    padding = bytes(-len(records) % BLOCK_SIZE)
    main = _main_block(_to_ascii(name), entry.mode, size, typeflag, b"")
    return bytes(extended) + records + padding + bytes(main)


def write_tar(
    entries: Iterable[TarEntry],
    sink: Callable[[memoryview], object],
    *,
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
) -> int:
    """Write the tar stream of ``entries`` to ``sink`` and return the number of bytes written.

    Headers, file bytes and padding are gathered in one buffer of ``buffer_bytes`` (at least 64 KiB); file bytes
    are read into it with ``readinto``, so no file is ever held in memory whole. ``sink`` is called with a
    memoryview of that buffer, which is overwritten once ``sink`` returns: the sink must consume (hash, compress,
    write or copy) the bytes before returning and must not keep the view.

    Raises:
        PackError: a file that cannot be opened or read, or whose size differs from the one in its entry (the
            header, written first, would be wrong).
    """
    buffer = bytearray(max(buffer_bytes, _MIN_BUFFER_BYTES))

    def emit(view: memoryview, _: bytearray) -> None:
        try:
            sink(view)
        finally:
            view.release()

    return stream_tar(entries, lambda: buffer, emit)


def stream_tar(
    entries: Iterable[TarEntry],
    acquire: Callable[[], bytearray],
    emit: Callable[[memoryview, bytearray], object],
) -> int:
    """The tar stream of ``entries``, written into buffers from ``acquire`` and handed on full by ``emit``.

    ``emit(view, buffer)`` gets a view of the filled part of ``buffer`` (the whole of it, except for the last
    chunk) and owns ``buffer`` from then on (e.g. hands it to other threads, then back to its pool): the writer
    calls ``acquire`` for the next one. Returns the number of bytes written. Raises as :func:`write_tar`.
    """
    buffer = acquire()
    view = memoryview(buffer)
    capacity = len(buffer)
    fill = 0
    total = 0

    def flush() -> None:
        nonlocal buffer, view, capacity, fill
        emit(view[:fill], buffer)
        view.release()
        buffer = acquire()
        view = memoryview(buffer)
        capacity = len(buffer)
        fill = 0

    def put(data: bytes) -> None:
        nonlocal fill, total
        size = len(data)
        if size <= capacity - fill:  # the usual case: a header or padding that fits
            view[fill : fill + size] = data
            fill += size
            total += size
            return
        offset = 0
        while offset < size:
            if fill == capacity:
                flush()
            count = min(size - offset, capacity - fill)
            view[fill : fill + count] = data[offset : offset + count]
            fill += count
            offset += count
        total += size

    try:
        for entry in entries:
            put(tar_header_blocks(entry))
            if entry.is_dir:
                continue  # kit opens every regular file, empty ones too
            try:
                source = open(entry.path, "rb", buffering=0)  # noqa: SIM115 - closed below, hot loop
            except OSError as err:
                raise PackError(f"failed to open file for archiving: {entry.name}: {_reason(err)}") from None
            with source:
                remaining = entry.size
                while remaining:
                    if fill == capacity:
                        flush()
                    want = min(remaining, capacity - fill)
                    try:
                        count = source.readinto(view[fill : fill + want])
                    except OSError as err:
                        raise PackError(f"failed to add file to archive: {entry.name}: {_reason(err)}") from None
                    if not count:
                        raise PackError(
                            f"file {entry.name} shrank while being archived: expected {entry.size} bytes, "
                            f"read {entry.size - remaining}"
                        )
                    fill += count
                    remaining -= count
                if source.read(1):
                    raise PackError(f"file {entry.name} grew while being archived: expected {entry.size} bytes")
            total += entry.size
            padding = -entry.size % BLOCK_SIZE
            if padding:
                put(_ZERO_BLOCK[:padding])
        put(END_OF_ARCHIVE)
        if fill:
            emit(view[:fill], buffer)
    finally:
        view.release()
    return total


# --- header blocks ---------------------------------------------------------------------------------------------------


def _fast_block(name: bytes, mode: int, size: int, is_dir: bool) -> bytes:
    """The USTAR block of an ASCII name of at most 100 bytes: bytes joined, no field-by-field work."""
    mode_field = b"%07o\x00" % mode
    size_field = b"%011o\x00" % size
    typeflag = b"5" if is_dir else b"0"
    checksum = _CONSTANT_SUM + sum(name) + sum(mode_field) + sum(size_field) + typeflag[0]
    return b"".join((
        name, bytes(_NAME_SIZE - len(name)), mode_field, _OWNER_FIELDS, size_field, _MTIME_FIELD,
        b"%06o\x00 " % checksum, typeflag, _TAIL,
    ))



def _ustar_block(name: bytes, mode: int, size: int, typeflag: int) -> bytearray:
    prefix = b""
    split = _split_ustar_path(name)
    if split is not None:
        prefix, name = split
    return _main_block(name, mode, size, typeflag, prefix)


def _main_block(name: bytes, mode: int, size: int, typeflag: int, prefix: bytes) -> bytearray:
    """The entry's own block (Go ``templateV7Plus`` + USTAR magic); ``name`` is already what the field gets."""
    block = bytearray(BLOCK_SIZE)
    _put_string(block, 0, _NAME_SIZE, name)
    _put_octal(block, 100, 8, mode)
    _put_octal(block, 108, 8, _UID)
    _put_octal(block, 116, 8, _GID)
    _put_octal(block, 124, 12, size)
    _put_octal(block, 136, 12, 0)  # mtime: kit zeroes it, Go writes the Unix epoch
    block[156] = typeflag
    block[257:265] = b"ustar\x0000"
    _put_octal(block, 329, 8, 0)  # devmajor
    _put_octal(block, 337, 8, 0)  # devminor
    _put_string(block, 345, _PREFIX_SIZE, prefix)
    _put_checksum(block)
    return block


def _pax_extended_block(name: str, data_size: int) -> bytearray:
    """The ``x`` header before a PAX entry (Go ``writeRawFile``): no owner, times or device numbers."""
    head, _, base = name.rpartition("/")
    parts = [head + "/" if head else "", "PaxHeaders.0", base]
    first = next(index for index, part in enumerate(parts) if part)
    raw = _to_ascii(os.fsencode(clean_path("/".join(parts[first:]))))[:_NAME_SIZE].rstrip(b"/")
    block = bytearray(BLOCK_SIZE)
    _put_string(block, 0, _NAME_SIZE, raw)
    _put_octal(block, 100, 8, 0)
    _put_octal(block, 108, 8, 0)
    _put_octal(block, 116, 8, 0)
    _put_octal(block, 124, 12, data_size)
    _put_octal(block, 136, 12, 0)
    block[156] = 0x78  # 'x'
    block[257:265] = b"ustar\x0000"
    _put_checksum(block)
    return block


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"<len> <key>=<value>\\n"`` where ``<len>`` counts the whole record, itself included."""
    size = len(key) + len(value) + 3
    size += len(str(size))
    record = b"%d %s=%s\n" % (size, key, value)
    if len(record) != size:
        record = b"%d %s=%s\n" % (len(record), key, value)
    return record


def _split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go ``splitUSTARPath``: prefix and name parts at the last usable ``/``, or None."""
    length = len(name)
    if length <= _NAME_SIZE or not _is_ascii(name):
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1] == 0x2F:
        length -= 1
    index = name.rfind(b"/", 0, length)
    suffix_len = len(name) - index - 1
    if index <= 0 or suffix_len > _NAME_SIZE or suffix_len == 0 or index > _PREFIX_SIZE:
        return None
    return name[:index], name[index + 1 :]


def _put_string(block: bytearray, offset: int, width: int, text: bytes) -> None:
    """Go ``formatString``: copy (truncating), NUL-terminate when there is room, and never end a cut name in ``/``."""
    block[offset : offset + min(len(text), width)] = text[:width]
    if len(text) > width and block[offset + width - 1] == 0x2F:
        block[offset + len(text[: width - 1].rstrip(b"/"))] = 0


def _put_octal(block: bytearray, offset: int, width: int, value: int) -> None:
    """Go ``formatOctal``: zero-padded octal digits and a NUL; a value that does not fit is written as zero."""
    if value < 0 or value >= 8 ** (width - 1):
        value = 0
    block[offset : offset + width] = b"%0*o\x00" % (width - 1, value)


def _put_checksum(block: bytearray) -> None:
    block[148:156] = b"        "
    block[148:156] = b"%06o\x00 " % sum(block)


def _is_ascii(name: bytes) -> bool:
    return name.isascii() and 0 not in name


def _to_ascii(name: bytes) -> bytes:
    if _is_ascii(name):
        return name
    return bytes(byte for byte in name if 0 < byte < 0x80)


def _reason(err: OSError) -> str:
    reason = err.strerror or str(err)
    return reason[:1].lower() + reason[1:]
