"""``init``: kit's Kitfile-generation cases through the CLI, each heuristic on its own, license detection, the CLI."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pymodelkit.cli.init import init_command
from pymodelkit.cli.main import cli, main
from pymodelkit.errors import NotFoundError
from pymodelkit.kitfile import (
    Code,
    Dataset,
    Docs,
    Kitfile,
    Model,
    ModelPart,
    Package,
    Prompt,
    dump_kitfile,
    load_kitfile,
    read_kitfile,
)
from pymodelkit.kitfile.generate import generate_kitfile
from pymodelkit.kitfile.license import KNOWN_LICENSES, detect_license, license_matches
from pymodelkit.kitfile.paths import OS_JUNK_FILES

CASES = Path(__file__).resolve().parent.parent / "data" / "kit" / "kitfile-generation"

# Current kit (kitops-ml/kitops@bf4b9bc) where a stored case predates it; see the README next to the cases.
CURRENT_KIT: dict[str, dict[str, Any]] = {
    "test_prompt-handling": {
        "manifestVersion": "1.0.0",
        "package": {"name": "test-prompt-handling", "description": "Handles prompt files"},
        "prompts": [{"path": "."}],
    },
}

MIT = """MIT License

Copyright (c) 2024 Example Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY.
"""
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

   APPENDIX: How to apply the Apache License to your work.

   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
"""
BSD_GRANT = """Copyright (c) 2020, Example
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.
"""
BSD3_CLAUSE = """
3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""
BSD4_CLAUSE = """
3. All advertising materials mentioning features or use of this software
   must display the following acknowledgement.
"""
GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
  13. Use with the GNU Affero General Public License.
  ... under version 3 of the GNU Affero General Public License into a single combined work ...
library, you may consider it more useful to permit linking proprietary applications with
the library.  If this is what you want to do, use the GNU Lesser General
Public License instead of this License.
"""
LGPL3 = """                   GNU LESSER GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

  As used herein, "this License" refers to version 3 of the GNU Lesser
General Public License, and the "GNU GPL" refers to version 3 of the GNU
General Public License.
"""


@pytest.fixture(autouse=True)
def init_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``init`` on the ``pymodelkit`` group (a no-op once cli/main.py registers it); the logging setup a CLI run
    installs (a handler on the captured stderr) is undone afterwards."""
    monkeypatch.setitem(cli.commands, "init", cli.commands.get("init", init_command))
    logger = logging.getLogger("pymodelkit")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def warnings_log() -> Iterator[list[str]]:
    """The warnings pymodelkit.kitfile logs during the test (independent of the CLI's logging setup)."""
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("pymodelkit.kitfile")
    handler = _Collect(logging.WARNING)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _make_files(root: Path, paths: list[str]) -> None:
    """kit's setupFiles: each path with content ``testing: <path as listed>`` (0644), directories 0755."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for listed in paths:
        target = root / listed
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"testing: {listed}")
        os.chmod(target, 0o644)


def _sized(root: Path, sizes: dict[str, int]) -> Path:
    for rel, size in sizes.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x" * size)
    return root


def _expected(mapping: dict[str, Any]) -> Kitfile:
    return load_kitfile(yaml.safe_dump(mapping, sort_keys=False))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- kit's upstream cases, run as kit's harness runs them ---------------------------------------------------------


def _case_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


@pytest.mark.parametrize(
    "case",
    [*_case_files(CASES), *_case_files(CASES / "derived")],
    ids=lambda p: p.stem if p.parent == CASES else f"derived/{p.stem}",
)
def test_kit_generation_case(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = yaml.safe_load(case.read_text())
    testdata = tmp_path / "testdata"
    _make_files(testdata, spec["files"])
    code, out, err = _run(
        capsys, "init", str(testdata), "--name", spec["modelName"], "--desc", spec["description"], "--force"
    )
    assert code == 0, err
    written = testdata / "Kitfile"
    assert out == f"Generated Kitfile:\n\n{written.read_text()}\nSaved to path '{written}'\n"
    expected = CURRENT_KIT.get(case.stem, spec["expectedKitfile"]) if case.parent == CASES else spec["expectedKitfile"]
    assert read_kitfile(written) == _expected(expected)


def test_stored_cases_are_the_ones_the_readme_lists() -> None:
    names = sorted(p.name for p in _case_files(CASES))
    assert names == [
        "test_directory-handling.yaml",
        "test_empty-directory.yaml",
        "test_existing-Kitfile.yaml",
        "test_mcp-server-detection.yaml",
        "test_metadata-files-dataset.yaml",
        "test_metadata-files-model.yaml",
        "test_model-and-adaptor.yaml",
        "test_multi-part-models.yaml",
        "test_prompt-handling.yaml",
        "test_type-detect.yaml",
    ]
    readme = (CASES / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)


# --- the heuristics one at a time ----------------------------------------------------------------------------------


def test_suffixes_are_case_sensitive_and_bin_is_no_model_suffix(tmp_path: Path) -> None:
    _make_files(tmp_path, ["MODEL.GGUF", "config.yml", "notes.txt", "weights.bin", "pytorch_model-00001.bin"])
    kitfile = generate_kitfile(tmp_path)
    assert kitfile == Kitfile(
        manifest_version="1.0.0",
        model=Model(name="pytorch_model-00001", path="pytorch_model-00001.bin", parts=[ModelPart(path="notes.txt")]),
        code=[Code(path="MODEL.GGUF"), Code(path="config.yml"), Code(path="weights.bin")],
    )


def test_more_than_five_unknown_files_add_dot_after_directory_code(tmp_path: Path) -> None:
    _make_files(tmp_path, ["src/main.py", *(f"run{i}.sh" for i in range(6))])
    assert generate_kitfile(tmp_path).code == [Code(path="src/"), Code(path=".")]
    (tmp_path / "run5.sh").unlink()
    assert generate_kitfile(tmp_path).code == [Code(path="src/"), *(Code(path=f"run{i}.sh") for i in range(5))]


def test_many_unprocessed_directories_stay_separate_code_entries(tmp_path: Path) -> None:
    # Current kit has no "more than 5 unprocessed directories" catch-all (older kit had one).
    _make_files(tmp_path, [f"dir{i}/tool.sh" for i in range(7)])
    assert generate_kitfile(tmp_path).code == [Code(path=f"dir{i}/") for i in range(7)]


def test_model_directory_lists_models_then_metadata(tmp_path: Path) -> None:
    _make_files(tmp_path, ["m/a.json", "m/b.gguf"])  # 17 bytes each: no clear winner
    assert generate_kitfile(tmp_path).model == Model(path="m/b.gguf", parts=[ModelPart(path="m/a.json")])


def test_only_metadata_directory_and_empty_directory_are_code(tmp_path: Path) -> None:
    _make_files(tmp_path, ["meta/a.json", "meta/b.yaml"])
    (tmp_path / "empty").mkdir()
    assert generate_kitfile(tmp_path).code == [Code(path="empty/"), Code(path="meta/")]


@pytest.mark.parametrize(("big", "named"), [(20, True), (19, False)])
def test_largest_model_must_exceed_one_and_a_half_integer_averages(tmp_path: Path, big: int, named: bool) -> None:
    _sized(tmp_path, {"a.gguf": 10, "b.gguf": 10, "c.gguf": big})  # average 13 (integer), threshold 13 + 6 = 19
    model = generate_kitfile(tmp_path).model
    if named:
        assert model == Model(name="c", path="c.gguf", parts=[ModelPart(path="a.gguf"), ModelPart(path="b.gguf")])
    else:
        assert model == Model(path="a.gguf", parts=[ModelPart(path="b.gguf"), ModelPart(path="c.gguf")])


def test_first_of_equal_largest_files_is_the_model(tmp_path: Path) -> None:
    _sized(tmp_path, {"a.gguf": 1, "b.gguf": 1, "c.gguf": 1, "x.gguf": 50, "y.gguf": 50})
    model = generate_kitfile(tmp_path).model
    assert model is not None and (model.name, model.path) == ("x", "x.gguf")
    assert [p.path for p in model.parts] == ["a.gguf", "b.gguf", "c.gguf", "y.gguf"]


TREE = ["top.gguf", "a/x.gguf", "a/notes.md", "a/README", "b/e.sh", "b/c/d.csv"]


def test_depth_zero_analyses_top_level_directories_as_units(tmp_path: Path) -> None:
    _make_files(tmp_path, TREE)
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0",
        # a/ is mixed (model, docs, unknown): code, but its model file is still a candidate
        model=Model(path="top.gguf", parts=[ModelPart(path="a/x.gguf")]),
        code=[Code(path="a/"), Code(path="b/")],
    )


def test_depth_one_classifies_the_next_level_file_by_file(tmp_path: Path) -> None:
    _make_files(tmp_path, TREE)
    assert generate_kitfile(tmp_path, depth=1) == Kitfile(
        manifest_version="1.0.0",
        model=Model(path="top.gguf", parts=[ModelPart(path="a/x.gguf")]),
        code=[Code(path="b/e.sh")],
        datasets=[Dataset(path="b/c/")],
        docs=[Docs(path="a/README", description="Readme file"), Docs(path="a/notes.md")],
    )


def test_negative_depth_classifies_every_file(tmp_path: Path) -> None:
    _make_files(tmp_path, TREE)
    kitfile = generate_kitfile(tmp_path, depth=-1)
    assert kitfile.datasets == [Dataset(path="b/c/d.csv")]
    assert kitfile.code == [Code(path="b/e.sh")]


def test_pytorch_glob_matches_names_but_not_nested_paths(tmp_path: Path) -> None:
    # kit matches the glob against the listed path when classifying file by file; '*' stops at '/'.
    _make_files(tmp_path, ["w/pytorch_model.bin"])
    assert generate_kitfile(tmp_path).model == Model(name="w/pytorch_model", path="w/pytorch_model.bin")
    assert generate_kitfile(tmp_path, depth=1) == Kitfile(
        manifest_version="1.0.0", code=[Code(path="w/pytorch_model.bin")]
    )


def test_symlinks_and_os_junk_are_not_listed(tmp_path: Path) -> None:
    _make_files(tmp_path, ["model.gguf", ".DS_Store", "THUMBS.DB", "$RECYCLE.BIN/x.sh", "data/a.csv"])
    (tmp_path / "link.gguf").symlink_to(tmp_path / "model.gguf")
    (tmp_path / "data-link").symlink_to(tmp_path / "data", target_is_directory=True)
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0", model=Model(name="model", path="model.gguf"), datasets=[Dataset(path="data/")]
    )


def test_os_junk_names_match_case_insensitively() -> None:
    from pymodelkit.kitfile.paths import is_os_junk

    assert all(is_os_junk(name) and is_os_junk(name.upper()) for name in OS_JUNK_FILES)
    assert not is_os_junk("DS_Store") and not is_os_junk("thumbs.db.bak")


def test_readme_and_license_prefixes_only_at_the_top_level(tmp_path: Path) -> None:
    _make_files(tmp_path, ["README", "LICENSE-extra.txt", "readme.rst", "notes/README.md", "notes/LICENSE.md"])
    assert generate_kitfile(tmp_path).docs == [
        Docs(path="LICENSE-extra.txt", description="License file"),
        Docs(path="README", description="Readme file"),
        Docs(path="readme.rst", description="Readme file"),
        Docs(path="notes/"),
    ]


def test_package_from_options_and_author_alone(tmp_path: Path) -> None:
    _make_files(tmp_path, ["m.onnx"])
    assert generate_kitfile(tmp_path, author="Ada").package == Package(authors=["Ada"])
    kitfile = generate_kitfile(tmp_path, name="n", description="d", author="Ada", version="1.2", license="MIT")
    assert kitfile.package == Package(name="n", version="1.2", description="d", license="MIT", authors=["Ada"])
    assert generate_kitfile(tmp_path).package == Package()
    assert dump_kitfile(generate_kitfile(tmp_path)) == "manifestVersion: 1.0.0\nmodel:\n  name: m\n  path: m.onnx\n"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        generate_kitfile(tmp_path / "missing")
    assert str(info.value) == f"{tmp_path / 'missing'} is not a directory"


# --- skills ---------------------------------------------------------------------------------------------------------

SKILL = "---\nname: summarize\ndescription: Summarizes text\nlicense: Apache-2.0\n---\n# Summarize\n"


def test_root_skill_is_the_whole_directory_and_fills_the_package(tmp_path: Path) -> None:
    _make_files(tmp_path, ["model.gguf", "scripts/run.sh"])
    (tmp_path / "SKILL.md").write_text(SKILL)
    assert generate_kitfile(tmp_path, name="given") == Kitfile(
        manifest_version="1.0.0",
        package=Package(name="given", description="Summarizes text", license="Apache-2.0"),
        prompts=[Prompt(name="summarize", path=".", description="Summarizes text")],
    )


def test_skill_directory_is_one_prompt_and_lends_the_package_its_metadata(tmp_path: Path) -> None:
    (tmp_path / "summarize").mkdir()
    (tmp_path / "summarize" / "SKILL.md").write_text(SKILL.replace("\n", "\r\n"))
    _make_files(tmp_path, ["summarize/helper.py"])
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0",
        package=Package(name="summarize", description="Summarizes text", license="Apache-2.0"),
        prompts=[Prompt(name="summarize", path="summarize", description="Summarizes text")],
    )
    _make_files(tmp_path, ["model.gguf"])  # not only prompts any more: only the license is lent
    kitfile = generate_kitfile(tmp_path)
    assert kitfile.package == Package(license="Apache-2.0")
    assert kitfile.model == Model(name="model", path="model.gguf")


@pytest.mark.parametrize(
    "text",
    ["no front matter\n", "---\nname: [a, b]\n---\n", "---\nname: a\n", "---\n\n---\n", "---\nname: a\nname: b\n---\n"],
)
def test_skill_without_usable_front_matter(tmp_path: Path, text: str) -> None:
    (tmp_path / "SKILL.md").write_text(text)
    assert generate_kitfile(tmp_path) == Kitfile(manifest_version="1.0.0", prompts=[Prompt(path=".")])


# --- license detection ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spdx_id"),
    [
        (MIT, "MIT"),
        (APACHE, "Apache-2.0"),
        ('Licensed under the Apache License, Version 2.0 (the "License");', "Apache-2.0"),
        (BSD_GRANT, "BSD-2-Clause"),
        (BSD_GRANT + BSD3_CLAUSE, "BSD-3-Clause"),
        (BSD_GRANT + BSD3_CLAUSE + BSD4_CLAUSE, "BSD-4-Clause"),
        (GPL3, "GPL-3.0"),
        (LGPL3, "LGPL-3.0"),
        ("GNU GENERAL PUBLIC LICENSE\n   Version 2, June 1991\n", "GPL-2.0"),
        ("GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999\n", "LGPL-2.1"),
        ("GNU LIBRARY GENERAL PUBLIC LICENSE\n Version 2, June 1991\n", "LGPL-2.0"),
        ("GNU AFFERO GENERAL PUBLIC LICENSE\n Version 3, 19 November 2007\n", "AGPL-3.0"),
        ("Mozilla Public License Version 2.0\n==================================\n", "MPL-2.0"),
        ("This is free and unencumbered software released into the public domain.\n", "Unlicense"),
        (
            "Attribution 4.0 International\n\nCreative Commons Attribution 4.0 International Public License\n",
            "CC-BY-4.0",
        ),
        ("Creative Commons Attribution-ShareAlike 4.0 International Public License", "CC-BY-SA-4.0"),
        ("Creative Commons Legal Code\n\nCC0 1.0 Universal\n", "CC0-1.0"),
        ("Boost Software License - Version 1.0 - August 17th, 2003", "BSL-1.0"),
        (
            "ISC License\n\nPermission to use, copy, modify, and/or distribute this software for any\npurpose with or "
            "without fee is hereby granted, provided that the above copyright notice",
            "ISC",
        ),
        ("testing: LICENSE", ""),
        (MIT + APACHE, ""),
        (
            b"\xffPermission is hereby granted, free of charge, to any person obtaining a copy. The above copyright "
            b"notice and this permission notice shall be included",
            "MIT",
        ),
    ],
)
def test_detect_license(text: str | bytes, spdx_id: str) -> None:
    assert detect_license(text) == spdx_id


def test_license_matches_lists_every_match_and_known_ids_are_spdx() -> None:
    assert license_matches(MIT + APACHE) == ["Apache-2.0", "MIT"]
    assert len(set(KNOWN_LICENSES)) == len(KNOWN_LICENSES)


@pytest.mark.parametrize(
    ("files", "where"),
    [
        (["model.gguf", "data.csv"], "model"),
        (["data.csv", "labels.json"], "package"),  # two datasets: no single home
        (["data.csv"], "dataset"),
        (["run.sh"], "code"),
        (["a.sh", "b.sh"], "package"),
    ],
)
def test_license_goes_to_model_else_single_dataset_else_single_code_else_package(
    tmp_path: Path, files: list[str], where: str
) -> None:
    _make_files(tmp_path, files)
    (tmp_path / "LICENSE").write_text(MIT)
    kitfile = generate_kitfile(tmp_path, license="ignored-by-placement" if where != "package" else "")
    placed = {
        "model": kitfile.model.license if kitfile.model else None,
        "dataset": kitfile.datasets[0].license if len(kitfile.datasets) == 1 else None,
        "code": kitfile.code[0].license if len(kitfile.code) == 1 else None,
        "package": kitfile.package.license,
    }
    assert placed[where] == "MIT"
    assert [key for key, value in placed.items() if value == "MIT"] == [where]
    assert kitfile.docs == [Docs(path="LICENSE", description="License file")]


def test_unknown_license_warns_and_sets_nothing(tmp_path: Path, warnings_log: list[str]) -> None:
    _make_files(tmp_path, ["LICENSE", "model.gguf"])
    kitfile = generate_kitfile(tmp_path)
    assert warnings_log == ["Unable to determine license type"]
    assert kitfile.model == Model(name="model", path="model.gguf")
    assert kitfile.package == Package()


def test_given_license_is_not_overwritten_by_an_undetected_one(tmp_path: Path) -> None:
    _make_files(tmp_path, ["LICENSE", "a.sh", "b.sh"])
    assert generate_kitfile(tmp_path, license="Apache-2.0").package.license == "Apache-2.0"


# --- the CLI --------------------------------------------------------------------------------------------------------


def test_cli_refuses_an_existing_kitfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_files(tmp_path, ["model.gguf"])
    (tmp_path / "Kitfile").write_text("manifestVersion: 1.0.0\n")
    code, out, err = _run(capsys, "init", str(tmp_path))
    assert (code, out) == (3, "")
    assert err == f"pymodelkit: error: Kitfile already exists at {tmp_path / 'Kitfile'}; use --force to overwrite\n"
    assert (tmp_path / "Kitfile").read_text() == "manifestVersion: 1.0.0\n"


def test_cli_only_the_exact_name_kitfile_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_files(tmp_path, ["model.gguf", "kitfile", ".kitfile"])
    code, _, err = _run(capsys, "init", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "Kitfile").read_text() == "manifestVersion: 1.0.0\nmodel:\n  name: model\n  path: model.gguf\n"


def test_cli_force_overwrites_with_mode_0644(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_files(tmp_path, ["model.gguf"])
    (tmp_path / "Kitfile").write_text("old\n")
    os.chmod(tmp_path / "Kitfile", 0o600)
    code, out, err = _run(capsys, "init", str(tmp_path), "-f", "--name", "demo", "--author", "Ada", "--version", "1")
    assert code == 0, err
    text = (
        'manifestVersion: 1.0.0\npackage:\n  name: demo\n  version: "1"\n  authors: [Ada]\n'
        "model:\n  name: model\n  path: model.gguf\n"
    )
    assert (tmp_path / "Kitfile").read_text() == text
    assert stat.S_IMODE((tmp_path / "Kitfile").stat().st_mode) == 0o644
    assert out == f"Generated Kitfile:\n\n{text}\nSaved to path '{tmp_path / 'Kitfile'}'\n"
    assert err == ""


def test_cli_output_dash_prints_only_the_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_files(tmp_path, ["model.gguf"])
    (tmp_path / "Kitfile").write_text("old\n")  # nothing is written, so nothing is refused
    code, out, err = _run(capsys, "init", str(tmp_path), "-o", "-", "--depth", "-1")
    assert (code, err) == (0, "")
    assert out == "manifestVersion: 1.0.0\nmodel:\n  name: model\n  path: model.gguf\n"
    assert (tmp_path / "Kitfile").read_text() == "old\n"


def test_cli_output_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    _make_files(src, ["model.gguf"])
    target = tmp_path / "out" / "Kitfile.generated"
    code, out, _ = _run(capsys, "-q", "init", str(src), "--output", str(target))
    assert (code, out) == (0, "")
    assert target.read_text() == "manifestVersion: 1.0.0\nmodel:\n  name: model\n  path: model.gguf\n"
    assert not (src / "Kitfile").exists()
    code, _, err = _run(capsys, "init", str(src), "-o", str(target))
    assert code == 3
    assert err == f"pymodelkit: error: Kitfile already exists at {target}; use --force to overwrite\n"


def test_cli_warns_about_an_unknown_license(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_files(tmp_path, ["LICENSE"])
    code, _, err = _run(capsys, "init", str(tmp_path))
    assert code == 0
    assert err == "[WARN] Unable to determine license type\n"


def test_cli_missing_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "init", str(tmp_path / "missing"))
    assert code == 2
    assert "does not exist" in err
