"""``benchmarks/hotpath.py --quick`` runs end to end (about 20 s) and reports what the issue asks for: every row,
a re-push that sends nothing, peak RSS within the limit for push and pull, and an exit status that says whether any
operation of ours went over it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_benchmark_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "hotpath.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYMODELKIT_", "KITOPS_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hotpath.py"), "--quick", "--json", str(out),
                           "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: some peak RSS over the limit
    report = json.loads(out.read_text())
    over = sorted(key for key, value in report["peak_rss_mib"].items() if "(peer)" not in key and value > 100)
    assert over == []
    rows = {(row["group"], row["label"], row["reference"]): row for row in report["rows"]}
    labels = {label for _, label, _ in rows}
    for expected in ("pack none, random", "pack zstd, weight-like", "pack gzip-fastest, weight-like",
                     "re-pack, unchanged", "re-push, unchanged", "pymodelkit push",
                     "pymodelkit pull (digest checked, fsync)", "push 4 layers (concurrency 5)"):
        assert expected in labels
    assert rows[("again", "re-push, unchanged", "push, first run")]["note"].startswith("bytes sent: 0")
    measured = [row for row in report["rows"] if row["mb_s"] is not None]
    assert all(row["mb_s"] > 0 and (row["ratio"] is None or row["ratio"] > 0) for row in measured)
    for key in ("push 1 layer", "pull 1 layer", "push 4 layers", "pull 4 layers"):
        assert report["peak_rss_mib"][key] <= 100
    assert list(tmp_path.iterdir()) == [out]  # the work dir is gone
