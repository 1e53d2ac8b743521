"""The Kitfile JSON Schema (spec/kitfile.schema.json): valid itself, agrees with kit's upstream Kitfiles and with the
worked vectors of spec/format.md."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "spec" / "kitfile.schema.json"
FORMAT_PATH = ROOT / "spec" / "format.md"
DATA = ROOT / "tests" / "data" / "spec"

# Config blobs of the worked vectors (spec/format.md 5.5), with the digests kit and pymodelkit both produce.
VECTOR_A_CONFIG = (
    b'{"manifestVersion":"1.0.0","package":{"name":"test-repack"},"model":{"path":"test-file.txt",'
    b'"digest":"sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb",'
    b'"diffId":"sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"},'
    b'"datasets":[{"path":"test-dir/test-subfile.txt",'
    b'"digest":"sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f",'
    b'"diffId":"sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f"}]}'
)
VECTOR_A_DIGEST = "e8497a2e7be9fd69cfdd090ab24c323c3629deca91c6ac825e73b2d15d4e2454"
VECTOR_B_CONFIG = (
    b'{"manifestVersion":"1.0.0","package":{"name":"test-basic"},"model":{"name":"test-model","path":"./model",'
    b'"digest":"sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32",'
    b'"diffId":"sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32"},'
    b'"code":[{"path":"./code","digest":"sha256:ecad50eb0c0d444307ad97a1ec9c5ebcd3f35be05512797443e93de929d74439",'
    b'"diffId":"sha256:ecad50eb0c0d444307ad97a1ec9c5ebcd3f35be05512797443e93de929d74439"}],'
    b'"datasets":[{"name":"test-dataset","path":"./datasets",'
    b'"digest":"sha256:f33c29d60930cf3270479f2f25d0e0edbd1e1f79dc209829ff261e4d524b3442",'
    b'"diffId":"sha256:f33c29d60930cf3270479f2f25d0e0edbd1e1f79dc209829ff261e4d524b3442"}]}'
)
VECTOR_B_DIGEST = "b8b4e064bd9919e0bc45df9a572af0bf3be65865f8fcfcba850b1ffeed98814f"
VECTOR_C_CONFIG = b'{"manifestVersion":"1.0.0","package":{"name":"test-empty"}}'
VECTOR_C_DIGEST = "71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a"

VALID_CASES = [
    "pack-unpack/test_empty-kitfile.yaml",
    "pack-unpack/test_pack-basic-model.yaml",
    "pack-unpack/test_pack-ignores-intersecting.yaml",
    "pack-unpack/test_pack-model-with-prompts.yaml",
    "pack-unpack/test_pack-modelkit-parts.yaml",
    "pack-unpack/test_pack-path-formats.yaml",
    "validation/mcpserver-valid.yaml",
    "validation/modelkit-ref-for-model.yaml",
    "validation/relative-path-within-context-allowed.yaml",
    "validation/remote-dataset-modelkit-ref.yaml",
    "validation/remote-dataset-sibling-paths-allowed.yaml",
    "validation/remote-datasets-supported.yaml",
]

# (case, JSON Schema keyword that fails, where in the document)
INVALID_CASES = [
    ("pack-unpack/superseded_test_pack-ignores-intersecting.yaml", "additionalProperties", []),
    ("validation/invalid-model-part-type.yaml", "pattern", ["model", "parts", 0, "type"]),
    ("validation/invalid-model-part-type-length.yaml", "maxLength", ["model", "parts", 0, "type"]),
    ("validation/mcpserver-non-mcpb-path.yaml", "pattern", ["mcpServers", 0, "path"]),
    ("validation/mcpserver-missing-name.yaml", "required", ["mcpServers", 0]),
]


class _LiteralLoader(yaml.SafeLoader):
    """Reads every plain scalar as its source text, as kit does for string-typed Kitfile fields."""


_LiteralLoader.yaml_implicit_resolvers = {}


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _kitfile_text(case: str) -> str:
    doc = yaml.safe_load((DATA / case).read_text(encoding="utf-8"))
    text = doc.get("kitfile", doc.get("kitfileYaml"))
    assert isinstance(text, str)
    return text


def _errors(validator: Any, document: object) -> list[tuple[str, list[object]]]:
    return sorted(
        ((err.validator, list(err.absolute_path)) for err in validator.iter_errors(document)),
        key=repr,
    )


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_schema_refuses_unknown_keys_everywhere_but_parameters() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    objects = {"(root)": schema, **{name: sub for name, sub in schema["$defs"].items() if sub.get("type") == "object"}}
    assert sorted(objects) == [
        "(root)",
        "code",
        "dataset",
        "docs",
        "mcpServer",
        "model",
        "modelPart",
        "package",
        "prompt",
    ]
    assert {name: sub["additionalProperties"] for name, sub in objects.items()} == dict.fromkeys(objects, False)
    assert schema["$defs"]["model"]["properties"]["parameters"].keys() == {"description"}
    assert schema["$defs"]["dataset"]["properties"]["parameters"].keys() == {"description"}


@pytest.mark.parametrize("case", VALID_CASES)
def test_upstream_kitfile_validates(validator: Any, case: str) -> None:
    document = yaml.safe_load(_kitfile_text(case))
    assert _errors(validator, document) == []


@pytest.mark.parametrize(("case", "keyword", "where"), INVALID_CASES)
def test_upstream_kitfile_refused(validator: Any, case: str, keyword: str, where: list[object]) -> None:
    document = yaml.safe_load(_kitfile_text(case))
    assert _errors(validator, document) == [(keyword, where)]


def test_unknown_top_level_key_is_named(validator: Any) -> None:
    document = yaml.safe_load(_kitfile_text("pack-unpack/superseded_test_pack-ignores-intersecting.yaml"))
    (error,) = validator.iter_errors(document)
    assert error.message == "Additional properties are not allowed ('dataset' was unexpected)"


def test_unknown_nested_key_is_refused(validator: Any) -> None:
    document = yaml.safe_load("model:\n  path: m\n  parts:\n    - path: p\n      lang: en\n")
    assert _errors(validator, document) == [("additionalProperties", ["model", "parts", 0])]


def test_digest_keys_outside_layer_elements_are_refused(validator: Any) -> None:
    document = {"package": {"name": "x", "digest": "sha256:" + "0" * 64}}
    assert _errors(validator, document) == [("additionalProperties", ["package"])]


@pytest.mark.parametrize(
    ("yaml_text", "where"),
    [
        ("code: ./src\n", ["code"]),
        ("model: ./model\n", ["model"]),
        ("package:\n  authors: Jane\n", ["package", "authors"]),
        ("datasets:\n  - path: [a, b]\n", ["datasets", 0, "path"]),
        ("manifestVersion: 1.0\n", ["manifestVersion"]),
        ("docs:\n  - path: README.md\n    description: {a: b}\n", ["docs", 0, "description"]),
    ],
)
def test_wrong_type_is_refused(validator: Any, yaml_text: str, where: list[object]) -> None:
    assert _errors(validator, yaml.safe_load(yaml_text)) == [("type", where)]


def test_empty_kitfile_validates(validator: Any) -> None:
    assert _errors(validator, {}) == []
    assert _errors(validator, {"manifestVersion": "", "package": {}}) == []


@pytest.mark.parametrize(
    "parameters",
    [{"a": [1, 2.5, True, None]}, ["x", {"y": "z"}], "text", 0, 1.5, False, None, {}],
)
def test_parameters_accept_any_value(validator: Any, parameters: object) -> None:
    document = {"model": {"path": "m", "parameters": parameters}, "datasets": [{"path": "d", "parameters": parameters}]}
    assert _errors(validator, document) == []


@pytest.mark.parametrize(
    ("part_type", "errors"),
    [
        ("", []),
        ("lora", []),
        ("_x.y-z", []),
        ("a" * 64, []),
        ("a" * 65, [("maxLength", ["model", "parts", 0, "type"])]),
        ("-lora", [("pattern", ["model", "parts", 0, "type"])]),
        ("lo/ra", [("pattern", ["model", "parts", 0, "type"])]),
        ("é", [("pattern", ["model", "parts", 0, "type"])]),
    ],
)
def test_modelpart_type_follows_kit_rule(validator: Any, part_type: str, errors: list[object]) -> None:
    document = {"model": {"path": "m", "parts": [{"path": "p", "type": part_type}]}}
    assert _errors(validator, document) == errors


@pytest.mark.parametrize(
    ("server", "errors"),
    [
        ({"name": "fs", "path": "bundles/fs.mcpb"}, []),
        ({"name": "fs", "path": "fs.MCPB"}, [("pattern", ["mcpServers", 0, "path"])]),
        ({"name": "", "path": "fs.mcpb"}, [("minLength", ["mcpServers", 0, "name"])]),
        ({"name": "fs"}, [("required", ["mcpServers", 0])]),
    ],
)
def test_mcpserver_rules(validator: Any, server: dict[str, str], errors: list[object]) -> None:
    assert _errors(validator, {"mcpServers": [server]}) == errors


@pytest.mark.parametrize(
    ("config", "digest"),
    [(VECTOR_A_CONFIG, VECTOR_A_DIGEST), (VECTOR_B_CONFIG, VECTOR_B_DIGEST), (VECTOR_C_CONFIG, VECTOR_C_DIGEST)],
    ids=["A", "B", "C"],
)
def test_vector_config_validates(validator: Any, config: bytes, digest: str) -> None:
    assert hashlib.sha256(config).hexdigest() == digest
    assert _errors(validator, json.loads(config)) == []


@pytest.mark.parametrize(
    ("config", "digest"),
    [(VECTOR_A_CONFIG, VECTOR_A_DIGEST), (VECTOR_B_CONFIG, VECTOR_B_DIGEST), (VECTOR_C_CONFIG, VECTOR_C_DIGEST)],
    ids=["A", "B", "C"],
)
def test_vector_config_is_quoted_in_format_md(config: bytes, digest: str) -> None:
    text = FORMAT_PATH.read_text(encoding="utf-8")
    assert config.decode() in text
    assert f"sha256:{digest}" in text


def test_malformed_digest_in_config_is_refused(validator: Any) -> None:
    document = json.loads(VECTOR_A_CONFIG)
    document["model"]["digest"] = "sha256:6113DC"
    assert _errors(validator, document) == [("pattern", ["model", "digest"])]


@pytest.mark.parametrize("case", ["parameters/test-data-types.yaml", "parameters/test-nested-parameters.yaml"])
def test_parameters_cases_validate_in_both_forms(validator: Any, case: str) -> None:
    doc = yaml.safe_load((DATA / case).read_text(encoding="utf-8"))
    assert _errors(validator, yaml.safe_load(doc["kitfileYaml"])) == []
    assert _errors(validator, json.loads(doc["kitfileJson"])) == []


def test_string_fields_hold_source_text(validator: Any) -> None:
    text = (DATA / "docs" / "kitfile-md-example.yaml").read_text(encoding="utf-8")
    assert _errors(validator, yaml.safe_load(text)) == [
        ("type", ["manifestVersion"]),
        ("type", ["model", "version"]),
    ]
    literal = yaml.load(text, Loader=_LiteralLoader)  # a SafeLoader subclass: no arbitrary objects
    assert literal["manifestVersion"] == "1.0"
    assert literal["model"]["version"] == "1.0"
    assert _errors(validator, literal) == []
