"""Validation errors of a Kitfile read from a file name the file, the line and the element (audit P12), and a
``manifestVersion`` other than 1.0.0 only warns, as current kit does (audit P14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pymodelkit.cli.main import main
from pymodelkit.errors import KitfileError
from pymodelkit.kitfile import Dataset, Kitfile, Model, load_kitfile, read_kitfile, validate_kitfile

OUTSIDE = "manifestVersion: 1.0.0\nmodel:\n  path: ../proj/model.bin\n"
ABSOLUTE = "manifestVersion: 1.0.0\nmodel:\n  path: /etc/hostname\n"
DUPLICATE = "manifestVersion: 1.0.0\nmodel:\n  path: m.bin\ndatasets:\n  - path: m.bin\n"
SEVERAL = (
    "manifestVersion: 1.0.0\n"
    "model:\n  name: mm\n  path: m.bin\n  parts:\n    - name: tok\n      path: tok\n      type: -bad\n"
    "datasets:\n  - name: a\n    path: a\n  - name: train\n    path: ../x\n"
    "code:\n  - path: /abs\n"
)


def _error(tmp_path: Path, text: str) -> tuple[Path, KitfileError]:
    path = tmp_path / "Kitfile"
    path.write_text(text)
    with pytest.raises(KitfileError) as caught:
        validate_kitfile(read_kitfile(path))
    return path, caught.value


def test_outside_the_context_names_file_line_and_element(tmp_path: Path) -> None:
    path, err = _error(tmp_path, OUTSIDE)
    assert str(err) == (
        f"{path}:2: model: paths outside the context directory are not supported in a Kitfile "
        "(path ../proj/model.bin in model)"
    )
    assert (err.path, err.line, err.key) == (str(path), 2, "model")
    assert list(err.problems) == [
        "paths outside the context directory are not supported in a Kitfile (path ../proj/model.bin in model)"
    ]


def test_absolute_path_has_no_stray_space(tmp_path: Path) -> None:
    path, err = _error(tmp_path, ABSOLUTE)
    assert str(err) == (
        f"{path}:2: model: absolute paths are not supported in a Kitfile (path /etc/hostname in model)"
    )


def test_duplicate_path_is_located_at_the_element_that_repeats_it(tmp_path: Path) -> None:
    path, err = _error(tmp_path, DUPLICATE)
    assert str(err) == f"{path}:5: datasets[0]: model and dataset layer 0 use the same path m.bin"
    assert (err.line, err.key) == (5, "datasets[0]")


def test_several_problems_each_name_line_and_element(tmp_path: Path) -> None:
    path, err = _error(tmp_path, SEVERAL)
    assert list(err.problems) == [  # kit's words, in kit's order
        "absolute paths are not supported in a Kitfile (path /abs in code layer 0)",
        "modelpart tok has invalid type (must be alphanumeric with dots, dashes, and underscores)",
        "paths outside the context directory are not supported in a Kitfile (path ../x in dataset layer 1)",
    ]
    assert str(err) == (
        f"{path}:15: code[0]: absolute paths are not supported in a Kitfile (path /abs in code layer 0); "
        "line 6: model.parts[0] (name: tok): modelpart tok has invalid type (must be alphanumeric with dots, "
        "dashes, and underscores); "
        "line 12: datasets[1] (name: train): paths outside the context directory are not supported in a Kitfile "
        "(path ../x in dataset layer 1)"
    )


def test_loaded_text_uses_the_source_name_and_code_built_kitfiles_keep_the_plain_form() -> None:
    with pytest.raises(KitfileError) as caught:
        validate_kitfile(load_kitfile(OUTSIDE, source="<stdin>"))
    assert str(caught.value).startswith("<stdin>:2: model: paths outside the context directory")
    built = Kitfile(manifest_version="1.0.0", model=Model(path="../proj/model.bin"))
    with pytest.raises(KitfileError) as caught:
        validate_kitfile(built)
    assert str(caught.value) == (
        "invalid Kitfile: paths outside the context directory are not supported in a Kitfile "
        "(path ../proj/model.bin in model)"
    )
    assert caught.value.path is None and caught.value.line is None


def test_where_it_came_from_takes_no_part_in_equality() -> None:
    loaded = load_kitfile("manifestVersion: 1.0.0\ndatasets:\n  - name: d\n    path: d\n", source="x/Kitfile")
    assert loaded == Kitfile(manifest_version="1.0.0", datasets=[Dataset(name="d", path="d")])
    assert (loaded.source, loaded.datasets[0].line) == ("x/Kitfile", 3)
    assert loaded.copy().datasets[0].line == 3
    assert "line" not in repr(loaded.datasets[0]) and "source" not in repr(loaded)


# --- the CLI ------------------------------------------------------------------------------------------------------


def _pack(tmp_path: Path, capsys: pytest.CaptureFixture[str], kitfile: str) -> tuple[int, str, str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.bin").write_bytes(b"weights")
    (src / "Kitfile").write_text(kitfile)
    code = main(["pack", str(src), "-t", "demo:v1"])
    out, err = capsys.readouterr()
    return code, out, err, src


@pytest.mark.parametrize(
    ("kitfile", "line", "message"),
    [
        (OUTSIDE, 2, "model: paths outside the context directory are not supported in a Kitfile "
                     "(path ../proj/model.bin in model)"),
        (ABSOLUTE, 2, "model: absolute paths are not supported in a Kitfile (path /etc/hostname in model)"),
        (DUPLICATE, 5, "datasets[0]: model and dataset layer 0 use the same path m.bin"),
    ],
)
def test_pack_names_the_kitfile_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kitfile: str, line: int, message: str
) -> None:
    code, out, err, src = _pack(tmp_path, capsys, kitfile)
    assert (code, out) == (3, "")
    assert err == f"pymodelkit: error: {src / 'Kitfile'}:{line}: {message}\n"
    assert main(["list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing stored


@pytest.mark.parametrize("version_line", ["", "manifestVersion: banana\n"])
def test_pack_only_warns_about_manifest_version_as_kit_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version_line: str
) -> None:
    code, out, err, _ = _pack(tmp_path, capsys, version_line + "model:\n  path: m.bin\n")
    assert code == 0, err
    assert out.startswith("Model saved: sha256:")
    shown = "banana" if version_line else ""
    assert f"[WARN] Unrecognized manifestVersion {shown}: treating Kitfile as 1.0.0" in err.splitlines()
