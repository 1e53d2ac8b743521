"""Write-temp-then-rename: a file is either its old content or its new content, never a mix.

An operating-system error from these writes names the file the caller asked for, never the hidden temp file beside
it (``.<name>.<random>.tmp``) and never nothing at all (a full disk's ENOSPC from ``write`` or ``fsync`` carries no
file name): the CLI prints ``<strerror> (<file>)`` (``docs/cli.md``, exit 1).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection
from pathlib import Path

__all__ = ["fsync_dir", "named_os_error", "write_all", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def named_os_error(
    exc: OSError, path: str | os.PathLike[str], internal: Collection[str | os.PathLike[str]] = ()
) -> OSError:
    """``exc`` as the same kind of error (errno, message, subclass) naming ``path``, when it names no file (ENOSPC
    from ``write``, an fd number) or only one of ``internal`` (temp files the user never typed); ``exc`` itself when
    it names another file or has no errno. Raise the result ``from exc``."""
    if exc.errno is None:
        return exc
    name = exc.filename
    if isinstance(name, (str, bytes, os.PathLike)) and os.fsdecode(name) not in {os.fsdecode(p) for p in internal}:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), os.fspath(path))


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: write a temp file beside it, fsync, chmod, rename, fsync the directory.

    On any failure ``path`` keeps its old content (or stays absent) and the temp file is removed.

    Raises:
        OSError: naming ``path`` (or the directory that could not be made), never the temp file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)  # its error names the directory that cannot be made
    try:
        fd, tmp_name = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # it names the temp file it tried to create
        raise named_os_error(exc, path, [exc.filename] if isinstance(exc.filename, str) else ()) from exc
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise named_os_error(exc, path, [tmp_name]) from exc
        raise
    fsync_dir(path.parent)
