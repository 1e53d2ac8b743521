"""Whether the tests' file system takes ``O_DIRECT``, for the tests of the direct-I/O writer and its users: they
assert what the platform allows and skip, saying why, only what needs a direct sink."""

from __future__ import annotations

import functools
import os
import tempfile

from pymodelkit.store.directio import DirectSink

__all__ = ["NO_DIRECT", "direct_io_available"]

NO_DIRECT = "O_DIRECT is not available on this file system"


@functools.cache
def direct_io_available(directory: str | None = None) -> bool:
    """Whether a file in ``directory`` (default: the temp dir) can be written with ``O_DIRECT`` (not on macOS, nor on
    tmpfs before Linux 6.6, nor on some FUSE file systems)."""
    fd, name = tempfile.mkstemp(dir=directory)
    try:
        sink = DirectSink.open(fd)
        if sink is None:
            return False
        sink.close()
        return True
    finally:
        os.close(fd)
        os.unlink(name)
