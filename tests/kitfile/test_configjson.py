"""The Kitfile config blob: Go json.Marshal bytes and Go json.Unmarshal reading (spec kitops-modelkit.md §1.1,
§1.2, §1.6, §2.13 vectors A, B, C; trap 7)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
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
    kitfile_from_json_bytes,
    kitfile_to_json_bytes,
    load_kitfile,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "kitfile"
A_MODEL = "sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"
A_DATASET = "sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f"
B_MODEL = "sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32"
B_CODE = "sha256:ecad50eb0c0d444307ad97a1ec9c5ebcd3f35be05512797443e93de929d74439"
B_DATASET = "sha256:f33c29d60930cf3270479f2f25d0e0edbd1e1f79dc209829ff261e4d524b3442"


def _upstream_kitfile(name: str) -> Kitfile:
    return load_kitfile(yaml.safe_load((DATA / "pack-unpack" / name).read_text())["kitfile"])


def _params_json(value: object) -> bytes:
    return kitfile_to_json_bytes(Kitfile(model=Model(parameters=value)))


def test_vector_a_config() -> None:
    kitfile = load_kitfile(
        "manifestVersion: 1.0.0\npackage:\n  name: test-repack\nmodel:\n  path: test-file.txt\n"
        "datasets:\n  - path: test-dir/test-subfile.txt\n"
    )
    assert kitfile.model is not None
    kitfile.model.digest = kitfile.model.diff_id = A_MODEL
    kitfile.datasets[0].digest = kitfile.datasets[0].diff_id = A_DATASET
    blob = kitfile_to_json_bytes(kitfile)
    assert blob == (
        b'{"manifestVersion":"1.0.0","package":{"name":"test-repack"},"model":{"path":"test-file.txt",'
        b'"digest":"' + A_MODEL.encode() + b'","diffId":"' + A_MODEL.encode() + b'"},'
        b'"datasets":[{"path":"test-dir/test-subfile.txt",'
        b'"digest":"' + A_DATASET.encode() + b'","diffId":"' + A_DATASET.encode() + b'"}]}'
    )
    assert len(blob) == 475
    assert hashlib.sha256(blob).hexdigest() == "e8497a2e7be9fd69cfdd090ab24c323c3629deca91c6ac825e73b2d15d4e2454"


def test_vector_b_config() -> None:
    kitfile = _upstream_kitfile("test_pack-basic-model.yaml")
    assert kitfile.model is not None
    kitfile.model.digest = kitfile.model.diff_id = B_MODEL
    kitfile.code[0].digest = kitfile.code[0].diff_id = B_CODE
    kitfile.datasets[0].digest = kitfile.datasets[0].diff_id = B_DATASET
    blob = kitfile_to_json_bytes(kitfile)
    assert len(blob) == 688
    assert hashlib.sha256(blob).hexdigest() == "b8b4e064bd9919e0bc45df9a572af0bf3be65865f8fcfcba850b1ffeed98814f"
    assert b'"model":{"name":"test-model","path":"./model","digest"' in blob  # paths stay as written


def test_vector_c_config() -> None:
    blob = kitfile_to_json_bytes(_upstream_kitfile("test_empty-kitfile.yaml"))
    assert blob == b'{"manifestVersion":"1.0.0","package":{"name":"test-empty"}}'
    assert hashlib.sha256(blob).hexdigest() == "71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a"


def test_empty_kitfile_keeps_manifest_version_and_package() -> None:
    assert kitfile_to_json_bytes(load_kitfile("{}")) == b'{"manifestVersion":"","package":{}}'


def test_field_order_omissions_and_layer_info_last() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        package=Package(name="p", version="1", description="d", license="MIT", authors=["a", "b"]),
        model=Model(name="m", path="./m", license="L", framework="f", format="gguf", version="v", description="x",
                    parts=[ModelPart(name="n", path="p", license="l", type="t", digest="d1", diff_id="i1")],
                    parameters={"b": 1, "a": 2}, digest="d0", diff_id="i0"),
        code=[Code(path="c", description="cd", license="cl", digest="d2", diff_id="i2")],
        datasets=[Dataset(name="n", path="p", remote_path="s3://b/k", remote_hash="h", description="x",
                          license="l", parameters=[1]), Dataset(path="q", digest="d3")],
        docs=[Docs(), Docs(path="README.md", description="r", digest="d4", diff_id="i4")],
        prompts=[Prompt(name="n", path="p", description="x", digest="d5", diff_id="i5")],
        mcp_servers=[McpServer(name="n", path="s.mcpb", description="x", digest="d6", diff_id="i6")],
    )  # fmt: skip
    assert kitfile_to_json_bytes(kitfile) == (
        b'{"manifestVersion":"1.0.0",'
        b'"package":{"name":"p","version":"1","description":"d","license":"MIT","authors":["a","b"]},'
        b'"model":{"name":"m","path":"./m","license":"L","framework":"f","format":"gguf","version":"v",'
        b'"description":"x","parts":[{"name":"n","path":"p","license":"l","type":"t","digest":"d1","diffId":"i1"}],'
        b'"parameters":{"a":2,"b":1},"digest":"d0","diffId":"i0"},'
        b'"code":[{"path":"c","description":"cd","license":"cl","digest":"d2","diffId":"i2"}],'
        b'"datasets":[{"name":"n","path":"p","remotePath":"s3://b/k","remoteHash":"h","description":"x",'
        b'"license":"l","parameters":[1]},{"path":"q","digest":"d3"}],'
        b'"docs":[{"path":""},{"path":"README.md","description":"r","digest":"d4","diffId":"i4"}],'
        b'"prompts":[{"name":"n","path":"p","description":"x","digest":"d5","diffId":"i5"}],'
        b'"mcpServers":[{"name":"n","path":"s.mcpb","description":"x","digest":"d6","diffId":"i6"}]}'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({}, b"{}"),
        ([], b"[]"),
        (0, b"0"),
        ("", b'""'),
        (False, b"false"),
        (12.0, b"12"),
        (1200.0, b"1200"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        (1000000.0, b"1000000"),
        (18446744073709551615, b"18446744073709551615"),
        ("<a&b>", b'"\\u003ca\\u0026b\\u003e"'),
        ("\u2028\u2029", b'"\\u2028\\u2029"'),
        ("\n\r\t\b\f\x01", b'"\\n\\r\\t\\b\\f\\u0001"'),
        ({"b": 1, "B": 2, "a": 3, "é": 4}, '{"B":2,"a":3,"b":1,"é":4}'.encode()),
        (dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), b'"2024-01-01T00:00:00Z"'),
        (dt.datetime(1, 2, 3, 4, 5, 6, 789000, dt.timezone(dt.timedelta(hours=5, minutes=30))),
         b'"0001-02-03T04:05:06.789+05:30"'),
    ],
)  # fmt: skip
def test_parameters_encode_as_go_does(value: object, text: bytes) -> None:
    assert _params_json(value) == b'{"manifestVersion":"","package":{},"model":{"parameters":' + text + b"}}"


def test_parameters_omitted_only_when_absent() -> None:
    assert _params_json(None) == b'{"manifestVersion":"","package":{},"model":{}}'


@pytest.mark.parametrize("name", sorted(p.name for p in (DATA / "parameters").iterdir()))
def test_upstream_parameters_json(name: str) -> None:
    case = yaml.safe_load((DATA / "parameters" / name).read_text())
    assert kitfile_to_json_bytes(load_kitfile(case["kitfileYaml"])) == case["kitfileJson"].encode()


def test_yaml_timestamp_parameter_becomes_rfc3339_json() -> None:
    kitfile = load_kitfile("model:\n  parameters:\n    when: 2024-01-01\n")
    assert kitfile_to_json_bytes(kitfile).endswith(b'"parameters":{"when":"2024-01-01T00:00:00Z"}}}')


def test_non_string_map_key_fails_naming_the_key() -> None:
    kitfile = load_kitfile("datasets:\n  - path: d\n    parameters:\n      outer:\n        1: x\n")
    with pytest.raises(KitfileError) as info:
        kitfile_to_json_bytes(kitfile)
    assert str(info.value) == (
        "cannot encode datasets[0].parameters.outer as JSON: mapping key 1 is not a string "
        "(kit fails with json: unsupported type: map[interface {}]interface {})"
    )
    assert info.value.key == "1"


@pytest.mark.parametrize(("value", "name"), [(math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf")])
def test_nan_and_infinities_fail(value: float, name: str) -> None:
    with pytest.raises(KitfileError, match=rf"^cannot encode model\.parameters\[0\] as JSON: json: unsupported value: "
                       rf"{re.escape(name)}$"):  # fmt: skip
        _params_json([value])


# --- reading ---------------------------------------------------------------------------------------------------


def test_reads_config_back_with_digests() -> None:
    blob = kitfile_to_json_bytes(_upstream_kitfile("test_pack-basic-model.yaml"))
    kitfile = kitfile_from_json_bytes(blob)
    assert kitfile == _upstream_kitfile("test_pack-basic-model.yaml")
    vector_a = (
        b'{"manifestVersion":"1.0.0","package":{"name":"test-repack"},"model":{"path":"test-file.txt",'
        b'"digest":"' + A_MODEL.encode() + b'","diffId":"' + A_MODEL.encode() + b'"},'
        b'"datasets":[{"path":"test-dir/test-subfile.txt","digest":"' + A_DATASET.encode() + b'","diffId":"'
        + A_DATASET.encode() + b'"}]}'
    )
    kitfile = kitfile_from_json_bytes(vector_a)
    assert kitfile.model == Model(path="test-file.txt", digest=A_MODEL, diff_id=A_MODEL)
    assert kitfile_to_json_bytes(kitfile) == vector_a


def test_keys_match_case_insensitively_and_unknown_keys_are_ignored() -> None:
    blob = (
        b'{"MANIFESTVERSION":"1.0.0","Package":{"NAME":"x","name":"y","authors":["a",null]},'
        b'"model":{"Path":"m","DIGEST":"d","\xe2\x84\xaaind":"ignored"},"extra":{"a":1},'
        b'"mcpservers":[{"name":"s","path":"s.mcpb"}],"MCPSERVERS ":[]}'
    )
    kitfile = kitfile_from_json_bytes(blob)
    assert kitfile.manifest_version == "1.0.0"
    assert kitfile.package == Package(name="y", authors=["a", ""])  # the last of the matching keys wins
    assert kitfile.model == Model(path="m", digest="d")
    assert kitfile.mcp_servers == [McpServer(name="s", path="s.mcpb")]


def test_go_folds_unicode_kelvin_sign_in_keys() -> None:
    kitfile = kitfile_from_json_bytes('{"pac\u212aage":{"name":"k"}}'.encode())
    assert kitfile.package.name == "k"


def test_numbers_in_parameters_become_floats() -> None:
    blob = b'{"model":{"parameters":{"big":1000000,"f":12.0,"i":3,"neg":-0,"list":[1,2.5e3],"s":"x","n":null}}}'
    kitfile = kitfile_from_json_bytes(blob)
    assert kitfile.model is not None
    parameters = kitfile.model.parameters
    assert parameters == {"big": 1e6, "f": 12.0, "i": 3.0, "neg": -0.0, "list": [1.0, 2500.0], "s": "x", "n": None}
    assert isinstance(parameters, dict)
    assert all(isinstance(parameters[key], float) for key in ("big", "f", "i", "neg"))


def test_unpack_round_trip_yaml_to_json_to_yaml() -> None:
    # Kitfile -> config JSON -> Go float64 -> YAML (spec §1.6, "Round trip for unpack/info")
    source = load_kitfile("model:\n  parameters:\n    big: 1000000\n    f: 12.0\n    when: 2024-01-01\n    hex: 0xFF\n")
    kitfile = kitfile_from_json_bytes(kitfile_to_json_bytes(source))
    assert dump_kitfile(kitfile) == (
        'manifestVersion: ""\nmodel:\n  parameters:\n    big: 1e+06\n    f: 12\n    hex: 255\n'
        '    when: "2024-01-01T00:00:00Z"\n'
    )


def test_null_document_and_null_fields() -> None:
    assert kitfile_from_json_bytes(b"null") == Kitfile()
    assert kitfile_from_json_bytes(b'{"manifestVersion":null,"package":null,"model":null,"code":null}') == Kitfile()
    assert kitfile_from_json_bytes(b'{"model":{}}').model == Model()


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters() -> None:
    kitfile = kitfile_from_json_bytes(b'{"package":{"name":"a\xffb","description":"\\ud800"}}')
    assert (kitfile.package.name, kitfile.package.description) == ("a\ufffdb", "\ufffd")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "invalid config JSON: Expecting value (line 1, column 1)"),
        (b'{"a":', "invalid config JSON: Expecting value (line 1, column 6)"),
        (b"{} x", "invalid config JSON: Extra data (line 1, column 4)"),
        (b'{"model":{"parameters":NaN}}', "invalid config JSON: invalid character 'N' looking for beginning of value"),
        (b'{"model":{"parameters":1e400}}',
         "invalid config JSON: json: cannot unmarshal number 1e400 into Go value of type float64"),
        (b"[]", "invalid config JSON: cannot unmarshal array into the Kitfile (an object)"),
        (b'{"manifestVersion":1}', "invalid config JSON: cannot unmarshal number into manifestVersion (a string)"),
        (b'{"package":{"authors":"a"}}',
         "invalid config JSON: cannot unmarshal string into package.authors (an array)"),
        (b'{"code":[{"path":true}],"model":[]}',
         "invalid config JSON: cannot unmarshal bool into code[0].path (a string) (and 1 more problem)"),
    ],
)  # fmt: skip
def test_malformed_config_is_a_kitfile_error(blob: bytes, message: str) -> None:
    with pytest.raises(KitfileError) as info:
        kitfile_from_json_bytes(blob)
    assert str(info.value) == message


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
    | st.integers(min_value=-(2**53), max_value=2**53),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
_TEXTS = st.text(st.characters(codec="utf-8"), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    name=_TEXTS,
    authors=st.lists(_TEXTS, max_size=3),
    parameters=st.none() | _JSON_VALUES,
    paths=st.lists(_TEXTS, max_size=3),
    digest=_TEXTS,
)
def test_json_round_trips(name: str, authors: list[str], parameters: object, paths: list[str], digest: str) -> None:
    kitfile = Kitfile(
        manifest_version=name,
        package=Package(name=name, authors=authors),
        model=Model(path=name, parameters=parameters, digest=digest, diff_id=digest),
        code=[Code(path=p, digest=digest) for p in paths],
        docs=[Docs(path=p) for p in paths],
    )
    blob = kitfile_to_json_bytes(kitfile)
    assert kitfile_from_json_bytes(blob) == kitfile
    assert kitfile_to_json_bytes(kitfile_from_json_bytes(blob)) == blob
