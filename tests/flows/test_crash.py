"""Killing pack at arbitrary points leaves a store that lists, checks clean, unpacks and re-packs (spec format.md,
§6.3 "Atomic write protocol")."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymodelkit

_CHILD = """
import sys
import pymodelkit
store = pymodelkit.LocalStore(sys.argv[2])
for i in range(100000):
    pymodelkit.pack(sys.argv[1], tag=f"crash:v{i % 7}", store=store)
"""


def _tree(root: Path) -> None:
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(os.urandom(3 << 20))
    for i in range(20):
        (root / "model" / f"part-{i}.txt").write_text(f"part {i}\n")
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model\n")


def test_kill_during_pack_leaves_a_consistent_store(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    home = tmp_path / "home"
    rng = random.Random(1234)
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(src), str(home)])
        time.sleep(rng.uniform(0.4, 1.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = pymodelkit.LocalStore(home)
        report = store.fsck()
        assert report.ok, report.problems
        assert report.problems == []
        for row in pymodelkit.list_modelkits(store):
            assert row.repo == "localhost/crash"

    store = pymodelkit.LocalStore(home)
    result = pymodelkit.pack(src, tag="crash:final", store=store)
    out = tmp_path / "out"
    pymodelkit.unpack("crash:final", out, store=store)
    assert (out / "model" / "weights.bin").read_bytes() == (src / "model" / "weights.bin").read_bytes()
    assert result.digest in {row.digest for row in pymodelkit.list_modelkits(store)}
    store.gc()
    after = store.fsck()
    assert after.ok and after.stray_ingest == []
