"""Kitfile YAML reading with yaml.v3 semantics (spec kitops-modelkit.md §1.1, §1.2, trap 8)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from pymodelkit.errors import KitfileError, NotFoundError
from pymodelkit.kitfile import Code, Kitfile, Model, Package, load_kitfile, read_kitfile
from pymodelkit.kitfile.yamlload import parse_go_timestamp, resolve_scalar

UTC = dt.timezone.utc
EST = dt.timezone(-dt.timedelta(hours=5))


def _parameters(yaml_value: str) -> object:
    kitfile = load_kitfile(f"model:\n  parameters:\n    v: {yaml_value}\n")
    assert kitfile.model is not None
    assert isinstance(kitfile.model.parameters, dict)
    return kitfile.model.parameters["v"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.0", "1.0"),
        ("1.10", "1.10"),
        ("1", "1"),
        ("1.0.0", "1.0.0"),
        ("null", ""),
        ("~", ""),
        ("", ""),
        ("'1.0'", "1.0"),
        ('"null"', "null"),
        ("true", "true"),
        ("0x1F", "0x1F"),
        ("2024-01-01", "2024-01-01"),
        ("!!str 7", "7"),
    ],
)
def test_string_fields_keep_the_source_text(text: str, expected: str) -> None:
    assert load_kitfile(f"manifestVersion: {text}\n").manifest_version == expected


def test_loads_every_section_into_the_model() -> None:
    kitfile = load_kitfile(
        "manifestVersion: 1.0.0\n"
        "package:\n  name: n\n  version: 1.10\n  authors: [Jane, ~, 'Bob']\n"
        "model:\n  name: m\n  path: ./m\n  parts:\n    - path: p\n      type: lora\n    -\n"
        "code:\n  - path: src\n    license: MIT\n"
        "datasets:\n  - path: d\n    remotePath: s3://b/k\n    remoteHash: abc\n    parameters: {a: 1}\n"
        "docs:\n  - path: README.md\n"
        "prompts:\n  - name: p\n    path: AGENTS.md\n"
        "mcpServers:\n  - name: fs\n    path: fs.mcpb\n    description: files\n"
    )
    assert kitfile.package == Package(name="n", version="1.10", authors=["Jane", "", "Bob"])
    assert kitfile.model is not None
    assert kitfile.model.path == "./m"
    assert [(p.path, p.type) for p in kitfile.model.parts] == [("p", "lora"), ("", "")]
    assert kitfile.code == [Code(path="src", license="MIT")]
    assert (kitfile.datasets[0].remote_path, kitfile.datasets[0].remote_hash) == ("s3://b/k", "abc")
    assert kitfile.datasets[0].parameters == {"a": 1}
    assert [d.path for d in kitfile.docs] == ["README.md"]
    assert [(p.name, p.path) for p in kitfile.prompts] == [("p", "AGENTS.md")]
    assert [(s.name, s.path, s.description) for s in kitfile.mcp_servers] == [("fs", "fs.mcpb", "files")]


def test_empty_mapping_is_a_valid_kitfile() -> None:
    assert load_kitfile("{}") == Kitfile()


def test_null_model_is_absent_and_empty_model_is_present() -> None:
    assert load_kitfile("model:\n").model is None
    assert load_kitfile("model: {}\n").model == Model()


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("0xFF", 255),
        ("017", 15),
        ("0o17", 15),
        ("0b101", 5),
        ("-0b101", -5),
        ("0b-101", -5),
        ("1_000", 1000),
        ("+12", 12),
        ("-0", 0),
        ("9223372036854775807", 9223372036854775807),
        ("18446744073709551615", 18446744073709551615),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("1_000.5", 1000.5),
        ("08", 8.0),
        ("99999999999999999999", 1e20),
        (".5", 0.5),
        (".inf", math.inf),
        ("+.Inf", math.inf),
        ("-.INF", -math.inf),
        ("1e400", "1e400"),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("tRUE", "tRUE"),
        ("null", None),
        ("~", None),
        ("", None),
        ("'017'", "017"),
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!float 12", 12.0),
        ("0x", "0x"),
        ("1.2.3", "1.2.3"),
        ("1:30", "1:30"),
        ("<<", "<<"),
    ],
)
def test_parameters_resolve_as_yaml_v3(yaml_value: str, expected: object) -> None:
    value = _parameters(yaml_value)
    assert value == expected
    assert type(value) is type(expected)


def test_parameters_nan() -> None:
    value = _parameters(".nan")
    assert isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("2024-01-01", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-1-2", dt.datetime(2024, 1, 2, tzinfo=UTC)),
        ("2001-12-14t21:59:43.10-05:00", dt.datetime(2001, 12, 14, 21, 59, 43, 100000, EST)),
        ("2001-12-14T21:59:43Z", dt.datetime(2001, 12, 14, 21, 59, 43, tzinfo=UTC)),
        ("2001-12-14 21:59:43.1234567", dt.datetime(2001, 12, 14, 21, 59, 43, 123456, tzinfo=UTC)),
    ],
)
def test_unquoted_timestamps_become_times(yaml_value: str, expected: dt.datetime) -> None:
    value = _parameters(yaml_value)
    assert value == expected
    assert isinstance(value, dt.datetime) and value.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text", ["'2024-01-01'", "2024-02-30", "2024-13-01", "2024-01-01T10:00:00", "2024-01-01 10:00:00Z", "24-01-01"]
)
def test_non_timestamps_stay_strings(text: str) -> None:
    assert isinstance(_parameters(text), str)


def test_parse_go_timestamp_rejects_hour_24() -> None:
    assert parse_go_timestamp("2024-01-01T24:00:00Z") is None


def test_resolve_scalar_refuses_text_that_does_not_fit_an_explicit_tag() -> None:
    with pytest.raises(ValueError, match=r"cannot decode !!str `abc` as a !!int"):
        resolve_scalar("abc", "!!int")


def test_explicit_tag_mismatch_is_a_kitfile_error() -> None:
    with pytest.raises(KitfileError, match=r"^Kitfile:1: cannot decode !!str `abc` as a !!int$") as info:
        load_kitfile("manifestVersion: !!int abc\n")
    assert info.value.line == 1


def test_parameters_keep_block_scalars_and_structure() -> None:
    kitfile = load_kitfile("model:\n  parameters: |\n    test-string\n")
    assert kitfile.model is not None and kitfile.model.parameters == "test-string\n"
    kitfile = load_kitfile("model:\n  parameters:\n    - [1, two]\n    - {k: v}\n    - null\n")
    assert kitfile.model is not None and kitfile.model.parameters == [[1, "two"], {"k": "v"}, None]


def test_parameters_keep_non_string_keys() -> None:
    kitfile = load_kitfile("model:\n  parameters:\n    1: one\n    x: ex\n    2024-01-01: day\n")
    assert kitfile.model is not None
    assert kitfile.model.parameters == {1: "one", "x": "ex", dt.datetime(2024, 1, 1, tzinfo=UTC): "day"}


def test_parameters_follow_aliases() -> None:
    kitfile = load_kitfile("model:\n  parameters:\n    a: &x [1, 2]\n    b: *x\n")
    assert kitfile.model is not None and kitfile.model.parameters == {"a": [1, 2], "b": [1, 2]}


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(KitfileError, match=r"^Kitfile:2: anchor value contains itself$"):
        load_kitfile("model:\n  parameters: &a\n    x: [*a]\n")


def test_unknown_top_level_key_names_key_and_line() -> None:
    with pytest.raises(KitfileError) as info:
        load_kitfile("manifestVersion: 1.0.0\nprompt:\n  - path: x\n")
    assert str(info.value) == 'Kitfile:2: unknown field "prompt" in the top level'
    assert (info.value.key, info.value.line, info.value.path) == ("prompt", 2, "Kitfile")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  path: x\n  lang: py\n", 'Kitfile:3: unknown field "lang" in model'),
        ("model:\n  parts:\n    - path: x\n      kind: y\n", 'Kitfile:4: unknown field "kind" in model.parts[0]'),
        ("code:\n  - path: x\n    digest: sha256:abc\n", 'Kitfile:3: unknown field "digest" in code[0]'),
        ("package:\n  author: me\n", 'Kitfile:2: unknown field "author" in package'),
        ("dataset:\n  - path: d\n", 'Kitfile:1: unknown field "dataset" in the top level'),
        ("Model:\n  path: d\n", 'Kitfile:1: unknown field "Model" in the top level'),
    ],
)
def test_unknown_keys_anywhere_are_errors(text: str, message: str) -> None:
    with pytest.raises(KitfileError) as info:
        load_kitfile(text)
    assert str(info.value) == message


def test_duplicate_key_names_key_and_both_lines() -> None:
    with pytest.raises(KitfileError) as info:
        load_kitfile("model:\n  name: m\n  path: a\n  path: b\n")
    assert str(info.value) == 'Kitfile:4: mapping key "path" already defined at line 3'
    assert (info.value.key, info.value.line) == ("path", 4)


def test_duplicate_keys_in_parameters_are_errors() -> None:
    with pytest.raises(KitfileError, match=r'^Kitfile:4: mapping key "a" already defined at line 3$'):
        load_kitfile("model:\n  parameters:\n    a: 1\n    'a': 2\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("manifestVersion: [1]\n", "Kitfile:1: manifestVersion must be a string, not a sequence"),
        ("package:\n  name: {a: b}\n", "Kitfile:2: package.name must be a string, not a mapping"),
        ("package:\n  authors: me\n", 'Kitfile:2: package.authors must be a sequence, not the scalar "me"'),
        ("package:\n  authors: [[a]]\n", "Kitfile:2: package.authors[0] must be a string, not a sequence"),
        ("model: ./m\n", 'Kitfile:1: model must be a mapping, not the scalar "./m"'),
        ("code:\n  path: x\n", "Kitfile:2: code must be a sequence, not a mapping"),
        ("code:\n  - x\n", 'Kitfile:2: code[0] must be a mapping, not the scalar "x"'),
        ("- a\n", "Kitfile:1: the top level must be a mapping, not a sequence"),
    ],
)
def test_wrong_types_are_errors_with_the_line(text: str, message: str) -> None:
    with pytest.raises(KitfileError) as info:
        load_kitfile(text)
    assert str(info.value) == message


def test_every_problem_is_kept() -> None:
    with pytest.raises(KitfileError) as info:
        load_kitfile("foo: 1\nmodel:\n  bar: 2\npackage:\n  name: [x]\n")
    assert str(info.value) == 'Kitfile:1: unknown field "foo" in the top level (and 2 more problems)'
    assert info.value.problems == [
        'Kitfile:1: unknown field "foo" in the top level',
        'Kitfile:3: unknown field "bar" in model',
        "Kitfile:5: package.name must be a string, not a sequence",
    ]


@pytest.mark.parametrize("text", ["", "   \n", "# just a comment\n", b""])
def test_empty_document_is_an_error(text: str | bytes) -> None:
    with pytest.raises(KitfileError, match=r"^Kitfile: Kitfile is empty$"):
        load_kitfile(text)


@pytest.mark.parametrize("text", ["---\n", "~\n", "null\n"])
def test_null_document_is_an_empty_kitfile(text: str) -> None:
    assert load_kitfile(text) == Kitfile()


def test_only_the_first_document_is_read() -> None:
    kitfile = load_kitfile("manifestVersion: 1.0.0\n---\nunknown: [\n")
    assert kitfile == Kitfile(manifest_version="1.0.0")


def test_malformed_yaml_is_an_error_with_the_line() -> None:
    with pytest.raises(KitfileError) as info:
        load_kitfile("package:\n  name: a\n   bad: [\n", source="my/Kitfile")
    assert str(info.value).startswith("my/Kitfile:3: invalid YAML: ")
    assert info.value.line == 3


def test_unacceptable_characters_are_an_error() -> None:
    with pytest.raises(KitfileError, match=r"^Kitfile: invalid YAML: unacceptable character #x0001"):
        load_kitfile("a\x01")


def test_bytes_are_decoded_as_yaml_does() -> None:
    assert load_kitfile("package:\n  name: café\n".encode()).package.name == "café"
    assert load_kitfile("package:\n  name: x\n".encode("utf-16")).package.name == "x"


def test_read_kitfile_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "Kitfile"
    path.write_text("manifestVersion: 1.0.0\nmodel:\n  path: .\n")
    assert read_kitfile(path) == Kitfile(manifest_version="1.0.0", model=Model(path="."))
    path.write_text("manifestVersion: 1.0.0\nextra: 1\n")
    with pytest.raises(KitfileError) as info:
        read_kitfile(str(path))
    assert str(info.value) == f'{path}:2: unknown field "extra" in the top level'
    assert info.value.path == str(path)


def test_read_kitfile_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        read_kitfile(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'}: no such Kitfile"
