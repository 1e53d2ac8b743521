"""The CLI end to end: each command's output, one-line errors with their exit codes, and no change on failure."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from pymodelkit.cli.main import main


def _tree(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    (root / "README.md").write_text("# demo\n")
    (root / "Kitfile").write_text(
        "manifestVersion: 1.0.0\n"
        "package:\n  name: demo\n  authors: [Ada]\n"
        "model:\n  name: m\n  path: model\n"
        "datasets:\n  - name: train\n    path: data/train.csv\n"
        "docs:\n  - path: README.md\n"
    )
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _store_files(home: Path) -> dict[str, bytes]:
    storage = home / "storage"
    if not storage.exists():
        return {}
    return {str(p.relative_to(storage)): p.read_bytes() for p in storage.rglob("*") if p.is_file()}


def test_pack_list_info_inspect_unpack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _tree(tmp_path / "src")
    code, out, err = _run(capsys, "pack", str(src), "-t", "demo:v1")
    assert code == 0, err
    assert out.startswith("Model saved: sha256:")
    digest = out.split()[-1]

    code, out, _ = _run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]
    assert lines[1].split()[:4] == ["demo", "v1", "Ada", "demo"]
    assert lines[1].endswith(digest)

    code, out, _ = _run(capsys, "list", "--format", "json")
    rows = json.loads(out)
    assert [(r["repo"], r["tags"], r["digest"], r["modelName"], r["author"]) for r in rows] == [
        ("demo", ["v1"], digest, "demo", "Ada")
    ]

    code, out, _ = _run(capsys, "info", "demo:v1")
    assert code == 0
    assert "name: demo" in out and "path: data/train.csv" in out and "digest" not in out

    code, out, _ = _run(capsys, "inspect", "demo:v1")
    doc = json.loads(out)
    assert doc["digest"] == digest
    assert [layer["mediaType"] for layer in doc["manifest"]["layers"]] == [
        "application/vnd.kitops.modelkit.model.v1.tar",
        "application/vnd.kitops.modelkit.dataset.v1.tar",
        "application/vnd.kitops.modelkit.docs.v1.tar",
    ]
    assert doc["kitfile"]["model"]["digest"] == doc["manifest"]["layers"][0]["digest"]

    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "unpack", "demo:v1", "-d", str(out_dir))
    assert code == 0, err
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert files == ["Kitfile", "README.md", "data/train.csv", "model/weights.bin"]
    assert (out_dir / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 1000


def test_unpack_filter_selects_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _tree(tmp_path / "src")
    assert _run(capsys, "pack", str(src), "-t", "demo:v1")[0] == 0
    out_dir = tmp_path / "out"
    code, _, err = _run(capsys, "unpack", "demo:v1", "-d", str(out_dir), "--filter", "datasets:train")
    assert code == 0, err
    assert sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file()) == ["data/train.csv"]


def test_tag_remove_and_fsck(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _tree(tmp_path / "src")
    assert _run(capsys, "pack", str(src), "-t", "demo:v1")[0] == 0
    code, out, _ = _run(capsys, "tag", "demo:v1", "demo:v2")
    assert (code, out.strip()) == (0, "Modelkit demo:v1 tagged as demo:v2")
    code, out, _ = _run(capsys, "remove", "demo:v1")
    assert (code, out.strip()) == (0, "Untagged demo:v1")
    code, out, _ = _run(capsys, "remove", "demo:v2")
    assert code == 0 and out.startswith("Removed demo@sha256:")
    code, out, _ = _run(capsys, "list", "--format", "json")
    assert json.loads(out) == []
    code, out, _ = _run(capsys, "fsck")
    assert (code, out.strip()) == (0, "local store is consistent")


def test_list_of_a_tag_prints_what_the_library_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``list REPO:TAG`` is one call of ``catalog.list_modelkits``: the same rows, printed byte for byte."""
    from pymodelkit.catalog import format_list_json, format_list_table, list_modelkits
    from pymodelkit.store import LocalStore

    assert _run(capsys, "pack", str(_tree(tmp_path / "src")), "-t", "demo:v1,stable")[0] == 0
    store = LocalStore()
    [row] = list_modelkits(store, "demo:stable")
    assert row.tags == ("stable",)
    code, out, err = _run(capsys, "list", "demo:stable")
    assert (code, err) == (0, "")
    assert out == format_list_table([row])
    assert out.splitlines()[1].split() == ["demo", "stable", "Ada", "demo", *out.splitlines()[1].split()[4:6],
                                           str(row.digest)]
    code, out, _ = _run(capsys, "list", "demo:v1", "--format", "json")
    assert (code, out) == (0, format_list_json(list_modelkits(store, "demo:v1")) + "\n")
    assert [(r["repo"], r["tags"]) for r in json.loads(out)] == [("demo", ["v1"])]


@pytest.mark.parametrize(
    ("kitfile", "code", "fragment"),
    [
        ("manifestVersion: 1.0.0\nmodel:\n  path: model\n  nmae: x\n", 3, "nmae"),
        ("manifestVersion: 1.0.0\nmodel:\n  path: /abs/model\n", 3, "absolute paths are not supported"),
        ("manifestVersion: 1.0.0\nmodel:\n  path: missing-dir\n", 8, "missing-dir"),
    ],
)
def test_pack_errors_are_one_line_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kitfile: str, code: int, fragment: str
) -> None:
    src = _tree(tmp_path / "src")
    assert _run(capsys, "pack", str(src), "-t", "demo:v1")[0] == 0
    home = Path(os.environ["KITOPS_HOME"])
    before = _store_files(home)
    (src / "Kitfile").write_text(kitfile)
    got, out, err = _run(capsys, "pack", str(src), "-t", "demo:v1")
    assert got == code
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("pymodelkit: error: ")
    assert fragment in err
    assert "Traceback" not in err
    assert _store_files(home) == before


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("info", "demo"), 4, "missing tag or digest"),
        (("inspect", "nothing:here"), 5, "nothing:here"),
        (("unpack", "Bad:Ref"), 4, "lowercase"),
        (("remove", "demo"), 4, "tag or digest is required when removing"),
    ],
)
def test_reference_errors(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], code: int, fragment: str) -> None:
    got, out, err = _run(capsys, *args)
    assert (got, out) == (code, "")
    assert len(err.strip().splitlines()) == 1 and fragment in err


def test_unpack_refuses_to_overwrite_then_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _tree(tmp_path / "src")
    assert _run(capsys, "pack", str(src), "-t", "demo:v1")[0] == 0
    out_dir = tmp_path / "out"
    (out_dir / "model").mkdir(parents=True)
    (out_dir / "model" / "weights.bin").write_bytes(b"mine")
    code, _, err = _run(capsys, "unpack", "demo:v1", "-d", str(out_dir))
    assert code == 9 and "already exists" in err
    assert (out_dir / "model" / "weights.bin").read_bytes() == b"mine"
    code, _, err = _run(capsys, "unpack", "demo:v1", "-d", str(out_dir), "-i")
    assert code == 0, err
    assert (out_dir / "model" / "weights.bin").read_bytes() == b"mine"
    code, _, err = _run(capsys, "unpack", "demo:v1", "-d", str(out_dir), "-o")
    assert code == 0, err
    assert (out_dir / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 1000


def test_kitfile_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path / "src")
    monkeypatch.setattr("sys.stdin", io.StringIO("manifestVersion: 1.0.0\nmodel:\n  path: model\n"))
    code, out, err = _run(capsys, "pack", str(src), "-f", "-", "-t", "stdin:v1")
    assert code == 0, err
    code, out, _ = _run(capsys, "inspect", "stdin:v1")
    assert len(json.loads(out)["manifest"]["layers"]) == 1


def test_fsck_reports_a_corrupt_blob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _tree(tmp_path / "src")
    assert _run(capsys, "pack", str(src), "-t", "demo:v1")[0] == 0
    blobs = Path(os.environ["KITOPS_HOME"]) / "storage" / "blobs" / "sha256"
    victim = max(blobs.iterdir(), key=lambda p: p.stat().st_size)
    os.chmod(victim, 0o600)
    victim.write_bytes(b"\x00" * victim.stat().st_size)
    code, out, err = _run(capsys, "fsck")
    assert code == 10
    assert f"problem: corrupt blob sha256:{victim.name}" in out
    assert err.strip() == "pymodelkit: error: local store has 1 problems (listed above)"


def test_kit_spelling_of_tls_verify_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    # kit writes --tls-verify=false; it must parse (no usage error, exit 2) and reach the network: port 1 refuses.
    code, _, err = _run(capsys, "pull", "--tls-verify=false", "--plain-http", "127.0.0.1:1/team/m:v1")
    assert code == 11, err
    assert "127.0.0.1:1" in err and "no such option" not in err
    code, _, err = _run(capsys, "pull", "--tls-verify=sometimes", "127.0.0.1:1/team/m:v1")
    assert code == 2 and "tls-verify" in err
