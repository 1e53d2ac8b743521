"""Safe extraction of one layer (tar or raw) and of the Kitfile into an unpack directory (spec §7, §2.8, §2.12).

``scan_tar`` validates a whole tar stream without writing anything; ``check_tar_target`` checks its entries against
the target directory; ``extract_tar`` writes them. Only regular files and directories are accepted (kit's rule);
every path component is opened relative to a directory descriptor with ``O_NOFOLLOW``, so no write ever goes through
a symlink, whether it came from the archive or was already in the target. Every file is written under a temporary
name in its directory and renamed into place once complete, and an :class:`~pymodelkit.unpack.journal.UnpackJournal`
records what was created, so a failed or interrupted extraction removes it again (§7.5). Which layers to extract, and
digest verification, are the caller's. One module past the usual size on purpose: the checks and the writes that
rely on them are reviewed together.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard

from pymodelkit._atomic import write_all
from pymodelkit.errors import ModelKitError, NotFoundError, UnpackError, UnsafeArchiveError
from pymodelkit.kitfile.paths import clean_path, is_local_path
from pymodelkit.pack.compression import open_decompressing_reader
from pymodelkit.unpack.journal import Parts, UnpackJournal

__all__ = [
    "KITFILE_NAME",
    "TarMember",
    "check_tar_target",
    "extract_raw",
    "extract_tar",
    "scan_tar",
    "write_kitfile",
]

logger = logging.getLogger(__name__)

KITFILE_NAME = "Kitfile"
DEFAULT_RAW_MODE = 0o644
_PARENT_DIR_MODE = 0o755
_COPY_BUFFER_BYTES = 1 << 20
_PERMISSION_BITS = 0o777

_ACCEPTED_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_TYPE_NAMES = {
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "GNU sparse file",
}

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class TarMember:
    """One accepted tar entry: cleaned ``name`` (``model/a.bin``), kind, permission bits, size in bytes."""

    name: str
    is_dir: bool
    mode: int
    size: int


def scan_tar(stream: BinaryIO, *, compression: str = "none") -> list[TarMember]:
    """Validate every entry of a tar layer without writing anything, reading ``stream`` to its end.

    ``compression`` is the layer's (``none``, ``gzip``, ``zstd``). PAX and GNU long-name headers are metadata and
    accepted; a PAX *global* header is refused as kit refuses it (``unrecognized type in archive``).

    Raises:
        UnsafeArchiveError: an absolute name, a ``..`` element, an empty name, any entry that is not a regular file
            or a directory, an entry below a file or a directory where a file was, or a malformed archive.
            Attribute ``entry`` names the entry.
    """
    reader = open_decompressing_reader(compression, stream)
    members: list[TarMember] = []
    kinds: dict[str, bool] = {}  # cleaned name -> is_dir, for conflicts between entries
    for info in _iter_tar(reader):
        member = _member_of(info)
        _check_conflicts(member, info.name, kinds)
        members.append(member)
    _drain(reader)
    return members


def check_tar_target(
    members: Sequence[TarMember], target: Path, *, overwrite: bool = False, ignore_existing: bool = False
) -> None:
    """Check that ``members`` can be extracted into ``target`` as it is now, without touching it.

    Applies the rules of :func:`extract_tar` (including a file repeated in the archive) so that a layer that
    would fail half-way fails before its first byte is written.

    Raises:
        UnsafeArchiveError: a path component inside ``target`` is a symlink.
        UnpackError: a file exists (without ``overwrite``/``ignore_existing``), or is in the way of a directory.
    """
    planned: dict[str, bool] = {}  # cleaned name -> is_dir, for entries this layer creates
    for member in members:
        if member.name == ".":
            continue
        parts = member.name.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            st = _lstat(target / prefix)
            if st is None:
                planned.setdefault(prefix, True)
            elif stat.S_ISLNK(st.st_mode):
                raise _symlink_error(member.name, prefix)
            elif not stat.S_ISDIR(st.st_mode):
                raise UnpackError(f"path '{prefix}' already exists and is not a directory", path=prefix)
        st = _lstat(target / member.name)
        if member.is_dir:
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise _symlink_error(member.name, member.name)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise UnpackError(f"path '{member.name}' already exists and is not a directory", path=member.name)
            planned.setdefault(member.name, True)
            continue
        exists = st is not None or member.name in planned
        if exists and not ignore_existing:
            if not overwrite:
                raise UnpackError(f"path '{member.name}' already exists", path=member.name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise _symlink_error(member.name, member.name)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise UnpackError(f"path '{member.name}' already exists and is not a regular file", path=member.name)
        planned.setdefault(member.name, False)


def extract_tar(
    stream: BinaryIO,
    target: Path,
    *,
    overwrite: bool = False,
    ignore_existing: bool = False,
    compression: str = "none",
    members: Sequence[TarMember] | None = None,
    journal: UnpackJournal | None = None,
) -> list[Path]:
    """Extract a tar layer's regular files and directories under ``target``; return the files written, in order.

    Kit's rules (§7): a directory is created with its header mode if missing; a file that exists is skipped with
    ``ignore_existing``, refused without ``overwrite``, and with it must be a regular file, which is replaced and
    keeps its permission bits. New files get the header mode's permission bits (umask applies), parents 0755;
    mtime and owner are not restored. Each file is written under a temporary name and renamed into place once
    complete, so no file is ever seen truncated under its real name.

    ``members`` is the result of :func:`scan_tar` from an earlier pass (the stream must yield the same entries).
    Without it a seekable ``stream`` is scanned first and rewound. Either way :func:`check_tar_target` runs before
    anything is written. A non-seekable stream without ``members`` is validated entry by entry while writing.

    ``journal`` records what is created, for the caller to roll back (an unpack of several layers). Without one,
    any failure, ``KeyboardInterrupt`` included, removes every file and directory this call created, so ``target``
    is left as it was (files replaced with ``overwrite`` keep their new content).

    Raises:
        UnsafeArchiveError: as :func:`scan_tar`, a symlink met in ``target``, or a stream that differs from
            ``members``.
        UnpackError: as :func:`check_tar_target`, or a file whose data ends early.
        ModelKitError: the operating system refused a write; the message names the full path.
    """
    target = Path(target)
    if members is None and _is_seekable(stream):
        start = stream.tell()
        members = scan_tar(stream, compression=compression)
        stream.seek(start)
    if members is not None:
        check_tar_target(members, target, overwrite=overwrite, ignore_existing=ignore_existing)

    reader = open_decompressing_reader(compression, stream)
    written: list[Path] = []
    kinds: dict[str, bool] = {}
    buffer = bytearray(_COPY_BUFFER_BYTES)
    with _journal_for(target, journal) as active:
        root_fd = _open_target(target)
        try:
            count = 0
            tar = _open_tar(reader)
            for info in _iter_open_tar(tar):
                member = _member_of(info)
                _check_conflicts(member, info.name, kinds)
                if members is not None and (count >= len(members) or members[count] != member):
                    raise UnsafeArchiveError(
                        f"layer changed since it was scanned: unexpected entry {info.name}", entry=info.name
                    )
                count += 1
                try:
                    if member.is_dir:
                        _make_dir(root_fd, member, info.name, active)
                        continue
                    source = tar.extractfile(info) if tar is not None else None
                    assert source is not None  # regular members always have a data stream
                    if _write_file(root_fd, member, info.name, source, buffer, overwrite, ignore_existing, active):
                        written.append(target / member.name)
                except _MalformedTar as exc:
                    raise UnsafeArchiveError(
                        f"malformed tar layer in entry '{info.name}': {exc}", entry=info.name
                    ) from None
                except OSError as exc:
                    verb = "create directory" if member.is_dir else "write"
                    raise _os_error(verb, target, member.name, exc) from None
            if members is not None and count != len(members):
                raise UnsafeArchiveError("layer changed since it was scanned: entries missing", entry="")
            _drain(reader)
        finally:
            os.close(root_fd)
    return written


def extract_raw(
    stream: BinaryIO,
    target: Path,
    *,
    file_path: str,
    metadata_json: str | None,
    expected_size: int | None,
    overwrite: bool = False,
    ignore_existing: bool = False,
    compression: str = "none",
    journal: UnpackJournal | None = None,
) -> Path:
    """Write a raw layer to ``target/<file_path>`` and return that path.

    ``file_path`` is the ``org.cncf.model.filepath`` annotation, validated like a tar name. ``metadata_json`` is the
    ``org.cncf.model.file.metadata+json`` annotation: its ``mode`` gives the permission bits (default 0644) and its
    ``size`` must match, as must ``expected_size`` when given. Existing files follow the tar rules; an existing file
    skipped with ``ignore_existing`` is returned unread. The data goes to a temporary file in the same directory,
    renamed into place only once complete; ``journal`` is as for :func:`extract_tar`, so a short or interrupted
    layer leaves neither the file nor the directories made for it.

    Raises:
        UnsafeArchiveError: a bad path, a symlink in the way, or metadata that is not a regular file.
        UnpackError: an existing file (see :func:`extract_tar`), bad metadata, or a size mismatch
            (attributes ``expected``, ``actual``).
        ModelKitError: the operating system refused a write; the message names the full path.
    """
    target = Path(target)
    name = _check_name(file_path, is_dir=False)
    mode, meta_size = _parse_raw_metadata(metadata_json, file_path)
    parts = name.split("/")

    def fill(fd: int) -> None:
        size = _copy(open_decompressing_reader(compression, stream), fd, bytearray(_COPY_BUFFER_BYTES))
        for expected in (meta_size, expected_size):
            if expected is not None and size != expected:
                raise UnpackError(
                    f"raw layer {file_path} is {size} bytes, expected {expected}",
                    path=file_path,
                    expected=expected,
                    actual=size,
                )

    with _journal_for(target, journal) as active:
        root_fd = _open_target(target)
        try:
            parent_fd = _open_parent(root_fd, parts, file_path, _PARENT_DIR_MODE, active)
            try:
                if _existing_file_is_skipped(parent_fd, parts[-1], file_path, overwrite, ignore_existing):
                    return target / name
                _install(parent_fd, tuple(parts), mode, file_path, active, fill)
            finally:
                os.close(parent_fd)
        except _MalformedTar as exc:
            raise UnsafeArchiveError(f"malformed raw layer {file_path}: {exc}", entry=file_path) from None
        except OSError as exc:
            raise _os_error("write", target, name, exc) from None
        finally:
            os.close(root_fd)
    logger.debug("unpacked raw layer to %s", name)
    return target / name


def write_kitfile(target: Path, yaml_text: str, *, overwrite: bool, journal: UnpackJournal | None = None) -> Path:
    """Write ``target/Kitfile`` (0644, umask applies) and return its path.

    An existing Kitfile must be a regular file; without ``overwrite`` it is accepted only if byte-identical (then it
    is left untouched); with it, it is replaced and keeps its permission bits. Written under a temporary name and
    renamed, with ``journal`` as for :func:`extract_tar`.

    Raises:
        UnpackError: the path is not a regular file, or differs from ``yaml_text`` without ``overwrite``.
        ModelKitError: the operating system refused the write; the message names the full path.
    """
    target = Path(target)
    data = yaml_text.encode("utf-8")
    path = target / KITFILE_NAME

    def fill(fd: int) -> None:
        write_all(fd, data)

    with _journal_for(target, journal) as active:
        root_fd = _open_target(target)
        try:
            st = _lstat_at(root_fd, KITFILE_NAME)
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise UnpackError(f"path {path} exists and is not a regular file", path=str(path))
                if not overwrite:
                    if _read_at(root_fd, KITFILE_NAME, len(data) + 1) == data:
                        logger.info("Found existing Kitfile at %s", path)
                        return path
                    raise UnpackError("Kitfile exists and does not match model's Kitfile", path=str(path))
            _install(root_fd, (KITFILE_NAME,), 0o644, KITFILE_NAME, active, fill)
        except OSError as exc:
            raise _os_error("write", target, KITFILE_NAME, exc) from None
        finally:
            os.close(root_fd)
    return path


# --- reading tar headers ---------------------------------------------------------------------------------------


# tarfile's header errors are public names without stubs in typeshed.
_EOF_HEADER_ERROR: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_EMPTY_HEADER_ERROR: type[Exception] = tarfile.EmptyHeaderError  # type: ignore[attr-defined]
_INVALID_HEADER_ERROR: type[Exception] = tarfile.InvalidHeaderError  # type: ignore[attr-defined]


class _MalformedTar(Exception):
    """Layer bytes that do not decode: a corrupt header (which tarfile would take for the end) or bad compression."""


# What reading a damaged layer raises: tarfile, gzip (OSError, EOFError), zlib and zstandard errors.
_READ_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError)
_DAMAGED_LAYER_ERRORS: tuple[type[Exception], ...] = (_MalformedTar, *_READ_ERRORS)


class _StrictTarInfo(tarfile.TarInfo):
    """TarInfo that reports a corrupt header instead of ending the archive there, and refuses negative sizes."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _StrictTarInfo:
        info: _StrictTarInfo = super().frombuf(buf, encoding, errors)
        if info.size < 0:
            raise _INVALID_HEADER_ERROR("negative size")
        return info

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> _StrictTarInfo:
        try:
            info: _StrictTarInfo = super().fromtarfile(tarfile_)
        except (_EOF_HEADER_ERROR, _EMPTY_HEADER_ERROR):
            raise  # a zero block, or the stream's end: the archive ends here, as in Go's archive/tar
        except tarfile.HeaderError as exc:
            raise _MalformedTar(str(exc)) from None
        return info


def _open_tar(reader: IO[bytes]) -> tarfile.TarFile | None:
    """A stream-mode TarFile over ``reader``; None for an empty stream (Go reads it as an archive of no entries)."""
    counted = _CountingReader(reader)
    try:
        return tarfile.open(fileobj=counted, mode="r|", tarinfo=_StrictTarInfo)  # type: ignore[call-overload,no-any-return]
    except tarfile.ReadError as exc:
        if counted.count == 0:
            return None
        raise UnsafeArchiveError(f"malformed tar layer: {exc}", entry="") from None
    except _DAMAGED_LAYER_ERRORS as exc:
        raise UnsafeArchiveError(f"malformed tar layer: {exc}", entry="") from None


def _iter_tar(reader: IO[bytes]) -> Iterator[tarfile.TarInfo]:
    yield from _iter_open_tar(_open_tar(reader))


def _iter_open_tar(tar: tarfile.TarFile | None) -> Iterator[tarfile.TarInfo]:
    if tar is None:
        return
    last = ""
    while True:
        try:
            info = tar.next()
        except _DAMAGED_LAYER_ERRORS as exc:
            raise UnsafeArchiveError(f"malformed tar layer after entry '{last}': {exc}", entry=last) from None
        if info is None:
            if tar.pax_headers:
                raise UnsafeArchiveError("unrecognized type in archive: PAX global header", entry=last)
            return
        if tar.pax_headers:
            # Go's archive/tar returns a global header as an entry and kit refuses it; tarfile folds it away.
            raise UnsafeArchiveError(
                f"unrecognized type in archive: PAX global header before {info.name}", entry=info.name
            )
        last = info.name
        yield info


class _CountingReader:
    """Pass-through reader that counts the bytes it handed out (to tell an empty layer from a broken one)."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        return data


def _member_of(info: tarfile.TarInfo) -> TarMember:
    if info.type == tarfile.DIRTYPE:
        return TarMember(
            name=_check_name(info.name, is_dir=True), is_dir=True, mode=info.mode & _PERMISSION_BITS, size=0
        )
    if info.type in _ACCEPTED_FILE_TYPES:
        return TarMember(
            name=_check_name(info.name, is_dir=False), is_dir=False, mode=info.mode & _PERMISSION_BITS, size=info.size
        )
    kind = _TYPE_NAMES.get(info.type, f"typeflag {info.type!r}")
    raise UnsafeArchiveError(
        f"unrecognized type in archive: {info.name} ({kind})", entry=info.name, typeflag=info.type.decode("latin-1")
    )


def _check_name(raw: str, *, is_dir: bool) -> str:
    """The cleaned name of an entry, or UnsafeArchiveError when it could land outside the target."""
    if raw == "":
        raise UnsafeArchiveError("illegal file path: (empty name)", entry=raw)
    if "\x00" in raw:
        raise UnsafeArchiveError(f"illegal file path: {raw!r}: NUL in name", entry=raw)
    if raw.startswith("/"):
        raise UnsafeArchiveError(f"illegal file path: {raw}: absolute paths are not supported", entry=raw)
    if not is_local_path(raw):
        raise UnsafeArchiveError(f"illegal file path: {raw}: layer paths must stay within context directory", entry=raw)
    if ".." in raw.split("/"):
        raise UnsafeArchiveError(f"illegal file path: {raw}: path contains a '..' element", entry=raw)
    cleaned = clean_path(raw)
    if not is_dir and (cleaned == "." or raw.endswith("/")):
        raise UnsafeArchiveError(f"illegal file path: {raw}: not a file name", entry=raw)
    return cleaned


def _check_conflicts(member: TarMember, raw: str, kinds: dict[str, bool]) -> None:
    """Refuse an entry that needs a directory where an earlier entry is a file, or the reverse."""
    parts = member.name.split("/")
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if kinds.get(prefix) is False:
            raise UnsafeArchiveError(
                f"illegal file path: {raw}: '{prefix}' is a file earlier in the archive", entry=raw
            )
        kinds.setdefault(prefix, True)
    previous = kinds.get(member.name)
    if previous is not None and previous != member.is_dir:
        raise UnsafeArchiveError(f"illegal file path: {raw}: both a file and a directory in the archive", entry=raw)
    kinds[member.name] = member.is_dir


def _is_seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _drain(reader: IO[bytes]) -> None:
    try:
        while reader.read(_COPY_BUFFER_BYTES):
            pass
    except _READ_ERRORS as exc:
        raise UnsafeArchiveError(f"malformed layer after its last entry: {exc}", entry="") from None


# --- writing under a directory descriptor ------------------------------------------------------------------------


@contextlib.contextmanager
def _journal_for(target: Path, journal: UnpackJournal | None) -> Iterator[UnpackJournal]:
    """The caller's journal, or one of this call's own that is rolled back on any exception."""
    if journal is not None:
        yield journal
        return
    own = UnpackJournal(target)
    try:
        yield own
    except BaseException:
        own.rollback()
        raise


def _open_parent(root_fd: int, parts: list[str], raw: str, mode: int, journal: UnpackJournal) -> int:
    """Open (creating with ``mode``) every directory above the last of ``parts``, never following a symlink."""
    fd = os.dup(root_fd)
    try:
        for depth in range(1, len(parts)):
            next_fd = _open_dir(fd, tuple(parts[:depth]), raw, mode, journal)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mkdir(parent_fd: int, dir_parts: Parts, mode: int, journal: UnpackJournal) -> bool:
    """Make the directory ``dir_parts`` (recorded in ``journal``); False when something is there already."""
    recorded = journal.will_make_dir(dir_parts)  # before mkdir, so an interrupt just after it leaves it findable
    try:
        os.mkdir(dir_parts[-1], mode, dir_fd=parent_fd)
    except FileExistsError:
        if recorded:
            journal.forget(dir_parts)
        return False
    return True


def _open_dir(parent_fd: int, dir_parts: Parts, raw: str, mode: int, journal: UnpackJournal) -> int:
    part, shown = dir_parts[-1], "/".join(dir_parts)
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        _mkdir(parent_fd, dir_parts, mode, journal)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        st = _lstat_at(parent_fd, part)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise _symlink_error(raw, shown) from None
        raise UnpackError(f"path '{shown}' already exists and is not a directory", path=shown) from None


def _make_dir(root_fd: int, member: TarMember, raw: str, journal: UnpackJournal) -> None:
    if member.name == ".":
        return
    parts = member.name.split("/")
    parent_fd = _open_parent(root_fd, parts, raw, member.mode, journal)
    try:
        if _mkdir(parent_fd, tuple(parts), member.mode, journal):
            logger.debug("created directory %s", member.name)
            return
        st = _lstat_at(parent_fd, parts[-1])
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise _symlink_error(raw, member.name)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise UnpackError(f"path '{raw}' already exists and is not a directory", path=raw)
    finally:
        os.close(parent_fd)


def _write_file(
    root_fd: int,
    member: TarMember,
    raw: str,
    source: IO[bytes],
    buffer: bytearray,
    overwrite: bool,
    ignore_existing: bool,
    journal: UnpackJournal,
) -> bool:
    """Write one regular entry; False when an existing file was skipped."""
    parts = member.name.split("/")

    def fill(fd: int) -> None:
        size = _copy(source, fd, buffer)
        if size != member.size:
            raise UnpackError(f"could not unpack file {raw}", path=raw, expected=member.size, actual=size)

    parent_fd = _open_parent(root_fd, parts, raw, _PARENT_DIR_MODE, journal)
    try:
        if _existing_file_is_skipped(parent_fd, parts[-1], raw, overwrite, ignore_existing):
            logger.debug("file %s already exists; skipping", raw)
            return False
        _install(parent_fd, tuple(parts), member.mode, raw, journal, fill)
    finally:
        os.close(parent_fd)
    return True


def _install(
    parent_fd: int, parts: Parts, mode: int, raw: str, journal: UnpackJournal, fill: Callable[[int], None]
) -> None:
    """Write a file through ``fill`` under a temporary name next to ``parts``, then rename it to ``parts``.

    A regular file already there (allowed by the caller) is replaced and keeps its permission bits and, where the
    system allows, its owner. Anything else in the way is refused; a symlink is never followed.
    """
    base = parts[-1]
    existing = _lstat_at(parent_fd, base)
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        if stat.S_ISLNK(existing.st_mode):
            raise _symlink_error(raw, raw)
        raise UnpackError(f"path '{raw}' already exists and is not a regular file", path=raw)
    temp = f".pymodelkit-{secrets.token_hex(8)}.partial"
    temp_parts = (*parts[:-1], temp)
    journal.will_create_temp(temp_parts)  # before the file exists: an interrupt at any point leaves it findable
    try:
        fd = os.open(temp, _TEMP_FLAGS, mode & _PERMISSION_BITS, dir_fd=parent_fd)
        try:
            if existing is not None:
                _keep_attributes(fd, existing)
            fill(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if existing is None or journal.created(parts):
            journal.will_rename_to(parts, (st.st_dev, st.st_ino))
        os.rename(temp, base, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except BaseException:
        _unlink_quietly(temp, parent_fd)
        raise
    journal.forget(temp_parts)


def _keep_attributes(fd: int, existing: os.stat_result) -> None:
    """Give a replacement file the permission bits (and, if allowed, owner) of the file it replaces, as kit's
    ``O_TRUNC`` open keeps them."""
    if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
    os.fchmod(fd, stat.S_IMODE(existing.st_mode) & _PERMISSION_BITS)


def _existing_file_is_skipped(parent_fd: int, base: str, raw: str, overwrite: bool, ignore_existing: bool) -> bool:
    st = _lstat_at(parent_fd, base)
    if st is None:
        return False
    if ignore_existing:
        return True
    if not overwrite:
        raise UnpackError(f"path '{raw}' already exists", path=raw)
    if stat.S_ISLNK(st.st_mode):
        raise _symlink_error(raw, raw)
    if not stat.S_ISREG(st.st_mode):
        raise UnpackError(f"path '{raw}' already exists and is not a regular file", path=raw)
    return False


def _copy(source: IO[bytes], fd: int, buffer: bytearray) -> int:
    """Stream ``source`` into ``fd`` through ``buffer``; return the byte count."""
    view = memoryview(buffer)
    total = 0
    readinto = getattr(source, "readinto", None)
    while True:
        try:
            if readinto is not None:
                n = readinto(view) or 0
                chunk = view[:n] if n else None
            else:
                data = source.read(len(buffer))
                n = len(data)
                chunk = memoryview(data) if n else None
        except _READ_ERRORS as exc:
            raise _MalformedTar(str(exc) or type(exc).__name__) from None
        if chunk is None:
            return total
        while chunk:
            done = os.write(fd, chunk)
            chunk = chunk[done:]
        total += n


def _parse_raw_metadata(metadata_json: str | None, file_path: str) -> tuple[int, int | None]:
    if metadata_json is None:
        return DEFAULT_RAW_MODE, None
    try:
        meta: Any = json.loads(metadata_json)
    except ValueError as exc:
        raise UnpackError(f"invalid file metadata annotation for {file_path}: {exc}", path=file_path) from None
    if not isinstance(meta, dict):
        raise UnpackError(f"invalid file metadata annotation for {file_path}: not an object", path=file_path)
    mode = meta.get("mode", DEFAULT_RAW_MODE)
    size = meta.get("size")
    typeflag = meta.get("typeflag", 0)
    for key, value in (("mode", mode), ("size", size), ("typeflag", typeflag)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise UnpackError(f"invalid file metadata annotation for {file_path}: bad {key}", path=file_path)
    if typeflag != 0:
        raise UnsafeArchiveError(f"unrecognized type in raw layer: {file_path} (typeflag {typeflag})", entry=file_path)
    return mode & _PERMISSION_BITS, size


def _open_target(target: Path) -> int:
    try:
        return os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"unpack directory {target} does not exist", path=str(target)) from None
    except NotADirectoryError:
        raise UnpackError(f"unpack directory {target} is not a directory", path=str(target)) from None
    except OSError as exc:
        raise _os_error("open unpack directory", target, "", exc) from None


def _symlink_error(raw: str, component: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"illegal file path: {raw}: '{component}' is a symlink in the target directory", entry=raw
    )


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        raise _os_error("access", path.parent, path.name, exc) from None


def _os_error(verb: str, target: Path, name: str, exc: OSError) -> ModelKitError:
    """A one-line error for an operating-system failure at ``target/name``, naming the full path."""
    path = os.path.join(os.path.abspath(target), name) if name and name != "." else os.path.abspath(target)
    return ModelKitError(f"cannot {verb} {path}: {exc.strerror or exc}", path=path, errno=exc.errno)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _read_at(dir_fd: int, name: str, limit: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb", closefd=True) as source:
        return source.read(limit)


def _unlink_quietly(name: str, dir_fd: int) -> None:
    """Remove a temporary file on the way out of a failure; the journal's rollback tries again if this fails."""
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
