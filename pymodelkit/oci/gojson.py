"""JSON bytes exactly as Go's ``encoding/json`` ``Marshal`` writes them.

kit computes config and manifest digests over Go-encoded JSON, so pymodelkit must produce the same bytes (spec
``format.md``, "JSON encoding"): compact, HTML-escaped strings, ``\\u2028``/``\\u2029`` escaped, map keys sorted by
byte order, struct fields in declaration order, floats in Go's shortest form (``12`` not ``12.0``, ``1e+21``,
``1e-7``). A :class:`Struct` keeps its keys in insertion order (a Go struct); a plain ``dict`` is a Go map and is
sorted. ``datetime`` values encode as Go ``time.Time`` does (RFC 3339 with nanoseconds, trailing zeros dropped).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

__all__ = [
    "Struct",
    "as_struct",
    "compact_json",
    "format_go_float",
    "format_rfc3339nano",
    "go_json_bytes",
    "go_json_string",
    "indent_json",
]


class Struct(dict[str, object]):
    """A JSON object whose keys keep insertion order, as the fields of a Go struct do."""


def as_struct(value: object) -> object:
    """A decoded JSON value with every object turned into a :class:`Struct`, so it encodes again with its keys in the
    order they came (a document kept as another tool wrote it)."""
    if isinstance(value, Mapping):
        return Struct({str(k): as_struct(v) for k, v in value.items()})
    if isinstance(value, list):
        return [as_struct(v) for v in value]
    return value


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_HEX = "0123456789abcdef"


def _escape_char(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
        return "\\u" + "".join(_HEX[(code >> shift) & 0xF] for shift in (12, 8, 4, 0))
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate stands for invalid UTF-8: Go writes U+FFFD
        return "\\ufffd"
    return ch


_ESCAPE_TABLE = {i: _escape_char(chr(i)) for i in range(0x80) if _escape_char(chr(i)) != chr(i)}
_ESCAPE_TABLE[0x2028] = "\\u2028"
_ESCAPE_TABLE[0x2029] = "\\u2029"


def go_json_string(text: str) -> str:
    """Return ``text`` as a quoted JSON string, escaped as Go's encoder (with HTML escaping) does."""
    escaped = text.translate(_ESCAPE_TABLE)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in escaped):
        escaped = "".join("\\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in escaped)
    return '"' + escaped + '"'


def format_go_float(value: float) -> str:
    """Format a float64 as Go's ``encoding/json`` does: shortest digits, ``'f'`` unless tiny or huge."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    shortest = Decimal(repr(value)).normalize()
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        sign, digits, _ = shortest.as_tuple()
        exponent = shortest.adjusted()
        mantissa = str(digits[0]) + ("." + "".join(str(d) for d in digits[1:]) if len(digits) > 1 else "")
        exp_text = f"{abs(exponent):02d}"
        if exponent < 0 and exp_text.startswith("0"):
            exp_text = exp_text[1:]  # Go cleans e-07 to e-7
        return ("-" if sign else "") + mantissa + "e" + ("-" if exponent < 0 else "+") + exp_text
    return format(shortest, "f")


def format_rfc3339nano(value: _dt.datetime | _dt.date) -> str:
    """Format a time as Go's ``time.RFC3339Nano`` (the form ``time.Time`` marshals to)."""
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += ("." + f"{value.microsecond:06d}").rstrip("0")
    offset = value.utcoffset() or _dt.timedelta(0)
    if offset == _dt.timedelta(0):
        return text + "Z"
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{text}{sign}{total // 3600:02d}:{(total % 3600) // 60:02d}"


def _encode(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_go_float(value))
    elif isinstance(value, str):
        out.append(go_json_string(value))
    elif isinstance(value, (_dt.datetime, _dt.date)):
        out.append(go_json_string(format_rfc3339nano(value)))
    elif isinstance(value, Mapping):
        items = list(value.items())
        if not isinstance(value, Struct):
            for key, _ in items:
                if not isinstance(key, str):
                    raise TypeError(f"json: unsupported type: map with non-string key {key!r}")
            items.sort(key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))
        out.append("{")
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            out.append(go_json_string(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"json: unsupported type: {type(value).__name__}")


def go_json_bytes(value: object) -> bytes:
    """Encode ``value`` as compact JSON bytes identical to Go's ``json.Marshal`` output."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8", "surrogatepass")


def indent_json(compact: bytes, indent: str = "  ") -> bytes:
    """Re-indent compact JSON as Go's ``json.Indent`` does (``MarshalIndent`` = ``Marshal`` + this).

    Empty objects and arrays stay ``{}`` and ``[]``; a space follows each ``:``; strings are copied verbatim.
    """
    text = compact.decode("utf-8", "surrogatepass")
    out: list[str] = []
    depth = 0
    in_string = False
    escaped = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "{[":
            closing = "}" if ch == "{" else "]"
            if i + 1 < n and text[i + 1] == closing:
                out.append(ch + closing)
                i += 2
                continue
            depth += 1
            out.append(ch + "\n" + indent * depth)
        elif ch in "}]":
            depth -= 1
            out.append("\n" + indent * depth + ch)
        elif ch == ",":
            out.append(",\n" + indent * depth)
        elif ch == ":":
            out.append(": ")
        elif ch not in " \t\r\n":
            out.append(ch)
        i += 1
    return "".join(out).encode("utf-8", "surrogatepass")


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def compact_json(raw: str) -> str:
    """Go's ``json.Compact`` with HTML escaping, as ``Marshal`` applies it to a ``json.RawMessage``: whitespace
    outside strings dropped, ``<``, ``>``, ``&``, U+2028 and U+2029 inside strings escaped."""
    out: list[str] = []
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(_HTML_ESCAPES.get(ch, ch))
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch not in " \t\r\n":
            out.append(ch)
    return "".join(out)
