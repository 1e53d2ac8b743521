"""The Kitfile as a ModelKit config blob: JSON exactly as kit's ``json.Marshal`` writes it, and read back as Go's
``encoding/json`` reads it into kit's struct (spec ``kitops-modelkit.md`` §1.1, §1.2, §1.6, §2.11).

Writing: struct field order, ``manifestVersion`` and ``package`` always present, ``docs[].path`` always present, other
empty strings and lists omitted, ``parameters`` omitted only when absent, ``digest``/``diffId`` last in each element.
Reading: keys match fields case-insensitively, unknown keys are ignored, every number inside ``parameters`` becomes a
float (Go's ``float64``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from typing import Any

from pymodelkit.errors import KitfileError
from pymodelkit.kitfile.model import KitField, Kitfile, kit_fields
from pymodelkit.kitfile.yamlload import format_go_time
from pymodelkit.oci.gojson import Struct, go_json_bytes

__all__ = ["kitfile_from_json_bytes", "kitfile_to_json_bytes"]


def kitfile_to_json_bytes(kitfile: Kitfile) -> bytes:
    """Return the config blob kit writes for ``kitfile`` (compact Go JSON, including any layer digests).

    Raises:
        KitfileError: ``parameters`` holds something Go's encoder refuses: a mapping with a non-string key (kit fails
            with ``json: unsupported type: map[interface {}]interface {}``), NaN or an infinity, or an unknown type.
    """
    return go_json_bytes(_struct_json(kitfile, Kitfile, ""))


def kitfile_from_json_bytes(data: bytes) -> Kitfile:
    """Decode a config blob as Go's ``json.Unmarshal`` into kit's ``KitFile`` would.

    Raises:
        KitfileError: the bytes are not JSON, or a value has the wrong type for its field.
    """
    text = bytes(data).decode("utf-8", "replace")  # Go replaces invalid UTF-8 with U+FFFD
    try:
        document = json.loads(
            text, object_pairs_hook=_Object, parse_int=_parse_number, parse_float=_parse_number,
            parse_constant=_reject_constant,
        )  # fmt: skip
    except json.JSONDecodeError as err:
        raise KitfileError(f"invalid config JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    except ValueError as err:
        raise KitfileError(f"invalid config JSON: {err}") from None
    kitfile = Kitfile()
    problems: list[str] = []
    if document is not None:
        _decode_struct(document, kitfile, Kitfile, "", problems)
    if problems:
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise KitfileError(f"invalid config JSON: {problems[0]}{suffix}", problems=problems)
    return kitfile


# --- writing ---------------------------------------------------------------------------------------------------


def _struct_json(obj: object, cls: type, where: str) -> Struct:
    out = Struct()
    for spec in kit_fields(cls):
        value = getattr(obj, spec.attr)
        here = f"{where}.{spec.key}" if where else spec.key
        if spec.kind == "str":
            if not isinstance(value, str):
                raise KitfileError(f"cannot encode {here}: expected a string, not {type(value).__name__}")
            if value or not spec.omitempty:
                out[spec.key] = value
        elif spec.kind == "strlist":
            if value:
                out[spec.key] = [_checked_str(item, here) for item in value]
        elif spec.kind == "struct":  # Go never omits a struct value
            assert spec.item is not None
            out[spec.key] = _struct_json(value, spec.item, here)
        elif spec.kind == "ptrstruct":
            assert spec.item is not None
            if value is not None:
                out[spec.key] = _struct_json(value, spec.item, here)
        elif spec.kind == "structlist":
            assert spec.item is not None
            if value:
                out[spec.key] = [_struct_json(item, spec.item, f"{here}[{i}]") for i, item in enumerate(value)]
        elif value is not None:
            out[spec.key] = _any_json(value, here)
    return out


def _checked_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise KitfileError(f"cannot encode {where}: expected strings, not {type(value).__name__}")
    return value


def _any_json(value: object, where: str) -> object:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise KitfileError(f"cannot encode {where} as JSON: json: unsupported value: {_go_float_name(value)}")
        return value
    if isinstance(value, (_dt.datetime, _dt.date)):
        return format_go_time(value)  # time.Time marshals as its RFC 3339 text
    if isinstance(value, Mapping):
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise KitfileError(
                    f"cannot encode {where} as JSON: mapping key {key!r} is not a string "
                    "(kit fails with json: unsupported type: map[interface {}]interface {})",
                    key=repr(key),
                )
            result[key] = _any_json(item, f"{where}.{key}")
        return result
    if isinstance(value, (list, tuple)):
        return [_any_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise KitfileError(f"cannot encode {where} as JSON: unsupported type {type(value).__name__}")


def _go_float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


# --- reading ---------------------------------------------------------------------------------------------------


class _Object(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in document order (duplicates kept: Go's last one wins)."""


def _parse_number(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return number


def _reject_constant(name: str) -> float:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _fold(name: str) -> str:
    """Go's ``foldName``: the case-insensitive form of a JSON key."""
    return "".join(char.lower().upper() for char in name)


def _json_type(value: object) -> str:
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _decode_struct(value: object, obj: object, cls: type, where: str, problems: list[str]) -> None:
    if not isinstance(value, _Object):
        problems.append(f"cannot unmarshal {_json_type(value)} into {where or 'the Kitfile'} (an object)")
        return
    specs = kit_fields(cls)
    exact = {spec.key: spec for spec in specs}
    folded = {_fold(spec.key): spec for spec in specs}
    for key, item in value:
        spec = exact.get(key) or folded.get(_fold(key))
        if spec is None:
            continue  # Go ignores unknown keys
        here = f"{where}.{spec.key}" if where else spec.key
        decoded = _decode_field(item, getattr(obj, spec.attr), spec, here, problems)
        setattr(obj, spec.attr, decoded)


def _decode_field(value: object, current: object, spec: KitField, where: str, problems: list[str]) -> object:
    if spec.kind == "any":
        return _any_value(value)
    if value is None:  # null leaves a value alone, and clears pointers and slices
        return None if spec.kind == "ptrstruct" else ([] if spec.kind in ("strlist", "structlist") else current)
    if spec.kind == "str":
        if isinstance(value, str):
            return _replace_surrogates(value)
        problems.append(f"cannot unmarshal {_json_type(value)} into {where} (a string)")
        return current
    if spec.kind in ("struct", "ptrstruct"):
        assert spec.item is not None
        target = current if current is not None else spec.item()
        _decode_struct(value, target, spec.item, where, problems)
        return target
    if not isinstance(value, list) or isinstance(value, _Object):
        problems.append(f"cannot unmarshal {_json_type(value)} into {where} (an array)")
        return current
    items: list[object] = []
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        if spec.kind == "strlist":
            if item is None or isinstance(item, str):
                items.append(_replace_surrogates(item or ""))
            else:
                problems.append(f"cannot unmarshal {_json_type(item)} into {here} (a string)")
                items.append("")
        else:
            assert spec.item is not None
            element = spec.item()
            if item is not None:
                _decode_struct(item, element, spec.item, here, problems)
            items.append(element)
    return items


def _any_value(value: object) -> object:
    """Go's ``interface{}`` decoding: objects become string-keyed maps (last duplicate wins), numbers floats."""
    if isinstance(value, _Object):
        return {key: _any_value(item) for key, item in value}
    if isinstance(value, list):
        return [_any_value(item) for item in value]
    if isinstance(value, str):
        return _replace_surrogates(value)
    return value


def _replace_surrogates(text: str) -> str:
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        return "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)
    return text
