"""``pymodelkit pack DIR --no-store``: prints the digest a real pack stores (the bare digest with -q), notes on stderr
that nothing was stored and whether the time is in the digest, stores nothing, and keeps pack's one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pymodelkit.cli.main import main

DIGEST = r"sha256:[0-9a-f]{64}"


def _tree(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: demo\nmodel:\n  path: model\n")
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_pack_no_store_prints_the_digest_a_pack_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path / "src")
    home = tmp_path / "home"
    code, out, err = _run(capsys, "--config", str(home), "pack", str(src), "-t", "demo:v1", "--no-store",
                          "--no-digest-cache")
    assert code == 0, err
    assert re.fullmatch(f"Model digest: {DIGEST}\n", out)
    assert err == ("Nothing stored (--no-store); SOURCE_DATE_EPOCH is not set, so the manifest digest includes the "
                   "current time\n")
    assert not home.exists()

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    code, out, err = _run(capsys, "--config", str(home), "pack", str(src), "-t", "demo:v1", "--no-store")
    assert code == 0 and err == "Nothing stored (--no-store)\n"
    dry = out.split()[-1]
    assert not (home / "storage").exists()
    code, out, _ = _run(capsys, "--config", str(home), "-q", "pack", str(src), "-t", "demo:v1", "--no-store")
    assert code == 0 and out == f"{dry}\n"  # -q: the digest alone, for $(...)
    code, out, _ = _run(capsys, "--config", str(home), "pack", str(src), "-t", "demo:v1")
    assert code == 0 and out == f"Model saved: {dry}\n"


def test_pack_no_store_quiet_prints_only_the_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _tree(tmp_path / "src")
    code, out, err = _run(capsys, "--config", str(tmp_path / "home"), "-q", "pack", str(src), "--no-store")
    assert code == 0 and re.fullmatch(f"{DIGEST}\n", out) and err == ""


def test_pack_no_store_errors_stay_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    src = _tree(tmp_path / "src")
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: nowhere\n")
    code, out, err = _run(capsys, "--config", str(home), "pack", str(src), "--no-store")
    assert (code, out) == (8, "")
    assert err == "pymodelkit: error: error processing model: path nowhere does not exist\n"
    code, out, err = _run(capsys, "--config", str(home), "pack", str(tmp_path / "missing"), "--no-store")
    assert code == 2 and out == "" and "does not exist" in err
    code, _, err = _run(capsys, "--config", str(home), "pack", str(src), "-t", "demo:v1,-bad", "--no-store")
    assert code != 0 and err == ("pymodelkit: error: invalid tag '-bad': must match "
                                 "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\n")
    code, _, err = _run(capsys, "--config", str(home), "pack", str(src), "--no-store", "--push")
    assert code == 2 and "--push needs --tag" in err
    assert not home.exists()


def test_pack_help_says_what_no_store_does(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "pack", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Store nothing: print the digest this pack would have" in text
    assert "unless SOURCE_DATE_EPOCH is set" in text
