"""Pack a large file and report throughput and peak memory, against plain SHA-256 of the same bytes.

Usage: python benchmarks/pack_memory.py [--size-gib 2] [--dir DIR]

Prints, for the same file in the same run: sha256 of the file alone (readinto, 4 MiB buffer), and `pymodelkit pack`
(uncompressed tar layer into a fresh store) in a child process, with its peak RSS. The limit the issue sets is a
peak RSS under 150 MB for a 2 GiB file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RSS_LIMIT_MB = 150
_CHUNK = 4 << 20


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(_CHUNK)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            count = min(_CHUNK, size - written)
            handle.write(block[:count])
            written += count


def _sha256_seconds(path: Path) -> float:
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    hasher = hashlib.sha256()
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
    return time.perf_counter() - start


_CHILD = """
import sys, time, resource
import pymodelkit
start = time.perf_counter()
pymodelkit.pack(sys.argv[1], tag="bench:latest", store=pymodelkit.LocalStore(sys.argv[2]))
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    size = int(args.size_gib * (1 << 30))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        model = work / "model"
        model.mkdir()
        _make_file(model / "weights.bin", size)
        (model / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
        _sha256_seconds(model / "weights.bin")  # warm the page cache
        sha_s = _sha256_seconds(model / "weights.bin")
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(model), str(work / "home")],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        pack_s, rss_kib = float(out[0]), int(out[1])
    mb = size / 1e6
    rss_mb = rss_kib / 1024
    print(f"file size:           {size / (1 << 30):.2f} GiB")
    print(f"sha256 alone:        {mb / sha_s:8.1f} MB/s")
    print(f"pymodelkit pack:     {mb / pack_s:8.1f} MB/s  ({(sha_s / pack_s):.2f}x of sha256)")
    verdict = "OK" if rss_mb < RSS_LIMIT_MB else "OVER"
    print(f"pack peak RSS:       {rss_mb:8.1f} MB   (limit {RSS_LIMIT_MB} MB: {verdict})")
    return 0 if rss_mb < RSS_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
