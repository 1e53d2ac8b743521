"""Which files under ``storage/ingest/`` are live, for ``fsck`` and ``gc`` (spec ``kitops-modelkit.md`` §3.1:
``ingest/`` holds the files being written, emptied after each pull; a crash leaves strays there, which ``gc`` removes).

A file is live while some process holds an exclusive ``flock`` on it: a :class:`~pymodelkit.store.ingest.BlobWriter`
holds one on its own ingest file. A *parked* file (``<name>.held-<token>``: a verified blob whose writer gave its
descriptor back, or a hard link being put in the store) is live while its hold file ``pymodelkit_hold-<token>`` is:
one flocked file per ingest directory and process, counted (:class:`Hold`), so any number of parked files cost one
descriptor.

Creating a live file takes two steps, ``open(O_CREAT | O_EXCL)`` and ``flock``, and a ``gc`` (which runs under the
store lock; writers do not take it) may look at the file in between. So both sides follow one rule: the creator takes
a *blocking* ``flock`` and then checks that the path still names its inode (:func:`create_locked`; else it starts
over under a fresh name), and ``gc`` unlinks a stray only while it holds the flock it probed it with, after checking
the path still names the file it locked (:func:`remove_stray`). A creator that was probed meanwhile either finds its
file in place, and holds the lock before ``gc`` can decide again, or finds it unlinked and tries another name.

Hold files survive ``fork`` correctly: a hold records the process that made it; the child closes the descriptors it
inherited (so the lock goes when the parent dies) and never releases or removes the parent's holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["HOLD_PREFIX", "INGEST_PREFIX", "Hold", "create_locked", "held_name", "is_ingest_live", "remove_stray"]

INGEST_PREFIX = "pymodelkit_"
HOLD_PREFIX = f"{INGEST_PREFIX}hold-"
_PARKED_RE = re.compile(rf"^{INGEST_PREFIX}(?:link_)?[0-9a-f]+\.held-([0-9a-f]+)$")


def held_name(name: str, token: str) -> str:
    """The name of ``name`` kept live by the hold ``token`` (``<name>.held-<token>``); ``name`` is
    ``pymodelkit_<hex>`` or ``pymodelkit_link_<hex>``."""
    return f"{name}.held-{token}"


def create_locked(directory: Path, name: Callable[[], str]) -> tuple[Path, int]:
    """Create a new file ``directory/name()`` (``O_EXCL``, mode ``0600``, opened for writing) holding an exclusive
    ``flock`` on it; returns its path and descriptor. A ``gc`` that removed the file before the lock was ours (see the
    module docstring) makes it start over under another ``name()``. Nothing is left when it raises."""
    while True:
        path = directory / name()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if fcntl is None or _locked_in_place(fd, path):
                return path, fd
        except BaseException:
            with contextlib.suppress(OSError):
                if _names(path, os.fstat(fd)):
                    os.unlink(path)
            os.close(fd)
            raise
        os.close(fd)  # a gc took it for a stray and removed it: another name


def _locked_in_place(fd: int, path: Path) -> bool:
    """Lock ``fd`` (blocking: a probe holds the lock for an instant) and tell whether ``path`` still names it."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    st = os.fstat(fd)
    return st.st_nlink > 0 and _names(path, st)


def _names(path: Path, st: os.stat_result) -> bool:
    """Whether ``path`` names the file ``st`` describes."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


class Hold:
    """One flocked file per ingest directory in this process that keeps its parked ingest files live for fsck/gc
    (:func:`is_ingest_live`); counted, it is removed and closed when the last user releases it. Thread-safe.

    The registry's lock is re-entrant: a parked writer dropped as cyclic garbage releases its hold from ``__del__``,
    which the garbage collector may run on a thread that is inside :meth:`acquire` already.
    """

    _lock: ClassVar[threading.RLock] = threading.RLock()
    _holds: ClassVar[dict[str, Hold]] = {}

    def __init__(self, directory: Path) -> None:
        path, fd = create_locked(directory, lambda: f"{HOLD_PREFIX}{secrets.token_hex(8)}")
        self._fd: int | None = fd  # None once closed (released, or inherited through fork)
        self.path = path
        self.token = path.name.removeprefix(HOLD_PREFIX)
        self._key = str(directory)
        self._pid = os.getpid()
        self._count = 0

    @classmethod
    def acquire(cls, directory: Path) -> Hold:
        """The hold of ``directory`` (made on first use), counted once more. Raises the OSError of making it."""
        key = str(directory)
        with cls._lock:
            hold = cls._holds.get(key)
            if hold is not None:
                hold._count += 1
                if hold._fd is not None:
                    return hold
                hold._count -= 1  # a finalizer released it between the lookup and the count: make a new one
            hold = cls(directory)
            cls._holds[key] = hold
            hold._count += 1
            return hold

    def release(self) -> None:
        """Count one user less; remove the hold file with the last one. A hold this process inherited through
        ``fork`` is the parent's: nothing is done."""
        with self._lock:
            if self._pid != os.getpid() or self._fd is None:
                return
            self._count -= 1
            if self._count > 0:
                return
            if self._holds.get(self._key) is self:
                del self._holds[self._key]
            fd, self._fd = self._fd, None
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)  # still locked: a probe sees it live or not at all
            finally:
                os.close(fd)

    @classmethod
    def _before_fork(cls) -> None:
        cls._lock.acquire()

    @classmethod
    def _after_fork_in_parent(cls) -> None:
        cls._lock.release()

    @classmethod
    def _after_fork_in_child(cls) -> None:
        """The parent's holds stay the parent's: close the descriptors we inherited (a lock must not outlive the
        process that holds it) and start afresh."""
        for hold in cls._holds.values():
            fd, hold._fd = hold._fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        cls._holds = {}
        cls._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=Hold._before_fork, after_in_parent=Hold._after_fork_in_parent, after_in_child=Hold._after_fork_in_child
    )


def is_ingest_live(path: Path) -> bool:
    """Tell whether a writer (in any process) still holds ``path``; a file nobody holds is a stray. A parked file
    is held by its hold file."""
    if fcntl is None:  # pragma: no cover - Windows: cannot tell, assume live
        return True
    parked = _PARKED_RE.match(path.name)
    if parked is not None:
        return os.path.lexists(path) and is_ingest_live(path.with_name(f"{HOLD_PREFIX}{parked.group(1)}"))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def remove_stray(path: Path) -> bool:
    """Unlink ``path`` (under ``ingest/``) if it is a stray, deciding under the flock of the probe and unlinking
    before that lock goes: a writer that made the file but does not hold its lock yet then finds it gone and makes
    another (:func:`create_locked`). A parked file is decided under its hold file's lock. Returns whether it was
    removed (not when live, gone, or no longer the file probed). Raises the OSError of the unlink, but not ENOENT."""
    if fcntl is None:  # pragma: no cover - Windows: cannot tell, assume live
        return False
    parked = _PARKED_RE.match(path.name)
    probed = path.with_name(f"{HOLD_PREFIX}{parked.group(1)}") if parked is not None else path
    try:
        fd = os.open(probed, os.O_RDONLY)
    except OSError:  # gone (a parked file's hold: the file is a stray), or not a file any writer of ours holds
        return _unlink(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not _names(probed, os.fstat(fd)):
            return False  # replaced since it was opened: a later gc decides
        return _unlink(path)
    finally:
        os.close(fd)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
