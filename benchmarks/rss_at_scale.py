"""Peak RSS far past the hot-path benchmark's 4 GiB: pack of a 100 GiB model, and a streamed push and a pull of 8 GiB.

Usage: python benchmarks/rss_at_scale.py [--pack-gib 100] [--transfer-gib 8] [--dir DIR]

The models are sparse files (``truncate``): they take no disk, and their holes read as zeros, so the pack runs at
SHA-256's speed with no disk read. Measured: ``pack(no_store=True)`` of the large one (digests only: a 100 GiB model
needs no 100 GiB of store), then ``pack_and_push(no_store=True)`` of the other to a local registry (started through
``tests/support/registry.py``, as ``hotpath.py`` does; the registry does store it, so it needs that much disk) and its
``pull`` into a fresh store (the same again). Each call runs in a child process of its own (this script with
``--child``) that reports its time and its peak RSS (``VmHWM``). Exit status 1 when a peak RSS is over 100 MiB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 1 << 30
RSS_LIMIT_MIB = 100


def _peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_main(spec: dict[str, Any]) -> None:
    """One operation, timed in this process; prints its seconds, peak RSS and digest as JSON."""
    import httpcore  # noqa: F401  (imported before the clock starts, as httpx would import it inside the call)

    import pymodelkit
    from pymodelkit.pack.streampush import pack_and_push
    from pymodelkit.registry import transfer

    store = pymodelkit.LocalStore(spec["home"])
    started = time.perf_counter()
    if spec["op"] == "pack":
        digest = pymodelkit.pack(spec["context"], tag="scale:v1", store=store, compression="none",
                                 no_store=True).digest
    elif spec["op"] == "pack_and_push":
        digest = pack_and_push(spec["context"], spec["reference"], store=store, plain_http=True,
                               no_store=True).push.digest
    else:
        digest = transfer.pull(spec["reference"], store=store, plain_http=True).digest
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mib": _peak_rss_mib(), "digest": str(digest)}))


def _sparse_model(parent: Path, name: str, size: int) -> Path:
    context = parent / name
    context.mkdir()
    with open(context / "model.bin", "wb") as model:
        model.truncate(size)
    (context / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n", encoding="utf-8")
    return context


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['op']} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _report(label: str, size: int, result: dict[str, Any]) -> bool:
    within = bool(result["rss_mib"] <= RSS_LIMIT_MIB)
    print(f"  {label:<44} {result['seconds']:7.1f} s {size / 1e6 / result['seconds']:8.0f} MB/s   "
          f"peak RSS {result['rss_mib']:5.1f} MiB {'ok' if within else 'OVER'}", flush=True)
    return within


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pack-gib", type=int, default=100, help="size of the model packed with no store")
    parser.add_argument("--transfer-gib", type=int, default=8, help="size of the model pushed (streamed) and pulled")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: $TMPDIR)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(json.loads(args.child))
        return 0
    from tests.support.registry import registry_server

    ok = True
    with tempfile.TemporaryDirectory(prefix="pymodelkit-scale-", dir=args.dir) as tmp:
        work = Path(tmp)
        big, mid = args.pack_gib * GIB, args.transfer_gib * GIB
        print(f"peak RSS at scale (limit {RSS_LIMIT_MIB} MiB), sparse models in {work}", flush=True)
        result = _child({"op": "pack", "context": str(_sparse_model(work, "big", big)), "home": str(work / "h1")})
        ok &= _report(f"pack --no-store, {args.pack_gib} GiB", big, result)
        with registry_server(work / "registry") as registry:
            reference = f"{registry.host}/scale/model:v1"
            result = _child({"op": "pack_and_push", "context": str(_sparse_model(work, "mid", mid)),
                             "home": str(work / "h2"), "reference": reference})
            ok &= _report(f"pack_and_push --no-store, {args.transfer_gib} GiB", mid, result)
            result = _child({"op": "pull", "home": str(work / "h3"), "reference": reference})
            ok &= _report(f"pull, {args.transfer_gib} GiB", mid, result)
            shutil.rmtree(work / "h3", ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
