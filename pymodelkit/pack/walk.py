"""The entries of one tar layer, in kit's order: a reproduction of kit's ``filepath.Walk`` over the context.

Implements spec ``kitops-modelkit.md`` §2.4: the whole context is walked depth-first with each directory's names in
byte order, entries are kept when they share a directory tree with the layer path (kit's ``sameDirTree``, including
its ``..``-substring bug), when they are regular files or directories, are no OS junk files and are not excluded by
the :class:`~pymodelkit.pack.ignore.IgnoreMatcher`. Header bytes are :mod:`pymodelkit.pack.tarstream`'s business.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pymodelkit.errors import PackError
from pymodelkit.kitfile.paths import clean_path, is_os_junk, is_within
from pymodelkit.pack.ignore import IgnoreMatcher

__all__ = ["TarEntry", "walk_layer"]

logger = logging.getLogger(__name__)

# kit's ignore.OsSpecificFiles (PR #1099), compared with strings.EqualFold.


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One entry of a tar layer.

    ``name`` is the context-relative path with ``/`` separators and no trailing slash; ``path`` the file's absolute
    path; ``mode`` the permission bits plus setuid/setgid/sticky (no file-type bits); ``size`` 0 for directories.
    ``stat_key`` is what the digest cache compares to tell that a file has not changed: (mtime_ns, ctime_ns, inode,
    device, st_mode, size) from the walk's ``lstat``; empty for entries made elsewhere.
    """

    name: str
    path: str | Path  # a str from the walk (a Path per file costs more than its lstat)
    is_dir: bool
    mode: int
    size: int
    stat_key: tuple[int, ...] = field(default=(), compare=False)


def walk_layer(
    context: Path,
    layer_path: str,
    matcher: IgnoreMatcher,
    *,
    on_warning: Callable[[str], None] | None = None,
    layer_type: str = "model",
) -> Iterator[TarEntry]:
    """Return the entries of the tar layer for ``layer_path`` (a Kitfile path, relative to ``context``).

    The checks kit makes before walking run now: a layer path matched by the ignore rules produces the warning
    ``<layer_type> layer path <P> ignored by kitignore``, and a missing path raises. The walk itself is lazy; it
    lists one directory at a time. Warnings (symlinks skipped, paths dropped by kit's ``..`` bug) go to
    ``on_warning``, or to this module's logger when it is None. When the walk has yielded no file bytes at all,
    it ends with kit's warning ``No files detected in <layer_type> layer with path <P>`` (kit computes that in a
    separate pass before packing, counting OS junk files and ``..``-dropped files too).

    Raises:
        PackError: ``error processing <layer_type>: path <P> does not exist`` (or ``is neither a file nor a
            directory``); while iterating, a directory that cannot be listed or an entry that cannot be stat'ed
            anywhere in the context (kit fails the same way).
    """
    warn = on_warning if on_warning is not None else logger.warning
    base = clean_path(layer_path)
    root = os.fspath(Path(context).absolute())
    if matcher.matches(base, base):
        warn(f"{layer_type} layer path {base} ignored by kitignore")
    try:
        info = os.stat(os.path.join(root, base))
    except FileNotFoundError:
        raise PackError(f"error processing {layer_type}: path {base} does not exist", path=base) from None
    except OSError as err:
        raise PackError(f"error processing {layer_type}: stat {base}: {_reason(err)}", path=base) from None
    if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
        raise PackError(f"error processing {layer_type}: path {base} is neither a file nor a directory", path=base)
    return _walk(root, base, matcher, warn, f"No files detected in {layer_type} layer with path {base}")


def _walk(
    root: str, base: str, matcher: IgnoreMatcher, warn: Callable[[str], None], empty_warning: str
) -> Iterator[TarEntry]:
    file_bytes = 0
    # Each stack frame is the sorted listing of one directory that is being visited, and the next index into it.
    stack: list[tuple[str, list[str], int]] = [("", _list_dir(root, "."), 0)]
    while stack:
        prefix, names, index = stack[-1]
        if index == len(names):
            stack.pop()
            continue
        stack[-1] = (prefix, names, index + 1)
        name = names[index]
        rel = prefix + name
        full = os.path.join(root, rel)
        try:
            info = os.lstat(full)
        except OSError as err:
            raise PackError(f"lstat {rel}: {_reason(err)}", path=rel) from None
        mode = info.st_mode
        is_dir = stat.S_ISDIR(mode)
        # filepath.Walk reads a directory's names before it calls the walk function on the directory.
        children = _list_dir(full, rel) if is_dir else None
        if not _same_dir_tree(base, rel, warn):
            continue
        if not is_dir and not stat.S_ISREG(mode):
            if stat.S_ISLNK(mode):
                warn(f"Skipping symlink {rel} (symlinks are not supported)")
            else:
                logger.debug("Skipping file %s (not a regular file)", rel)
            continue
        if is_os_junk(name):
            logger.debug("Skipping file %s: OS-specific file", rel)
            continue
        if matcher.matches(rel, base):
            if is_dir and matcher.has_exclusions:
                stack.append((rel + "/", children or [], 0))
            logger.debug("Skipping %s: ignored", rel)
            continue
        key = (info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev, mode, info.st_size)
        if is_dir:
            yield TarEntry(rel, full, True, stat.S_IMODE(mode), 0, key)
            stack.append((rel + "/", children or [], 0))
        else:
            file_bytes += info.st_size
            yield TarEntry(rel, full, False, stat.S_IMODE(mode), info.st_size, key)
    if file_bytes == 0:
        warn(empty_warning)


def _list_dir(path: str, rel: str) -> list[str]:
    try:
        names = os.listdir(path)
    except OSError as err:
        raise PackError(f"open {rel}: {_reason(err)}", path=rel) from None
    names.sort(key=os.fsencode)  # Go sorts the byte strings
    return names


def _same_dir_tree(base: str, rel: str, warn: Callable[[str], None]) -> bool:
    """kit's ``sameDirTree``: false only when both relative paths contain ``..`` as a substring (or Rel fails)."""
    # The usual case, the walk inside the layer path: Rel(rel, base) is all ``..``, Rel(base, rel) is the tail.
    inside = base == "." or (rel.startswith(base) and rel[len(base) : len(base) + 1] == "/")
    if inside and ".." not in (rel if base == "." else rel[len(base) + 1 :]):
        return True
    to_rel = _go_rel(base, rel)
    to_base = _go_rel(rel, base)
    if to_rel is None or to_base is None:
        warn(f"Cannot compare directories {base} and {rel}, skipping path")
        return False
    if ".." in to_rel and ".." in to_base:
        if is_within(rel, base) or is_within(base, rel):
            warn(f"Skipping {rel}: kit drops paths whose path relative to {base} contains '..'")
        return False
    return True


def _go_rel(base: str, targ: str) -> str | None:
    """Go's ``filepath.Rel`` on Unix (lexical) for already cleaned paths; None where Go returns an error."""
    if targ == base:
        return "."
    if base == ".":
        base = ""
    if base.startswith("/") != targ.startswith("/"):
        return None
    base_len, targ_len = len(base), len(targ)
    b0 = bi = t0 = ti = 0
    while True:
        while bi < base_len and base[bi] != "/":
            bi += 1
        while ti < targ_len and targ[ti] != "/":
            ti += 1
        if targ[t0:ti] != base[b0:bi]:
            break
        if bi < base_len:
            bi += 1
        if ti < targ_len:
            ti += 1
        b0, t0 = bi, ti
    if base[b0:bi] == "..":
        return None
    if b0 != base_len:
        up = ".." + "/.." * base.count("/", b0, base_len)
        return up + "/" + targ[t0:] if t0 != targ_len else up
    return targ[t0:]


def _reason(err: OSError) -> str:
    reason = err.strerror or str(err)
    return reason[:1].lower() + reason[1:]
