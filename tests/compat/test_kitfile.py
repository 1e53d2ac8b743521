"""The compat pydantic Kitfile: pykitops' behaviour (loading, sections, setters, pydantic methods, errors) and the
documented fixes (kit's fields and YAML, unknown keys kept, validated assignment, mapping access, no printing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from pymodelkit.compat import CodeEntry, DatasetEntry, Kitfile, ModelPart, ModelSection, Package
from pymodelkit.compat.kitops.modelkit import _pydantic_kit
from pymodelkit.compat.kitops.modelkit.kitfile import Kitfile as MirroredKitfile
from pymodelkit.kitfile import load_kitfile

# pykitops' tests/fixtures/Kitfile_full (kitops-ml/pykitops@e9350c7), trimmed to one entry per list
FULL = """manifestVersion: '1.0'
package:
  name: Titanic-Survivability-Predictor
  version: 1.0.0
  description: >-
     A model attempting to predict passenger survivability of
     the Titanic Shipwreck
  authors:
  - Jozu
code:
- path: requirements.txt
  description: Python packages required by this example.
  license: Apache-2.0
datasets:
- name: training
  path: data/train.csv
  description: Data to be used for model training.
  license: Apache-2.0
docs:
- path: README.md
  description: Important notes about the project.
prompts:
- path: prompts/
  description: System and user prompts for validation
model:
  name: titanic-survivability-predictor
  path: model
  framework: joblib
  license: Apache-2.0
  version: '1.0'
  parts:
    - path: config.json
      name: config
      type: config file
    - path: vocab.txt
  parameters:
    param1: val1
    items:
    - list item 1
"""

FULL_AS_KIT_WRITES_IT = """manifestVersion: "1.0"
package:
  name: Titanic-Survivability-Predictor
  version: 1.0.0
  description: A model attempting to predict passenger survivability of the Titanic Shipwreck
  authors: [Jozu]
model:
  name: titanic-survivability-predictor
  path: model
  license: Apache-2.0
  framework: joblib
  version: "1.0"
  parts:
    - name: config
      path: config.json
      type: config file
    - path: vocab.txt
  parameters:
    items:
      - list item 1
    param1: val1
code:
  - path: requirements.txt
    description: Python packages required by this example.
    license: Apache-2.0
datasets:
  - name: training
    path: data/train.csv
    description: Data to be used for model training.
    license: Apache-2.0
docs:
  - path: README.md
    description: Important notes about the project.
prompts:
  - path: prompts/
    description: System and user prompts for validation
"""


@pytest.fixture
def full(tmp_path: Path) -> Path:
    path = tmp_path / "Kitfile_full"
    path.write_text(FULL)
    return path


def test_loading_a_file_gives_every_section_as_objects(full: Path) -> None:
    kitfile = Kitfile(path=str(full))
    assert kitfile.manifestVersion == "1.0"
    assert kitfile.package == Package(
        name="Titanic-Survivability-Predictor",
        version="1.0.0",
        description="A model attempting to predict passenger survivability of the Titanic Shipwreck",
        authors=["Jozu"],
    )
    assert kitfile.code == [
        CodeEntry(path="requirements.txt", description="Python packages required by this example.",
                  license="Apache-2.0")
    ]
    assert kitfile.datasets[0].name == "training" and kitfile.datasets[0].path == "data/train.csv"
    assert kitfile.docs[0].path == "README.md"
    assert kitfile.prompts[0].path == "prompts/"
    assert kitfile.model.framework == "joblib" and kitfile.model.version == "1.0"
    assert kitfile.model.parts == [ModelPart(path="config.json", name="config", type="config file"),
                                   ModelPart(path="vocab.txt")]
    assert kitfile.model.parameters == {"param1": "val1", "items": ["list item 1"]}


def test_a_path_object_and_the_mirrored_import_path_load_the_same(full: Path) -> None:
    assert Kitfile(full) == MirroredKitfile(str(full)) == Kitfile.model_validate(Kitfile(full).model_dump())
    assert MirroredKitfile is Kitfile
    assert _pydantic_kit.ModelSection is ModelSection


def test_to_yaml_is_what_kit_writes(full: Path) -> None:
    text = Kitfile(full).to_yaml()
    assert text == FULL_AS_KIT_WRITES_IT
    assert load_kitfile(text).package.authors == ["Jozu"]  # kit's own loader reads it back


def test_an_empty_kitfile_writes_only_its_manifest_version() -> None:
    # pykitops writes package: {}, code: [], ..., model: {path: ''} here (quirk 25)
    assert Kitfile().to_yaml() == "manifestVersion: 1.0.0\n"
    assert Kitfile() == Kitfile()


def test_without_suppressing_empty_values_every_default_is_written() -> None:
    data = yaml.safe_load(Kitfile().to_yaml(suppress_empty_values=False))
    assert list(data) == ["manifestVersion", "package", "model", "code", "datasets", "docs", "prompts", "mcpServers"]
    assert data["model"]["parameters"] is None and data["model"]["path"] == ""
    assert data["package"] == {"name": "", "version": "", "description": "", "license": "", "authors": []}


def test_model_dump_and_model_validate_round_trip_a_dict() -> None:
    data: dict[str, Any] = {
        "manifestVersion": "1.0.0",
        "package": {"name": "churn", "authors": ["Ana"]},
        "model": {"path": "model", "parameters": {"alpha": 0.5}},
        "datasets": [{"path": "data/train.csv", "name": "train"}],
    }
    kitfile = Kitfile.model_validate(data)
    assert kitfile.model_dump(exclude_unset=True) == data
    assert Kitfile(**data) == kitfile


def test_kit_fields_pykitops_drops_survive_load_and_save(tmp_path: Path) -> None:
    source = tmp_path / "Kitfile"
    source.write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: x\n  license: MIT\nmodel:\n  path: m\n  format: safetensors\n"
        "  parts:\n    - path: a\n      license: MIT\ndatasets:\n  - name: d\n    remotePath: s3://bucket/d\n"
        "    parameters:\n      rows: 10\nprompts:\n  - name: sys\n    path: p.md\nmcpServers:\n  - path: s.mcpb\n"
    )
    kitfile = Kitfile(source)
    kitfile.save(tmp_path / "Kitfile.out")
    assert (tmp_path / "Kitfile.out").read_text() == source.read_text()
    assert kitfile.package.license == "MIT" and kitfile.model.format == "safetensors"
    assert kitfile.datasets[0].remotePath == "s3://bucket/d" and kitfile.mcpServers[0].path == "s.mcpb"


def test_unknown_keys_are_kept_and_written(tmp_path: Path) -> None:
    source = tmp_path / "Kitfile"
    source.write_text("manifestVersion: 1.0.0\npackage:\n  name: x\n  team: ml\nmodel:\n  path: m\nnotes: keep me\n")
    kitfile = Kitfile(source)
    assert kitfile.model_extra == {"notes": "keep me"}
    assert kitfile.package["team"] == "ml"
    assert yaml.safe_load(kitfile.to_yaml()) == {
        "manifestVersion": "1.0.0", "package": {"name": "x", "team": "ml"}, "model": {"path": "m"}, "notes": "keep me",
    }


def test_numbers_become_strings_for_versions() -> None:
    kitfile = Kitfile(manifestVersion=1.0, package={"version": 2}, model={"path": "m", "version": 1.5})
    assert (kitfile.manifestVersion, kitfile.package.version, kitfile.model.version) == ("1.0", "2", "1.5")


def test_sections_accept_dicts_and_objects() -> None:
    kitfile = Kitfile()
    # dicts are accepted where the section types are declared (as in pykitops), hence the ignores for mypy
    kitfile.package = {"name": "New-Package", "version": "2.0.0", "authors": ["Author"]}  # type: ignore[assignment]
    assert kitfile.package == Package(name="New-Package", version="2.0.0", authors=["Author"])
    kitfile.package = Package.model_validate({"name": "Another"})
    assert kitfile.package.name == "Another"
    kitfile.code = [{"path": "src"}, CodeEntry(path="train.py")]  # type: ignore[list-item]
    assert kitfile.code == [CodeEntry(path="src"), CodeEntry(path="train.py")]
    kitfile.model = {"path": "model", "parts": [{"path": "lora"}]}  # type: ignore[assignment]
    assert kitfile.model.parts == [ModelPart(path="lora")]
    kitfile.package.name = "Nested"
    assert "name: Nested" in kitfile.to_yaml()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("code", {"path": "src"}, "code must be a list of dicts or code entries, not dict"),
        ("datasets", "data", "datasets must be a list of dicts or datasets entries, not str"),
        ("package", ["x"], "package must be a dict or a Package, not list"),
        ("model", "model/", "model must be a dict or a ModelSection, not str"),
        ("manifestVersion", None, "manifestVersion must be a str, int or float, not NoneType"),
    ],
)
def test_a_section_of_the_wrong_type_is_a_type_error(name: str, value: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        setattr(Kitfile(), name, value)
    assert str(info.value) == message


def test_assignments_are_validated() -> None:
    kitfile = Kitfile(model={"path": "m"})
    with pytest.raises(pydantic.ValidationError) as info:
        kitfile.model.path = 123  # type: ignore[assignment]
    assert info.value.errors()[0]["loc"] == ("path",)


def test_mapping_access_of_pykitops_1_2_still_works(full: Path) -> None:
    kitfile = Kitfile(full)
    kitfile.model["parameters"] = {"run_id": "abc"}
    assert kitfile.model.parameters == {"run_id": "abc"}
    assert kitfile.package["authors"] == ["Jozu"]
    assert kitfile.model.get("nothing", "default") == "default"
    with pytest.raises(KeyError):
        kitfile.model["nothing"]


def test_path_and_kwargs_together_is_a_value_error(full: Path) -> None:
    with pytest.raises(ValueError) as info:
        Kitfile(full, package={"name": "x"})
    assert str(info.value) == "Kitfile takes either a path or keyword arguments, not both"


def test_a_missing_path_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        Kitfile(tmp_path / "nope")
    assert str(info.value) == f"Path '{tmp_path / 'nope'}' does not exist."


def test_a_yaml_error_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "Kitfile"
    bad.write_text("manifestVersion: 1.0.0\npackage: [unclosed\n")
    with pytest.raises(yaml.YAMLError) as info:
        Kitfile(bad)
    assert str(info.value) == "Error parsing Kitfile at line 3, column: 1."


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("", ()),  # a null document
        ("manifestVersion:\npackage:\ncode:\n", ("manifestVersion",)),  # null sections
        ("manifestVersion: 1.0.0\npackage: [a]\n", ("package",)),
        ("manifestVersion: 1.0.0\ncode:\n  - description: no path\n", ("code", 0, "path")),
    ],
)
def test_invalid_content_is_a_pydantic_validation_error(
    tmp_path: Path, text: str, location: tuple[object, ...]
) -> None:
    path = tmp_path / "Kitfile"
    path.write_text(text)
    with pytest.raises(pydantic.ValidationError) as info:
        Kitfile(path)
    assert info.value.errors()[0]["loc"] == location


def test_all_none_kwargs_are_a_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError):
        Kitfile(manifestVersion=None, package=None, code=None, datasets=None, docs=None, model=None)


def test_a_dataset_needs_a_path_or_a_remote_path() -> None:
    assert DatasetEntry(remotePath="s3://b/d").path == ""
    with pytest.raises(pydantic.ValidationError) as info:
        DatasetEntry(name="d")
    assert "a dataset needs a path (or a remotePath)" in str(info.value)


def test_save_writes_the_yaml_and_prints_nothing_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    kitfile = Kitfile(package={"name": "x"})
    kitfile.save()
    assert (tmp_path / "Kitfile").read_text() == "manifestVersion: 1.0.0\npackage:\n  name: x\n"
    assert capsys.readouterr().out == ""
    with pytest.warns(DeprecationWarning, match=r"Kitfile.print\(\) is deprecated"):
        kitfile.save(print=True)
    assert "package:\n  name: x" in capsys.readouterr().out


def test_load_returns_the_content_and_leaves_the_object_alone(full: Path) -> None:
    kitfile = Kitfile()
    data = kitfile.load(full)
    assert data["package"]["name"] == "Titanic-Survivability-Predictor"
    assert kitfile == Kitfile()


def test_to_kitfile_and_from_kitfile_convert_to_pymodelkit(full: Path) -> None:
    core = Kitfile(full).to_kitfile()
    assert core.model is not None and core.model.parts[0].type == "config file"
    assert Kitfile.from_kitfile(core) == Kitfile(full)
    assert Kitfile().to_kitfile().model is None  # an empty model is no model section


def test_string_fields_keep_their_source_text_as_in_kit(tmp_path: Path) -> None:
    path = tmp_path / "Kitfile"
    path.write_text("manifestVersion: 1.0.0\npackage:\n  version: 1.10\nmodel:\n  path: m\n  version: 2.0\n")
    kitfile = Kitfile(path)
    assert (kitfile.package.version, kitfile.model.version) == ("1.10", "2.0")  # PyYAML alone reads 1.1 and 2.0
