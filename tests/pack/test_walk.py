"""Tests for pymodelkit.pack.walk: kit's walk order, relevance test, skips and exclusions (spec §2.4)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from pymodelkit.errors import PackError
from pymodelkit.kitfile.paths import clean_path
from pymodelkit.pack.ignore import IgnoreMatcher
from pymodelkit.pack.walk import TarEntry, walk_layer

# kit's upstream pack-unpack cases (provenance in that directory's README.md), shared with tests/flows.
DATA = Path(__file__).resolve().parent.parent / "data" / "kit" / "pack-unpack"


def make_files(context: Path, files: list[str]) -> None:
    """Create each file with ``testing: <path as listed>``; files 0644, directories 0755 (kit's setupFiles)."""
    for listed in files:
        target = context / listed
        for parent in reversed(target.relative_to(context).parents):
            directory = context / parent
            if not directory.is_dir():
                directory.mkdir()
                directory.chmod(0o755)
        target.write_text(f"testing: {listed}")
        target.chmod(0o644)


def names(context: Path, layer: str, matcher: IgnoreMatcher, **kwargs: Any) -> list[str]:
    return [entry.name for entry in walk_layer(context, layer, matcher, **kwargs)]


def test_order_is_per_directory_depth_first(tmp_path: Path) -> None:
    make_files(tmp_path, ["a.txt", "a-b", "a/x", "a/y/z", "B", "_u", "é", "z"])
    assert names(tmp_path, ".", IgnoreMatcher([], ["."])) == [
        "B",
        "_u",
        "a",
        "a/x",
        "a/y",
        "a/y/z",
        "a-b",
        "a.txt",
        "z",
        "é",
    ]


def test_entries_carry_modes_sizes_and_paths(tmp_path: Path) -> None:
    make_files(tmp_path, ["d/f.bin", "d/empty/.keep"])
    (tmp_path / "d" / "empty" / ".keep").unlink()
    (tmp_path / "d").chmod(0o2750)
    (tmp_path / "d" / "f.bin").chmod(0o4711)
    entries = list(walk_layer(tmp_path, "d", IgnoreMatcher([], ["d"])))
    assert entries == [
        TarEntry("d", str(tmp_path / "d"), True, 0o2750, 0),
        TarEntry("d/empty", str(tmp_path / "d" / "empty"), True, 0o755, 0),
        TarEntry("d/f.bin", str(tmp_path / "d" / "f.bin"), False, 0o4711, len("testing: d/f.bin")),
    ]


def test_ancestor_directories_of_the_layer_path_are_entries(tmp_path: Path) -> None:
    make_files(tmp_path, ["test5/subdir/subdir2/test5-file1.txt", "test5/ignored-file.txt", "test5/subdir/other/x"])
    assert names(tmp_path, "test5/subdir/subdir2/", IgnoreMatcher([], ["test5/subdir/subdir2/"])) == [
        "test5",
        "test5/subdir",
        "test5/subdir/subdir2",
        "test5/subdir/subdir2/test5-file1.txt",
    ]


def test_single_file_layer_yields_ancestors_and_the_file(tmp_path: Path) -> None:
    make_files(tmp_path, ["test-dir/test-subfile.txt", "test-dir/other.txt", "test-file.txt"])
    layers = ["test-dir/test-subfile.txt", "test-file.txt"]
    matcher = IgnoreMatcher([], layers)
    assert names(tmp_path, "test-dir/test-subfile.txt", matcher) == ["test-dir", "test-dir/test-subfile.txt"]
    assert names(tmp_path, "./test-file.txt", matcher) == ["test-file.txt"]


def test_symlinks_and_special_files_are_skipped(tmp_path: Path) -> None:
    make_files(tmp_path, ["m/real.bin"])
    (tmp_path / "m" / "link-file").symlink_to("real.bin")
    (tmp_path / "m" / "link-dir").symlink_to(tmp_path)
    os.mkfifo(tmp_path / "m" / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(tmp_path / "m" / "sock"))
        warnings: list[str] = []
        got = names(tmp_path, "m", IgnoreMatcher([], ["m"]), on_warning=warnings.append)
    assert got == ["m", "m/real.bin"]
    assert warnings == [
        "Skipping symlink m/link-dir (symlinks are not supported)",
        "Skipping symlink m/link-file (symlinks are not supported)",
    ]


def test_os_junk_files_are_skipped_case_insensitively(tmp_path: Path) -> None:
    make_files(
        tmp_path, ["m/.DS_Store", "m/thumbs.DB", "m/$Recycle.Bin/deleted.txt", "m/keep.txt", "m/Desktop.ini.bak"]
    )
    assert names(tmp_path, "m", IgnoreMatcher([], ["m"])) == ["m", "m/Desktop.ini.bak", "m/keep.txt"]


def test_junk_names_compare_with_unicode_simple_folding(tmp_path: Path) -> None:
    # strings.EqualFold: U+212A KELVIN SIGN folds to "k"; U+FB05 "ﬅ" only folds to "st" in full folding.
    make_files(tmp_path, ["m/des\u212atop.ini", "m/.DS_\ufb05ore", "m/a"])
    assert names(tmp_path, "m", IgnoreMatcher([], ["m"])) == ["m", "m/.DS_\ufb05ore", "m/a"]


def test_double_dot_substring_bug_drops_entries_with_warning(tmp_path: Path) -> None:
    make_files(tmp_path, ["data/v1..2.bin", "data/a..b/inner.txt", "data/ok.bin", "x..y.txt"])
    warnings: list[str] = []
    assert names(tmp_path, "data", IgnoreMatcher([], ["data"]), on_warning=warnings.append) == [
        "data",
        "data/ok.bin",
    ]
    assert warnings == [
        "Skipping data/a..b: kit drops paths whose path relative to data contains '..'",
        "Skipping data/v1..2.bin: kit drops paths whose path relative to data contains '..'",
    ]
    warnings.clear()
    assert names(tmp_path, ".", IgnoreMatcher([], ["."]), on_warning=warnings.append) == ["data", "data/ok.bin"]
    assert warnings == [
        "Skipping data/a..b: kit drops paths whose path relative to . contains '..'",
        "Skipping data/v1..2.bin: kit drops paths whose path relative to . contains '..'",
        "Skipping x..y.txt: kit drops paths whose path relative to . contains '..'",
    ]


def test_ignored_directory_subtree_skipped_without_exclusions(tmp_path: Path) -> None:
    make_files(tmp_path, ["dir1/keep.md", "dir1/sub/x.txt", "other.txt"])
    assert names(tmp_path, ".", IgnoreMatcher(["dir1"], ["."])) == ["other.txt"]


def test_ignored_directory_loses_only_its_entry_with_exclusions(tmp_path: Path) -> None:
    make_files(tmp_path, ["dir1/keep.md", "dir1/sub/x.txt", "other.txt"])
    matcher = IgnoreMatcher(["dir1", "!dir1/keep.md", "!dir1/sub/x.txt"], ["."])
    assert names(tmp_path, ".", matcher) == ["dir1/keep.md", "dir1/sub/x.txt", "other.txt"]


def test_kitfile_and_kitignore_never_packed_at_root(tmp_path: Path) -> None:
    make_files(tmp_path, ["Kitfile", ".kitignore", "sub/Kitfile", "w.bin"])
    assert names(tmp_path, ".", IgnoreMatcher.load(tmp_path, ["."])) == ["sub", "sub/Kitfile", "w.bin"]


def test_prefix_sibling_goes_to_the_dot_layer(tmp_path: Path) -> None:
    make_files(tmp_path, ["data/x.bin", "database.txt", "data-v2/y.bin"])
    matcher = IgnoreMatcher([], [".", "data"])
    assert names(tmp_path, ".", matcher) == ["data-v2", "data-v2/y.bin", "database.txt"]
    assert names(tmp_path, "data", matcher) == ["data", "data/x.bin"]


def test_missing_layer_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PackError) as caught:
        walk_layer(tmp_path, "./nothing/here/", IgnoreMatcher([], []), layer_type="dataset")
    assert str(caught.value) == "error processing dataset: path nothing/here does not exist"


def test_layer_path_that_is_no_file_or_directory_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PackError) as caught:
        walk_layer(tmp_path, "pipe", IgnoreMatcher([], []))
    assert str(caught.value) == "error processing model: path pipe is neither a file nor a directory"


def test_layer_without_file_bytes_warns_at_the_end(tmp_path: Path) -> None:
    make_files(tmp_path, ["m/a", "other/b"])
    (tmp_path / "m" / "a").write_bytes(b"")
    (tmp_path / "m" / "sub").mkdir()
    warnings: list[str] = []
    got = names(tmp_path, "m", IgnoreMatcher([], ["m", "other"]), on_warning=warnings.append, layer_type="docs")
    assert got == ["m", "m/a", "m/sub"]
    assert warnings == ["No files detected in docs layer with path m"]


def test_ignored_layer_root_warns(tmp_path: Path) -> None:
    make_files(tmp_path, ["logs/a.log"])
    warnings: list[str] = []
    got = names(tmp_path, "logs/", IgnoreMatcher(["logs"], ["logs"]), on_warning=warnings.append, layer_type="code")
    assert got == []
    assert warnings == ["code layer path logs ignored by kitignore", "No files detected in code layer with path logs"]


def load_case(name: str) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load((DATA / name).read_text())
    return case


def kit_layer_paths(kitfile: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(layer paths in pack order, other-layer paths in kit's exclusion order)."""
    model = kitfile.get("model") or {}
    code = [item["path"] for item in kitfile.get("code") or []]
    datasets = [item["path"] for item in kitfile.get("datasets") or []]
    docs = [item["path"] for item in kitfile.get("docs") or []]
    prompts = [item["path"] for item in kitfile.get("prompts") or []]
    parts = [item["path"] for item in model.get("parts") or []]
    model_path = [model["path"]] if model.get("path") else []
    return (
        model_path + parts + code + datasets + docs + prompts,
        code + datasets + docs + prompts + model_path + parts,
    )


@pytest.mark.parametrize("case_file", sorted(path.name for path in DATA.glob("*.yaml")))
def test_upstream_pack_unpack_cases(tmp_path: Path, case_file: str) -> None:
    case = load_case(case_file)
    (tmp_path / "Kitfile").write_text(case["kitfile"])
    if "kitignore" in case:
        (tmp_path / ".kitignore").write_text(case["kitignore"])
    files: list[str] = case.get("files") or []
    make_files(tmp_path, files + (case.get("ignored") or []))
    layers, exclusions = kit_layer_paths(yaml.safe_load(case["kitfile"]))
    matcher = IgnoreMatcher.load(tmp_path, exclusions)
    packed: list[str] = []
    for layer in layers:
        packed.extend(entry.name for entry in walk_layer(tmp_path, layer, matcher) if not entry.is_dir)
    # every listed file exactly once, nothing ignored, no Kitfile or .kitignore
    assert sorted(packed) == sorted(clean_path(name) for name in files)
