"""The store lock: one writer at a time across threads and processes, held around index and tags updates.

An ``RLock`` serialises threads of this process (and lets a holder re-enter); the outermost holder also takes an
exclusive ``fcntl.flock`` on ``storage/.pymodelkit.lock``, which serialises processes. ``flock`` locks belong to the
open file, so two :class:`StoreLock` objects in one process exclude each other too. On NFS and other filesystems
where ``flock`` silently succeeds, only the in-process part holds. kit itself takes no lock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

from pymodelkit.store.layout import check_storage_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: only the in-process lock holds
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock"]


class StoreLock:
    """A re-entrant lock on one store. Use as a context manager; the lock file is created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, blocking until it is free. Creates the lock file's directory when needed."""
        self._rlock.acquire()
        try:
            if self._depth == 0:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                except (FileExistsError, NotADirectoryError):
                    check_storage_dir(self.path.parent)  # the store, or a parent, is a file: say so
                    raise
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise

    def release(self) -> None:
        """Release one level of the lock; the file lock goes with the outermost level."""
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._rlock.release()
