"""Small ModelKit source trees for the registry flow tests, and reading a tree back for comparison."""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import tarfile
from pathlib import Path

__all__ = [
    "CHURN_KITFILE", "flip_blob_byte", "pattern_bytes", "read_tree", "snapshot_tree", "unique_repo",
    "write_source_tree",
]

CHURN_KITFILE = """manifestVersion: 1.0.0
package:
  name: churn
model:
  name: churn
  path: model
code:
  - path: src
datasets:
  - name: train
    path: data/train.csv
"""  # for :func:`write_source_tree`; in the order kit writes a Kitfile back, so an unpacked tree equals the source


def write_source_tree(root: Path, kitfile: str, *, weights: int) -> Path:
    """``root/src-tree`` with ``model/weights.bin`` (``weights`` deterministic bytes), ``data/train.csv``,
    ``src/train.py`` and the given Kitfile. Returns the tree's path."""
    src = root / "src-tree"
    (src / "model").mkdir(parents=True)
    (src / "data").mkdir()
    (src / "src").mkdir()
    rng = hashlib.sha256(b"seed")
    blob = bytearray()
    while len(blob) < weights:
        rng.update(b"x")
        blob += rng.digest() * 64
    (src / "model" / "weights.bin").write_bytes(bytes(blob[:weights]))
    (src / "data" / "train.csv").write_text("a,b\n1,2\n" * 500)
    (src / "src" / "train.py").write_text("print('train')\n")
    (src / "Kitfile").write_text(kitfile)
    return src


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root``: relative path → bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def unique_repo(prefix: str, name: str) -> str:
    """A repository name no other test uses on the shared session registry."""
    return f"{prefix}/{name}-{secrets.token_hex(4)}"


def pattern_bytes(size: int, seed: bytes) -> bytes:
    """``size`` deterministic bytes: the SHA-256 of ``seed`` repeated (a 64 KiB block), cut to size."""
    block = hashlib.sha256(seed).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def flip_blob_byte(archive: Path, digest_hex: str, out: Path) -> None:
    """Write ``out``: the OCI archive ``archive`` with the middle byte of its blob ``digest_hex`` flipped."""
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"blobs/sha256/{digest_hex}")
    data[member.offset_data + member.size // 2] ^= 0xFF
    out.write_bytes(bytes(data))


def snapshot_tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root`` (not following symlinks) with its kind, permission bits and content: a link's
    target, a file's bytes."""
    result: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = path.relative_to(root).as_posix()
        if stat.S_ISLNK(st.st_mode):
            result[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            result[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            result[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return result
