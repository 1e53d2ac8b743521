"""Go encoding/json byte compatibility (spec format.md, "JSON encoding")."""

from __future__ import annotations

import datetime as dt

import pytest

from pymodelkit.oci.gojson import Struct, format_go_float, go_json_bytes, indent_json


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12.0, "12"),
        (1200.0, "1200"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (0.000001, "0.000001"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e6, "1000000"),
        (123456789.123, "123456789.123"),
    ],
)
def test_floats_format_as_go(value: float, text: str) -> None:
    assert format_go_float(value) == text


def test_nan_is_refused_as_go_refuses_it() -> None:
    with pytest.raises(ValueError, match="unsupported value"):
        format_go_float(float("nan"))


def test_strings_are_html_escaped_like_go() -> None:
    encoded = go_json_bytes("<a href='x'>&\u2028\u2029\n\t\b\f\x01\x7f\"\\é")
    assert encoded == '"\\u003ca href=\'x\'\\u003e\\u0026\\u2028\\u2029\\n\\t\\b\\f\\u0001\x7f\\"\\\\é"'.encode()


def test_maps_sort_keys_and_structs_keep_order() -> None:
    assert go_json_bytes({"b": 1, "a": [True, None]}) == b'{"a":[true,null],"b":1}'
    assert go_json_bytes(Struct(b=1, a=2)) == b'{"b":1,"a":2}'


def test_times_encode_as_rfc3339nano() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert go_json_bytes(when) == b'"2024-01-01T00:00:00Z"'


def test_non_string_map_keys_are_refused() -> None:
    with pytest.raises(TypeError, match="non-string key"):
        go_json_bytes({1: "x"})


def test_indent_matches_go_marshal_indent() -> None:
    compact = b'{"a":[1,{"b":"x:,{"}],"c":{},"d":[],"e":null}'
    assert indent_json(compact) == (
        b'{\n  "a": [\n    1,\n    {\n      "b": "x:,{"\n    }\n  ],\n  "c": {},\n  "d": [],\n  "e": null\n}'
    )


def test_compact_matches_go_json_compact_with_html_escaping() -> None:
    from pymodelkit.oci.gojson import compact_json

    assert compact_json('{ "a" : "<x> \\" &" ,\n\t"b": [1, 2] }') == '{"a":"\\u003cx\\u003e \\" \\u0026","b":[1,2]}'
