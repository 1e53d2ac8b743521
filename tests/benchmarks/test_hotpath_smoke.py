"""``benchmarks/hotpath.py --quick`` runs end to end (about 20 s) and reports what the issue asks for: every row,
a re-push that sends nothing, peak RSS within the limit for push and pull, and an exit status that says whether any
operation of ours went over it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("hotpath", ROOT / "benchmarks" / "hotpath.py")
assert _spec is not None and _spec.loader is not None
hotpath = importlib.util.module_from_spec(_spec)
sys.modules["hotpath"] = hotpath  # dataclasses look their module up while the class body is built
_spec.loader.exec_module(hotpath)


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
    judged = {verdict["target"] for verdict in report["targets"]}
    assert judged == {target.wording for target in hotpath.TARGETS} | {"peak RSS <= 100 MiB, every operation"}
    assert all(isinstance(verdict["met"], bool) and verdict["ratio"] > 0 for verdict in report["targets"])


def test_rotated_rounds_pair_each_run_with_the_reference_of_its_round(tmp_path: Path) -> None:
    bench = hotpath.Bench(tmp_path, "127.0.0.1:1", "http://127.0.0.1:1", repeat=3)
    order: list[str] = []
    ours, reference = hotpath.Figure("ours", 100), hotpath.Figure("reference", 100)
    seconds = {"ours": iter([1.0, 2.0, 1.0]), "reference": iter([2.0, 2.0, 4.0])}

    def once(name: str) -> Any:
        order.append(name)
        return hotpath.Run(next(seconds[name]), 0.0, None)

    bench.measure([(ours, lambda: once("ours")), (reference, lambda: once("reference"))], rotate=True)
    assert order == ["ours", "reference", "reference", "ours", "ours", "reference"]
    # per round: 2.0x, 1.0x, 4.0x -> the median is 2.0x; the best of each is 1.0 s against 2.0 s, also 2.0x
    assert ours.paired_ratio(reference) == 2.0
    assert ours.mb_s / reference.mb_s == 2.0
    lone = hotpath.Figure("measured apart", 100, [hotpath.Run(1.0, 0.0, None)])
    assert ours.paired_ratio(lone) is None
