"""Changing a file's bytes while keeping what a stat-keyed cache might look at: size, inode and mtime (only ctime
moves, which the kernel sets and no caller can put back)."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["overwrite_keeping_size_and_mtime"]


def overwrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Overwrite the start of ``path`` with ``data`` in place; its size, inode and mtime are as before (checked)."""
    before = path.stat()
    time.sleep(0.02)  # past the coarse timestamp tick, so the ctime moves
    with open(path, "r+b") as handle:  # same inode, same size
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back; ctime cannot be
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
