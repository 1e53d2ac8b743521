"""What one unpack created under its target, so that a failed or interrupted unpack removes it (spec §7.5).

Every file is written under a temporary name in its own directory and renamed into place once complete. The journal
records each temporary name before the file is created, each new final name (with the file's device and inode) just
before the rename, and each directory just before it is made, so an exception at any point, ``KeyboardInterrupt``
included, leaves nothing that :meth:`UnpackJournal.rollback` cannot find. Rollback removes newest first; it opens
every directory below the target with ``O_NOFOLLOW``, removes a final file only while it is still the one written
(same device and inode), and removes directories only when empty. What existed before the unpack is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UnpackJournal"]

logger = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TARGET_DIR_MODE = 0o755

Parts = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    is_dir: bool
    identity: tuple[int, int] | None  # (st_dev, st_ino) of a final file; None: remove whatever has this name


class UnpackJournal:
    """The files and directories one unpack into ``target`` created, in order; :meth:`rollback` removes them.

    Paths are recorded as tuples of names relative to ``target``. The target itself and its missing parents are
    recorded by :meth:`make_target`.
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self._made_above: list[Path] = []  # the target and its parents that make_target created, outermost first
        self._entries: dict[Parts, _Entry] = {}

    def make_target(self) -> None:
        """Create the target directory (0755) and any missing parent, recording each one made.

        Raises:
            OSError: a directory cannot be created, or the target exists and is not a directory (the caller names
                it).
        """
        missing: list[Path] = []
        path = Path(os.path.abspath(self.target))
        while not os.path.lexists(path):
            missing.append(path)
            if path.parent == path:
                break
            path = path.parent
        for directory in reversed(missing):
            self._made_above.append(directory)  # before mkdir: an interrupt right after it still finds the directory
            try:
                os.mkdir(directory, _TARGET_DIR_MODE)
            except FileExistsError:  # made by someone else meanwhile: not ours
                self._made_above.pop()
                if not os.path.isdir(directory):
                    raise
        if not missing and not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))

    def will_make_dir(self, parts: Parts) -> bool:
        """Record a directory about to be made; False if it was recorded already. When the call recorded it and
        the directory turns out to exist, :meth:`forget` it."""
        if parts in self._entries:
            return False
        self._entries[parts] = _Entry(is_dir=True, identity=None)
        return True

    def will_create_temp(self, parts: Parts) -> None:
        """Record a temporary file name about to be created (a name nothing else uses)."""
        self._entries[parts] = _Entry(is_dir=False, identity=None)

    def will_rename_to(self, parts: Parts, identity: tuple[int, int]) -> None:
        """Record that the file with ``identity`` (device, inode) is about to be renamed to ``parts``."""
        self._entries.pop(parts, None)
        self._entries[parts] = _Entry(is_dir=False, identity=identity)

    def forget(self, parts: Parts) -> None:
        """Drop a recorded name: the directory existed already, or the temporary file was renamed."""
        self._entries.pop(parts, None)

    def created(self, parts: Parts) -> bool:
        """True when ``parts`` is a file or directory this unpack created (so replacing it touches nothing older)."""
        return parts in self._entries

    def rollback(self) -> None:
        """Remove everything recorded, newest first; what cannot be removed is logged at DEBUG and left.

        A ``KeyboardInterrupt`` during rollback does not stop it: it is raised again once everything is removed.
        """
        interrupted: KeyboardInterrupt | None = None
        pending = list(self._entries.items())
        fds: dict[Parts, int] = {}
        try:
            while pending:
                try:
                    parts, entry = pending[-1]
                    self._remove(parts, entry, fds)
                    pending.pop()
                except KeyboardInterrupt as exc:  # try the same entry again: removing twice is harmless
                    interrupted = exc
        finally:
            for fd in fds.values():
                os.close(fd)
            fds.clear()
        self._entries.clear()
        while self._made_above:
            try:
                directory = self._made_above[-1]
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
                self._made_above.pop()
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _remove(self, parts: Parts, entry: _Entry, fds: dict[Parts, int]) -> None:
        wanted = parts[:-1]
        for held in [key for key in fds if key != wanted[: len(key)]]:  # only the chain to this parent stays open
            os.close(fds.pop(held))
        parent = self._open_dir(wanted, fds)
        if parent is None:
            logger.debug("could not open %s to remove %s after a failed unpack", "/".join(wanted) or ".", parts[-1])
            return
        name = parts[-1]
        try:
            if entry.is_dir:
                os.rmdir(name, dir_fd=parent)
                return
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if entry.identity is not None and (
                not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != entry.identity
            ):
                return  # replaced since it was written: not ours any more
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.debug("could not remove %s after a failed unpack: %s", "/".join(parts), exc.strerror or exc)

    def _open_dir(self, parts: Parts, fds: dict[Parts, int]) -> int | None:
        """A descriptor of the directory ``parts`` under the target, opened without following symlinks; kept in ``fds``
        (which :meth:`_remove` trims to the chain it needs, so a tree of many directories holds a handful)."""
        if parts in fds:
            return fds[parts]
        if not parts:
            try:
                fd = os.open(self.target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return None
        else:
            parent = self._open_dir(parts[:-1], fds)
            if parent is None:
                return None
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            except OSError:
                return None
        fds[parts] = fd
        return fd
