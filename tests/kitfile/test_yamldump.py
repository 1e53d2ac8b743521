"""Kitfile YAML writing as yaml.v3 with SetIndent(2) (spec kitops-modelkit.md §1.6, trap 8), and the round trip."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodelkit.errors import KitfileError
from pymodelkit.kitfile import (
    Code,
    Dataset,
    Docs,
    Kitfile,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
    dump_kitfile,
    load_kitfile,
)
from pymodelkit.kitfile.yamldump import format_go_float_g

DATA = Path(__file__).resolve().parents[1] / "data" / "kitfile"
UTC = dt.timezone.utc
DIGEST = "sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"


def _parameter_line(value: object) -> str:
    """The YAML text of one parameters entry ``v``, as the dumper writes it."""
    text = dump_kitfile(Kitfile(model=Model(parameters={"v": value})))
    prefix = 'manifestVersion: ""\nmodel:\n  parameters:\n    v:'
    assert text.startswith(prefix)
    return text[len(prefix) :]


@pytest.mark.parametrize("name", sorted(p.name for p in (DATA / "parameters").iterdir()))
def test_upstream_parameters_round_trip_yaml(name: str) -> None:
    case = yaml.safe_load((DATA / "parameters" / name).read_text())
    assert dump_kitfile(load_kitfile(case["kitfileYaml"])) == case["kitfileYaml"]


def test_full_kitfile_layout() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        package=Package(name="demo", version="1.0", description="two\nlines\n", license="Apache-2.0",
                        authors=["Jane Doe", "a, b", "yes"]),
        model=Model(name="m", path="./model", framework="pytorch",
                    parts=[ModelPart(name="lora", path="lora/", type="adapter"), ModelPart()],
                    parameters={"a10": 1, "a2": [["x", "y"], {"k": None}]}, digest=DIGEST, diff_id=DIGEST),
        code=[Code(path="src", digest=DIGEST)],
        datasets=[Dataset(name="train", path="data/train", remote_path="s3://b/k", remote_hash="etag")],
        docs=[Docs(path=""), Docs(path="README.md", description="read me")],
        prompts=[Prompt(path="AGENTS.md")],
        mcp_servers=[McpServer(name="fs", path="fs.mcpb")],
    )  # fmt: skip
    assert dump_kitfile(kitfile) == (
        "manifestVersion: 1.0.0\n"
        "package:\n"
        "  name: demo\n"
        '  version: "1.0"\n'
        "  description: |\n"
        "    two\n"
        "    lines\n"
        "  license: Apache-2.0\n"
        "  authors: [Jane Doe, 'a, b', \"yes\"]\n"
        "model:\n"
        "  name: m\n"
        "  path: ./model\n"
        "  framework: pytorch\n"
        "  parts:\n"
        "    - name: lora\n"
        "      path: lora/\n"
        "      type: adapter\n"
        "    - {}\n"
        "  parameters:\n"
        "    a2:\n"
        "      - - x\n"
        "        - \"y\"\n"
        "      - k: null\n"
        "    a10: 1\n"
        "code:\n"
        "  - path: src\n"
        "datasets:\n"
        "  - name: train\n"
        "    path: data/train\n"
        "    remotePath: s3://b/k\n"
        "    remoteHash: etag\n"
        "docs:\n"
        '  - path: ""\n'
        "  - path: README.md\n"
        "    description: read me\n"
        "prompts:\n"
        "  - path: AGENTS.md\n"
        "mcpServers:\n"
        "  - name: fs\n"
        "    path: fs.mcpb\n"
    )


def test_empty_kitfile_writes_only_manifest_version() -> None:
    assert dump_kitfile(Kitfile()) == 'manifestVersion: ""\n'


def test_empty_model_is_written_as_flow_mapping() -> None:
    assert dump_kitfile(Kitfile(manifest_version="1.0.0", model=Model())) == "manifestVersion: 1.0.0\nmodel: {}\n"


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", " plain\n"),
        ("1.0", ' "1.0"\n'),
        ("1", ' "1"\n'),
        ("0x1F", ' "0x1F"\n'),
        ("1e+06", ' "1e+06"\n'),
        (".inf", ' ".inf"\n'),
        ("true", ' "true"\n'),
        ("False", ' "False"\n'),
        ("null", ' "null"\n'),
        ("~", ' "~"\n'),
        ("", ' ""\n'),
        ("yes", ' "yes"\n'),
        ("Off", ' "Off"\n'),
        ("y", ' "y"\n'),
        ("2024-01-01", ' "2024-01-01"\n'),
        ("2001-12-14T21:59:43Z", ' "2001-12-14T21:59:43Z"\n'),
        ("1:30", ' "1:30"\n'),
        ("- a", " '- a'\n"),
        ("-a", " -a\n"),
        ("a: b", " 'a: b'\n"),
        ("a:b", " a:b\n"),
        ("#x", " '#x'\n"),
        ("a #b", " 'a #b'\n"),
        ("a#b", " a#b\n"),
        (" lead", " ' lead'\n"),
        ("trail ", " 'trail '\n"),
        ("---", " '---'\n"),
        ("it's", " it's\n"),
        ("'q'", " '''q'''\n"),
        ("*x", " '*x'\n"),
        ("tab\there", ' "tab\\there"\n'),
        ("bell\a", ' "bell\\a"\n'),
        ("del\x7f", ' "del\\x7F"\n'),
        ("bom\ufeff", ' "bom\\uFEFF"\n'),
        ("emoji 😀", ' "emoji \\U0001F600"\n'),
        ("café ünï 中文", " café ünï 中文\n"),
        ("multi\nline", " |-\n      multi\n      line\n"),
        ("multi\nline\n", " |\n      multi\n      line\n"),
        ("keep\n\n", " |+\n      keep\n\n"),
        ("\nlead", " |2-\n\n      lead\n"),
        ("  indented\nx", " |2-\n        indented\n      x\n"),
        ("space \nbreak", ' "space \\nbreak"\n'),
        ("cr\r\nlf", ' "cr\\r\\nlf"\n'),
        ("x" * 200 + " y" * 50, " " + "x" * 200 + " y" * 50 + "\n"),
    ],
)
def test_string_styles(value: str, line: str) -> None:
    assert _parameter_line(value) == line


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1000000.0, "1e+06"),
        (12.0, "12"),
        (1200.0, "1200"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (12.3, "12.3"),
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (5e-324, "5e-324"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0, "-0"),
        (math.inf, ".inf"),
        (-math.inf, "-.inf"),
        (math.nan, ".nan"),
    ],
)
def test_floats_use_go_g_format(value: float, text: str) -> None:
    assert format_go_float_g(value) == text
    assert _parameter_line(value) == f" {text}\n"


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (None, " null\n"),
        (True, " true\n"),
        (-123, " -123\n"),
        (18446744073709551615, " 18446744073709551615\n"),
        (dt.datetime(2024, 1, 1, tzinfo=UTC), " 2024-01-01T00:00:00Z\n"),
        (dt.datetime(2001, 12, 14, 21, 59, 43, 100000, dt.timezone(dt.timedelta(hours=-5))),
         " 2001-12-14T21:59:43.1-05:00\n"),
        (dt.date(2024, 2, 3), " 2024-02-03T00:00:00Z\n"),
        ({}, " {}\n"),
        ([], " []\n"),
        ([[1, 2], [3]], "\n      - - 1\n        - 2\n      - - 3\n"),
        ([{"a": 1, "b": [2]}], "\n      - a: 1\n        b:\n          - 2\n"),
        ((1, "x"), "\n      - 1\n      - x\n"),
    ],
)  # fmt: skip
def test_other_parameter_values(value: object, line: str) -> None:
    assert _parameter_line(value) == line


def test_map_keys_use_natural_order() -> None:
    keys = ["b", "a10", "a2", "a01", "a1", "B", "10", "9", "_x", "é"]
    text = dump_kitfile(Kitfile(model=Model(parameters=dict.fromkeys(keys, 0))))
    written = [line.split(":")[0].strip() for line in text.splitlines()[3:]]
    # "_x" sorts first: at a non-letter, non-digit position the digit run's value (none, so 0) decides
    assert written == ["_x", '"9"', '"10"', "B", "a1", "a01", "a2", "a10", "b", "é"]


def test_mixed_key_types_sort_numbers_first() -> None:
    text = dump_kitfile(Kitfile(model=Model(parameters={"s": 1, 2: 1, 1.5: 1, True: 1, None: 1})))
    assert text.splitlines()[3:] == ["    true: 1", "    1.5: 1", "    2: 1", "    null: 1", "    s: 1"]


def test_long_and_multiline_keys_use_the_complex_form() -> None:
    long_key = "k" * 129
    parameters = {long_key: ["q", {"r": 1}], "a\nb": {"x": 2}, "k" * 128: 1}
    text = dump_kitfile(Kitfile(model=Model(parameters=parameters)))
    assert text == (
        'manifestVersion: ""\nmodel:\n  parameters:\n'
        "    ? |-\n      a\n      b\n    : x: 2\n"
        f"    {'k' * 128}: 1\n"
        f"    ? {long_key}\n    : - q\n      - r: 1\n"
    )
    assert load_kitfile(text).model == Model(parameters=parameters)


def test_unknown_parameter_types_are_refused() -> None:
    with pytest.raises(KitfileError, match=r"^cannot write a set value in Kitfile parameters$"):
        dump_kitfile(Kitfile(model=Model(parameters={1, 2})))


def test_non_string_field_is_refused() -> None:
    with pytest.raises(KitfileError, match=r"^Kitfile field 'name' must be a string, not int$"):
        dump_kitfile(Kitfile(package=Package(name=3)))  # type: ignore[arg-type]


# --- round trip ------------------------------------------------------------------------------------------------

_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\x85\u2028\u2029"),  # no lone surrogates, no YAML 1.1 breaks
    max_size=12,
)
_WORDS = st.sampled_from(
    ["", "1.0", "true", "yes", "null", "~", "- x", "a: b", "#c", " x", "x ", "2024-01-01", "0x1F", "a\nb\n", "\n",
     "it's", "'", '"', "\\", "---", "é", "\t", "1:30", "<<", "k" * 130]
)  # fmt: skip
_STRINGS = st.one_of(_TEXT, _WORDS)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False).filter(lambda x: math.copysign(1.0, x) > 0 or x != 0),  # -0.0 reads back as int 0
    _STRINGS,
    st.datetimes(timezones=st.just(UTC)),
)
_PARAMETERS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_STRINGS, inner, max_size=4)),
    max_leaves=12,
)
_DIGESTS = st.sampled_from(["", DIGEST])


@st.composite
def _kitfiles(draw: st.DrawFn) -> Kitfile:
    def element(cls: type, **extra: object) -> object:
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            if field.name in ("digest", "diff_id"):
                values[field.name] = draw(_DIGESTS)
            elif field.name == "parameters":
                values[field.name] = draw(st.none() | _PARAMETERS)
            elif field.type == "str":
                values[field.name] = draw(_STRINGS)
        values.update(extra)
        return cls(**values)

    def elements(cls: type) -> list[object]:
        return [element(cls) for _ in range(draw(st.integers(min_value=0, max_value=2)))]

    model = None
    if draw(st.booleans()):
        model = element(Model, parts=elements(ModelPart))
    return Kitfile(
        manifest_version=draw(_STRINGS),
        package=element(Package, authors=draw(st.lists(_STRINGS, max_size=3))),  # type: ignore[arg-type]
        model=model,  # type: ignore[arg-type]
        code=elements(Code),  # type: ignore[arg-type]
        datasets=elements(Dataset),  # type: ignore[arg-type]
        docs=elements(Docs),  # type: ignore[arg-type]
        prompts=elements(Prompt),  # type: ignore[arg-type]
        mcp_servers=elements(McpServer),  # type: ignore[arg-type]
    )


def _without_digests(kitfile: Kitfile) -> Kitfile:
    copy = kitfile.copy()
    for _, element in copy.elements():
        element.digest = ""
        element.diff_id = ""
    return copy


@settings(max_examples=300, deadline=None)
@given(_kitfiles())
def test_dump_then_load_round_trips(kitfile: Kitfile) -> None:
    text = dump_kitfile(kitfile)
    assert load_kitfile(text) == _without_digests(kitfile)
    assert dump_kitfile(load_kitfile(text)) == text
