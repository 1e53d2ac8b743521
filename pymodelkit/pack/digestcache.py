"""The digest cache: a layer whose inputs have not changed since it was last packed is reused, not re-hashed.

A layer's *key* is the SHA-256 of everything that decides its bytes: the cache format, pymodelkit's version, the layer
kind, format and compression (with the compressor's backend and version: gzip and zstd bytes depend on them), the
context and layer path, and every member of the layer in order with its tar fields (name, type, mode, size) and its
``lstat`` key (mtime and ctime in nanoseconds, inode, device, ``st_mode``, size). Ignore rules and other layers'
exclusions need no place of their own: they decide the member list, which is in the key. The value is the layer's
descriptor: media type, digest, size and diffId.

Never a digest for changed bytes:

* Any write to a file changes its mtime and ctime; restoring the mtime with ``utime`` changes the ctime, which
  cannot be set back; replacing the file changes the inode. So a file whose bytes changed has another key.
* Timestamps are coarse (the kernel stamps files with a clock that ticks every few milliseconds), so a file written
  again within the same tick as the stat pack took keeps its stat key (git's "racy" index problem). An entry is
  therefore **not recorded when any member's mtime or ctime is less than** :data:`RACY_WINDOW_NS` **(2 s) before pack
  stat'ed the layer's inputs** (before reading any of them; or in the future): such a layer is hashed again next
  time, until its files are 2 s older than the walk.

The cache is one JSON file, ``$KITOPS_HOME/pymodelkit-cache/digests.json`` beside ``storage/`` (kit ignores it),
replaced whole by an atomic rename after each pack; it keeps the :data:`MAX_ENTRIES` most recently recorded
layers. A file that does not parse, or entries of the wrong shape, count as an empty cache. Concurrent packs may
overwrite each other's new entries (a lost entry costs a re-hash, nothing else). A hit is used only when the blob is
still in the store with that size (or, for a streaming push, when the registry has it). Spec: none (pymodelkit's
own; the layer bytes it stands for are ``kitops-modelkit.md`` §2.6-§2.8).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymodelkit._atomic import write_atomic
from pymodelkit._version import __version__
from pymodelkit.oci.digest import Digest
from pymodelkit.pack.walk import TarEntry

__all__ = ["CACHE_DIR", "MAX_ENTRIES", "RACY_WINDOW_NS", "CachedLayer", "DigestCache", "layer_key", "stat_entry"]

logger = logging.getLogger(__name__)

CACHE_DIR = "pymodelkit-cache"
CACHE_FILE = "digests.json"
MAX_ENTRIES = 2048
RACY_WINDOW_NS = 2_000_000_000
_FORMAT = 1
_KEY_FORMAT = 2  # how layer_key encodes the members (1: a JSON array per member)
_KEY_BATCH = 4096  # members hashed at a time


@dataclass(frozen=True, slots=True)
class CachedLayer:
    """A layer descriptor as the cache keeps it."""

    media_type: str
    digest: Digest
    size: int
    diff_id: Digest


def layer_key(inputs: dict[str, str], members: Iterable[TarEntry]) -> tuple[str, int]:
    """The cache key of a layer, and the newest mtime/ctime (ns) among its members.

    ``inputs`` are the layer's other inputs (kind, format, compression and backend, context, path); ``members`` its
    tar entries (or the one raw file) in order, each with its ``stat_key``.
    """
    hasher = hashlib.sha256()
    header = {**inputs, "cache-format": _FORMAT, "key": _KEY_FORMAT, "version": __version__}  # inputs have "format"
    hasher.update(json.dumps(header, sort_keys=True).encode())
    newest = 0
    lines: list[str] = []
    for entry in members:
        key = entry.stat_key
        if not key:
            raise ValueError(f"entry {entry.name} has no stat key")
        if "\0" in entry.name:
            raise ValueError(f"entry {entry.name!r} has a NUL in its name")
        newest = max(newest, key[0], key[1])
        # NUL-separated: a path cannot hold a NUL, and the rest are integers, so the line is unambiguous.
        lines.append(f"\n{entry.name}\0{'d' if entry.is_dir else 'f'}\0{entry.mode}\0{entry.size}\0"
                     + "\0".join(map(str, key)))
        if len(lines) == _KEY_BATCH:
            hasher.update("".join(lines).encode("utf-8", "surrogateescape"))
            lines.clear()
    hasher.update("".join(lines).encode("utf-8", "surrogateescape"))
    return hasher.hexdigest(), newest


class DigestCache:
    """The digest cache file of one kit home. Thread-safe; nothing is written until :meth:`save`."""

    def __init__(self, path: Path, *, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries = _load(path)
        self._new: dict[str, dict[str, Any]] = {}

    @classmethod
    def for_home(cls, home: Path) -> DigestCache:
        """The cache of the kit home ``home`` (``home/pymodelkit-cache/digests.json``)."""
        return cls(home / CACHE_DIR / CACHE_FILE)

    def lookup(self, key: str) -> CachedLayer | None:
        """The descriptor recorded under ``key``, or None."""
        with self._lock:
            raw = self._new.get(key) or self._entries.get(key)
        if raw is None:
            return None
        try:
            return CachedLayer(str(raw["mediaType"]), Digest.parse(str(raw["digest"])), int(raw["size"]),
                               Digest.parse(str(raw["diffId"])))
        except (KeyError, TypeError, ValueError):
            return None

    def record(self, key: str, layer: CachedLayer, newest_ns: int, stat_ns: int | None = None) -> bool:
        """Record ``layer`` under ``key`` unless a member changed less than :data:`RACY_WINDOW_NS` before its
        inputs were stat'ed (``stat_ns``, default now; ``newest_ns`` is their newest mtime/ctime): a file changed
        within one timestamp tick of being read could change again unseen. Returns whether it was recorded."""
        now = time.time_ns()
        if newest_ns > min(now, stat_ns if stat_ns else now) - RACY_WINDOW_NS:
            logger.debug("not caching layer %s: a file changed less than %.1f s ago", layer.digest.short(),
                         RACY_WINDOW_NS / 1e9)
            return False
        with self._lock:
            self._new[key] = {"mediaType": layer.media_type, "digest": str(layer.digest), "size": layer.size,
                              "diffId": str(layer.diff_id), "recorded": now}
        return True

    def save(self) -> None:
        """Merge the new entries into the file (re-read now: another pack may have written it), keep the newest
        :attr:`max_entries`, and replace it atomically. Failure to write is logged, not raised."""
        with self._lock:
            if not self._new:
                return
            merged = {**_load(self.path), **self._new}
            self._new = {}
        if len(merged) > self.max_entries:
            newest = sorted(merged.items(), key=lambda item: _recorded(item[1]), reverse=True)[: self.max_entries]
            merged = dict(newest)
        data = json.dumps({"format": _FORMAT, "entries": merged}, sort_keys=True, separators=(",", ":")).encode()
        try:
            write_atomic(self.path, data, mode=0o600)
        except OSError as exc:
            logger.warning("cannot write the digest cache %s: %s", self.path, exc)
            return
        with self._lock:
            self._entries = merged


def _recorded(raw: dict[str, Any]) -> int:
    value = raw.get("recorded")
    return value if isinstance(value, int) else 0


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        return {}
    entries = document.get("entries")
    if not isinstance(entries, dict):
        return {}
    return {key: value for key, value in entries.items() if isinstance(key, str) and isinstance(value, dict)}


def stat_entry(name: str, path: str | os.PathLike[str], info: os.stat_result) -> TarEntry:
    """A :class:`TarEntry` standing for one raw file, with its stat key, for :func:`layer_key`."""
    return TarEntry(name, Path(path), False, info.st_mode & 0o7777, info.st_size,
                    (info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev, info.st_mode, info.st_size))
