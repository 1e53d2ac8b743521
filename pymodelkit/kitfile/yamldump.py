"""Write a Kitfile as kit's yaml.v3 encoder does with ``SetIndent(2)`` (spec ``kitops-modelkit.md`` §1.6).

Two steps, as in yaml.v3: the encoder turns the Kitfile into nodes (struct field order, omitted empties, ``authors``
in flow style, map keys in yaml.v3's natural order, each string's style chosen by whether it would read back as a
string), then a small emitter lays them out with libyaml's rules as go-yaml changed them: sequences indented under
their key, ``- - a`` for nested sequences, no line wrapping, quoting and block-scalar fallbacks decided by the same
analysis of each scalar (``go-yaml/yaml@v3.0.1:encode.go``, ``emitterc.go``, ``sorter.go``). The emitter makes the
module longer than 400 lines; it has no other user, and splitting it from the encoder would split one format.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pymodelkit.errors import KitfileError
from pymodelkit.kitfile.model import Kitfile, kit_fields
from pymodelkit.kitfile.yamlload import STR_TAG, format_go_time, resolve_scalar

__all__ = ["dump_kitfile", "format_go_float_g"]

_BEST_INDENT = 2
_PLAIN, _SINGLE, _DOUBLE, _LITERAL = "plain", "single", "double", "literal"
_BREAKS = frozenset("\r\n\x85\u2028\u2029")
_BASE60_FLOAT_RE = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_OLD_BOOLS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF"]
)
_SHORT_ESCAPES = {
    "\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r", "\x1b": "e",
    '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
}  # fmt: skip


def dump_kitfile(kitfile: Kitfile) -> str:
    """Return the Kitfile as the YAML text kit writes (``kit init``, ``kit info``, unpacked ``Kitfile``).

    ``digest`` and ``diffId`` are never written.

    Raises:
        KitfileError: a field holds a value YAML cannot represent (a ``parameters`` object of an unknown type).
    """
    emitter = _Emitter()
    emitter.document(_struct_node(kitfile, Kitfile))
    return "".join(emitter.out)


# --- encoder: Kitfile -> nodes ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Scalar:
    text: str
    style: str


@dataclass(slots=True)
class _Seq:
    items: list[_Node]
    flow: bool = False


@dataclass(slots=True)
class _Map:
    pairs: list[tuple[_Node, _Node]]
    flow: bool = False


_Node = _Scalar | _Seq | _Map


def _struct_node(obj: object, cls: type) -> _Map:
    pairs: list[tuple[_Node, _Node]] = []
    for spec in kit_fields(cls):
        if spec.json_only:
            continue
        value = getattr(obj, spec.attr)
        node: _Node
        if spec.kind == "str":
            if not isinstance(value, str):
                raise KitfileError(f"Kitfile field {spec.key!r} must be a string, not {type(value).__name__}")
            if spec.omitempty and not value:
                continue
            node = _string_node(value)
        elif spec.kind == "strlist":
            if not value:
                continue
            items: list[_Node] = []
            for item in value:
                if not isinstance(item, str):
                    raise KitfileError(f"Kitfile field {spec.key!r} must hold strings, not {type(item).__name__}")
                items.append(_string_node(item))
            node = _Seq(items, flow=spec.flow)
        elif spec.kind in ("struct", "ptrstruct"):
            assert spec.item is not None
            if value is None or (spec.kind == "struct" and _is_zero(value, spec.item)):
                continue
            node = _struct_node(value, spec.item)
        elif spec.kind == "structlist":
            if not value:
                continue
            assert spec.item is not None
            node = _Seq([_struct_node(item, spec.item) for item in value])
        else:
            if value is None:
                continue
            node = _any_node(value)
        pairs.append((_string_node(spec.key), node))
    return _Map(pairs)


def _is_zero(obj: object, cls: type) -> bool:
    for spec in kit_fields(cls):
        value = getattr(obj, spec.attr)
        if value is not None and value != "" and value != []:
            return False
    return True


def _string_node(text: str) -> _Scalar:
    """yaml.v3 ``stringv``: literal block for multi-line text, plain when it reads back as this string, else quoted."""
    if "\n" in text:
        return _Scalar(text, _LITERAL)
    plain_ok = resolve_scalar(text)[0] == STR_TAG and not _is_base60_float(text) and text not in _OLD_BOOLS
    return _Scalar(text, _PLAIN if plain_ok else _DOUBLE)


def _is_base60_float(text: str) -> bool:
    if not text or not (text[0] in "+-" or "0" <= text[0] <= "9") or ":" not in text:
        return False
    return _BASE60_FLOAT_RE.fullmatch(text) is not None


def _any_node(value: object) -> _Node:
    if value is None:
        return _Scalar("null", _PLAIN)
    if value is True or value is False:
        return _Scalar("true" if value else "false", _PLAIN)
    if isinstance(value, int):
        return _Scalar(str(value), _PLAIN)
    if isinstance(value, float):
        return _Scalar(format_go_float_g(value), _PLAIN)
    if isinstance(value, str):
        return _string_node(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return _Scalar(format_go_time(value), _PLAIN)
    if isinstance(value, Mapping):
        keys = sorted(value, key=functools.cmp_to_key(_compare_keys))
        return _Map([(_any_node(k), _any_node(value[k])) for k in keys])
    if isinstance(value, (list, tuple)):
        return _Seq([_any_node(item) for item in value])
    raise KitfileError(f"cannot write a {type(value).__name__} value in Kitfile parameters")


def format_go_float_g(value: float) -> str:
    """Format a float64 as yaml.v3 does: Go's ``strconv.FormatFloat(v, 'g', -1, 64)``, ``.inf``/``-.inf``/``.nan``.

    Shortest digits; exponent form (``1e+06``, ``1e-05``) when the exponent is < -4 or >= 6.
    """
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # the value is 0.<digits> x 10**point
    digits = "".join(str(d) for d in digit_tuple).rstrip("0")
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


# --- yaml.v3 map key order (sorter.go) -------------------------------------------------------------------------

_KIND_BOOL, _KIND_INT, _KIND_UINT, _KIND_FLOAT, _KIND_NIL, _KIND_STRING, _KIND_STRUCT = 1, 2, 11, 14, 20, 24, 25


def _kind(value: object) -> int:
    if value is True or value is False:
        return _KIND_BOOL
    if isinstance(value, int):
        return _KIND_INT if value < 1 << 63 else _KIND_UINT
    if isinstance(value, float):
        return _KIND_FLOAT
    if isinstance(value, str):
        return _KIND_STRING
    return _KIND_NIL if value is None else _KIND_STRUCT


def _key_less(a: Any, b: Any) -> bool:
    ak, bk = _kind(a), _kind(b)
    numeric = (_KIND_BOOL, _KIND_INT, _KIND_UINT, _KIND_FLOAT)
    if ak in numeric and bk in numeric:
        af, bf = float(a), float(b)
        if af != bf:
            return af < bf
        if ak != bk:
            return ak < bk
        return bool(a < b)
    if ak != _KIND_STRING or bk != _KIND_STRING:
        return ak < bk
    return _string_less(a, b)


def _is_digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"


def _wrap64(value: int) -> int:
    return ((value + (1 << 63)) % (1 << 64)) - (1 << 63)


def _string_less(a: str, b: str) -> bool:
    """yaml.v3's natural order: letters by code point, letters after non-letters, digit runs by value."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            for j in range(i - 1, -1, -1):
                if not _is_digit(a[j]):
                    break
                if a[j] != "0":
                    an = bn = 1
                    break
        ai = i
        while ai < len(a) and _is_digit(a[ai]):
            an = _wrap64(an * 10 + ord(a[ai]) - 48)
            ai += 1
        bi = i
        while bi < len(b) and _is_digit(b[bi]):
            bn = _wrap64(bn * 10 + ord(b[bi]) - 48)
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def _compare_keys(a: object, b: object) -> int:
    if _key_less(a, b):
        return -1
    return 1 if _key_less(b, a) else 0


# --- emitter: nodes -> text ------------------------------------------------------------------------------------


def _printable(char: str) -> bool:
    code = ord(char)
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


@dataclass(frozen=True, slots=True)
class _Analysis:
    multiline: bool
    flow_plain: bool
    block_plain: bool
    single_quoted: bool
    block: bool


def _analyze(value: str) -> _Analysis:
    """libyaml's ``yaml_emitter_analyze_scalar``: which styles can represent ``value``."""
    if not value:
        return _Analysis(multiline=False, flow_plain=False, block_plain=True, single_quoted=True, block=False)
    block_ind = flow_ind = value.startswith(("---", "..."))
    line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = break_space = space_break = False
    preceded_ws, prev_space, prev_break = True, False, False
    last = len(value) - 1
    for i, char in enumerate(value):
        followed_ws = i == last or value[i + 1] in " \t"
        if i == 0:
            if char in "#,[]{}&*!|>'\"%@`":
                flow_ind = block_ind = True
            elif char in "?:":
                flow_ind = True
                block_ind = block_ind or followed_ws
            elif char == "-" and followed_ws:
                flow_ind = block_ind = True
        elif char in ",?[]{}":
            flow_ind = True
        elif char == ":":
            flow_ind = True
            block_ind = block_ind or followed_ws
        elif char == "#" and preceded_ws:
            flow_ind = block_ind = True
        if char == "\t":
            tabs = True
        elif not _printable(char):
            special = True
        if char == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == last
            break_space = break_space or prev_break
            prev_space, prev_break = True, False
        elif char in _BREAKS:
            line_breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == last
            space_break = space_break or prev_space
            prev_space, prev_break = False, True
        else:
            prev_space = prev_break = False
        preceded_ws = char in " \t\0" or char in _BREAKS
    plain = not (leading_space or leading_break or trailing_space or trailing_break or break_space)
    plain = plain and not (space_break or tabs or special or line_breaks)
    return _Analysis(
        multiline=line_breaks,
        flow_plain=plain and not flow_ind,
        block_plain=plain and not block_ind,
        single_quoted=not (break_space or space_break or tabs or special),
        block=not (trailing_space or space_break or special),
    )


class _Emitter:
    """The parts of libyaml's emitter (go-yaml flavour) that block/flow collections and plain scalars need."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1
        self.indents: list[int] = []
        self.flow_level = 0

    # primitives

    def put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0
        self.indention = True

    def write_break(self, char: str) -> None:
        if char == "\n":
            self.put_break()
        else:
            self.out.append(char)
            self.column = 0
            self.indention = True

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self.put_break()
        if self.column < indent:
            self.put(" " * (indent - self.column))
        self.whitespace = True

    def write_indicator(self, indicator: str, need_whitespace: bool, is_whitespace: bool, is_indention: bool) -> None:
        if need_whitespace and not self.whitespace:
            self.put(" ")
        self.put(indicator)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    def increase_indent(self, *, flow: bool, in_block_sequence: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = _BEST_INDENT if flow else 0
        elif in_block_sequence:
            self.indent += 2  # the first indent inside a sequence just skips the "- "
        else:
            self.indent = _BEST_INDENT * ((self.indent + _BEST_INDENT) // _BEST_INDENT)

    def pop_indent(self) -> None:
        self.indent = self.indents.pop()

    # structure

    def document(self, root: _Node) -> None:
        self.node(root, in_block_sequence=False, simple_key=False)
        self.write_indent()

    def node(self, node: _Node, *, in_block_sequence: bool, simple_key: bool) -> None:
        if isinstance(node, _Scalar):
            self.scalar(node, in_block_sequence=in_block_sequence, simple_key=simple_key)
        elif isinstance(node, _Seq):
            if self.flow_level or node.flow or not node.items:
                self.flow_sequence(node, in_block_sequence)
            else:
                self.block_sequence(node, in_block_sequence)
        elif self.flow_level or node.flow or not node.pairs:
            self.flow_mapping(node, in_block_sequence)
        else:
            self.block_mapping(node, in_block_sequence)

    def block_sequence(self, node: _Seq, in_block_sequence: bool) -> None:
        self.increase_indent(flow=False, in_block_sequence=in_block_sequence)
        for item in node.items:
            self.write_indent()
            self.write_indicator("-", True, False, True)
            self.node(item, in_block_sequence=True, simple_key=False)
        self.pop_indent()

    def block_mapping(self, node: _Map, in_block_sequence: bool) -> None:
        self.increase_indent(flow=False, in_block_sequence=in_block_sequence)
        for key, value in node.pairs:
            self.write_indent()
            if _is_simple_key(key):
                self.node(key, in_block_sequence=False, simple_key=True)
                self.write_indicator(":", False, False, False)
            else:
                self.write_indicator("?", True, False, True)
                self.node(key, in_block_sequence=False, simple_key=False)
                self.write_indent()
                self.write_indicator(":", True, False, True)
            self.node(value, in_block_sequence=False, simple_key=False)
        self.pop_indent()

    def flow_sequence(self, node: _Seq, in_block_sequence: bool) -> None:
        self.write_indicator("[", True, True, False)
        self.increase_indent(flow=True, in_block_sequence=in_block_sequence)
        self.flow_level += 1
        for index, item in enumerate(node.items):
            if index:
                self.write_indicator(",", False, False, False)
            if self.column == 0:
                self.write_indent()
            self.node(item, in_block_sequence=False, simple_key=False)
        self.flow_level -= 1
        self.pop_indent()
        if self.column == 0:
            self.write_indent()
        self.write_indicator("]", False, False, False)

    def flow_mapping(self, node: _Map, in_block_sequence: bool) -> None:
        self.write_indicator("{", True, True, False)
        self.increase_indent(flow=True, in_block_sequence=in_block_sequence)
        self.flow_level += 1
        for index, (key, value) in enumerate(node.pairs):
            if index:
                self.write_indicator(",", False, False, False)
            if self.column == 0:
                self.write_indent()
            if _is_simple_key(key):
                self.node(key, in_block_sequence=False, simple_key=True)
                self.write_indicator(":", False, False, False)
            else:
                self.write_indicator("?", True, False, False)
                self.node(key, in_block_sequence=False, simple_key=False)
                self.write_indicator(":", True, False, False)
            self.node(value, in_block_sequence=False, simple_key=False)
        self.flow_level -= 1
        self.pop_indent()
        self.write_indicator("}", False, False, False)

    # scalars

    def scalar(self, node: _Scalar, *, in_block_sequence: bool, simple_key: bool) -> None:
        analysis = _analyze(node.text)
        style = node.style
        if simple_key and analysis.multiline:
            style = _DOUBLE
        if style == _PLAIN:
            if (self.flow_level and not analysis.flow_plain) or (not self.flow_level and not analysis.block_plain):
                style = _SINGLE
            if not node.text and (self.flow_level or simple_key):
                style = _SINGLE
        if style == _SINGLE and not analysis.single_quoted:
            style = _DOUBLE
        if style == _LITERAL and (not analysis.block or self.flow_level or simple_key):
            style = _DOUBLE
        self.increase_indent(flow=True, in_block_sequence=in_block_sequence)
        if style == _PLAIN:
            self.write_plain(node.text)
        elif style == _SINGLE:
            self.write_single_quoted(node.text)
        elif style == _DOUBLE:
            self.write_double_quoted(node.text)
        else:
            self.write_literal(node.text)
        self.pop_indent()

    def write_plain(self, text: str) -> None:
        if text and not self.whitespace:
            self.put(" ")
        self.put(text)  # plain scalars never hold breaks; nothing wraps (unlimited width)
        if text:
            self.whitespace = False
        self.indention = False

    def write_single_quoted(self, text: str) -> None:
        self.write_indicator("'", True, False, False)
        breaks = False
        for char in text:
            if char == " ":
                self.put(char)
            elif char in _BREAKS:
                if not breaks and char == "\n":
                    self.put_break()
                self.write_break(char)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put("''" if char == "'" else char)
                self.indention = False
                breaks = False
        self.write_indicator("'", False, False, False)
        self.whitespace = False
        self.indention = False

    def write_double_quoted(self, text: str) -> None:
        self.write_indicator('"', True, False, False)
        for char in text:
            if not _printable(char) or char in _BREAKS or char in '"\\':
                short = _SHORT_ESCAPES.get(char)
                code = ord(char)
                if short is not None:
                    self.put("\\" + short)
                elif code <= 0xFF:
                    self.put(f"\\x{code:02X}")
                elif code <= 0xFFFF:
                    self.put(f"\\u{code:04X}")
                else:
                    self.put(f"\\U{code:08X}")
            else:
                self.put(char)
        self.write_indicator('"', False, False, False)
        self.whitespace = False
        self.indention = False

    def write_literal(self, text: str) -> None:
        self.write_indicator("|", True, False, False)
        if text[0] == " " or text[0] in _BREAKS:
            self.write_indicator(str(_BEST_INDENT), False, False, False)
        if text[-1] not in _BREAKS:
            self.write_indicator("-", False, False, False)
        elif len(text) == 1 or text[-2] in _BREAKS:
            self.write_indicator("+", False, False, False)
        self.put_break()
        self.whitespace = True
        breaks = True
        for char in text:
            if char in _BREAKS:
                self.write_break(char)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(char)
                self.indention = False
                breaks = False


def _is_simple_key(node: _Node) -> bool:
    if isinstance(node, _Scalar):
        return not _analyze(node.text).multiline and len(node.text.encode("utf-8", "surrogatepass")) <= 128
    if isinstance(node, _Seq):
        return not node.items
    return not node.pairs
