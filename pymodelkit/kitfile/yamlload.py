"""Read a Kitfile as kit's yaml.v3 decoder does (spec ``kitops-modelkit.md`` §1.2).

PyYAML only scans and composes the node graph; every scalar is then resolved with yaml.v3's rules
(``go-yaml/yaml@v3.0.1:resolve.go``): string fields keep their source text (``1.10`` stays ``"1.10"``), ``parameters``
get Go's ints (``0x``, ``0o``, ``0b``, leading-0 octal, ``_``), YAML 1.2 floats, ``true``/``false``, timestamps. Unknown
keys, duplicate keys and wrong types are errors, as with kit's ``KnownFields(true)`` decoder. Only the first document
is read. Not emulated: merge keys (``<<``), ``!!binary``, redefined anchors (PyYAML refuses them), nanoseconds.
The module runs past 400 lines because yaml.v3's resolver and Go's time layouts live with the loader that applies
them; the dumper imports them from here to decide quoting.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from pymodelkit.errors import KitfileError, NotFoundError
from pymodelkit.kitfile.model import KitField, Kitfile, kit_fields

__all__ = ["format_go_time", "load_kitfile", "parse_go_timestamp", "read_kitfile", "resolve_scalar"]

NULL_TAG = "!!null"
BOOL_TAG = "!!bool"
STR_TAG = "!!str"
INT_TAG = "!!int"
FLOAT_TAG = "!!float"
TIMESTAMP_TAG = "!!timestamp"
_LONG_TAG_PREFIX = "tag:yaml.org,2002:"
_RESOLVABLE = frozenset({"", STR_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, NULL_TAG, TIMESTAMP_TAG})
_MAX_DECODED_NODES = 1_000_000  # a cap on alias expansion ("billion laughs")

_RESOLVE_MAP: dict[str, tuple[str, object]] = {}
for _text in ("true", "True", "TRUE"):
    _RESOLVE_MAP[_text] = (BOOL_TAG, True)
for _text in ("false", "False", "FALSE"):
    _RESOLVE_MAP[_text] = (BOOL_TAG, False)
for _text in ("", "~", "null", "Null", "NULL"):
    _RESOLVE_MAP[_text] = (NULL_TAG, None)
for _text in (".nan", ".NaN", ".NAN"):
    _RESOLVE_MAP[_text] = (FLOAT_TAG, math.nan)
for _text in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"):
    _RESOLVE_MAP[_text] = (FLOAT_TAG, math.inf)
for _text in ("-.inf", "-.Inf", "-.INF"):
    _RESOLVE_MAP[_text] = (FLOAT_TAG, -math.inf)

_YAML_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT_RE = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")  # what Go's ParseFloat takes from text starting with "."
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:([Tt ])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_DIGITS = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyz")}


# --- scalar resolution (yaml.v3 resolve.go) --------------------------------------------------------------------


def resolve_scalar(text: str, tag: str = "") -> tuple[str, object]:
    """Resolve a scalar as yaml.v3's ``resolve(tag, in)``: return the short tag and the Go value.

    ``tag`` is ``""`` for an untagged plain scalar, or an explicit short tag such as ``"!!int"``. Tags that are not
    resolvable come back unchanged with the text. Raises ``ValueError`` when the text does not fit an explicit tag.
    """
    if tag not in _RESOLVABLE:
        return tag, text
    if tag == STR_TAG:
        return STR_TAG, text
    rtag, value = _resolve_untagged(text, allow_timestamp=tag in ("", TIMESTAMP_TAG))
    if tag in ("", rtag):
        return rtag, value
    if tag == FLOAT_TAG and rtag == INT_TAG:
        assert isinstance(value, int)
        return FLOAT_TAG, float(value)
    raise ValueError(f"cannot decode {rtag} `{text}` as a {tag}")


def _resolve_untagged(text: str, *, allow_timestamp: bool) -> tuple[str, object]:
    if text == "":
        return NULL_TAG, None
    first = text[0]
    if first in "+-":
        hint = "S"
    elif first in "0123456789":
        hint = "D"
    elif first in "yYnNtTfFoO~":
        hint = "M"
    elif first == ".":
        hint = "."
    else:
        return STR_TAG, text
    known = _RESOLVE_MAP.get(text)
    if known is not None:
        return known
    if hint == "." and _DOT_FLOAT_RE.fullmatch(text):
        number = float(text)
        if not math.isinf(number):  # Go's ParseFloat reports a range error
            return FLOAT_TAG, number
    elif hint in "DS":
        if allow_timestamp:
            stamp = parse_go_timestamp(text)
            if stamp is not None:
                return TIMESTAMP_TAG, stamp
        plain = text.replace("_", "")
        integer = _go_parse_int(plain, 0)
        if integer is None:
            integer = _go_parse_uint(plain, 0)
        if integer is not None:
            return INT_TAG, integer
        if _YAML_FLOAT_RE.fullmatch(plain):
            number = float(plain)
            if not math.isinf(number):
                return FLOAT_TAG, number
        for prefix, base in (("0b", 2), ("0o", 8)):
            if plain.startswith(prefix):
                integer = _go_parse_int(plain[2:], base)
                if integer is None:
                    integer = _go_parse_uint(plain[2:], base)
                if integer is not None:
                    return INT_TAG, integer
            elif plain.startswith("-" + prefix):
                integer = _go_parse_int("-" + plain[3:], base)
                if integer is not None:
                    return INT_TAG, integer
    return STR_TAG, text


def _go_parse_uint(text: str, base: int) -> int | None:
    """Go's ``strconv.ParseUint(text, base, 64)``; ``None`` on any error. Underscores are already removed."""
    if text == "":
        return None
    if base == 0:
        base = 10
        if text[0] == "0":
            prefix = text[1:2].lower()
            if len(text) >= 3 and prefix in ("b", "o", "x"):
                base = {"b": 2, "o": 8, "x": 16}[prefix]
                text = text[2:]
            else:
                base = 8
                text = text[1:]
    value = 0
    for char in text:
        digit = _DIGITS.get(char.lower(), 99) if char.isascii() else 99
        if digit >= base:
            return None
        value = value * base + digit
        if value >= 1 << 64:
            return None
    return value


def _go_parse_int(text: str, base: int) -> int | None:
    """Go's ``strconv.ParseInt(text, base, 64)``; ``None`` on any error."""
    if text == "":
        return None
    negative = text[0] == "-"
    if text[0] in "+-":
        text = text[1:]
    magnitude = _go_parse_uint(text, base)
    if magnitude is None:
        return None
    if magnitude > (1 << 63) or (magnitude == 1 << 63 and not negative):
        return None
    return -magnitude if negative else magnitude


def parse_go_timestamp(text: str) -> _dt.datetime | None:
    """Parse ``text`` as yaml.v3's timestamp formats (Go ``time.Parse`` layouts), or return ``None``.

    Layouts: ``2006-1-2T15:4:5.999999999Z07:00`` (also lowercase ``t``), ``2006-1-2 15:4:5.999999999`` (UTC) and
    ``2006-1-2`` (UTC). Fractions beyond microseconds are truncated (Python has no nanoseconds); times Python cannot
    hold (year 0, a 24-hour offset) are not timestamps here.
    """
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, sep, hour, minute, second, fraction, zone = match.groups()
    if sep is not None and (sep == " ") != (zone is None):
        return None  # "T"/"t" need a zone; a space forbids one
    try:
        offset = _dt.timedelta(0)
        if zone is not None and zone != "Z":
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 24 or minutes > 60:
                return None
            offset = _dt.timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
        tzinfo = _dt.timezone.utc if not offset else _dt.timezone(offset)
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        return _dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=tzinfo
        )
    except ValueError:
        return None


def format_go_time(value: _dt.datetime | _dt.date) -> str:
    """Format a time as Go's ``time.RFC3339Nano`` (how yaml.v3 writes and ``encoding/json`` marshals a time.Time).

    A naive datetime and a date count as UTC.
    """
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset() or _dt.timedelta(0)
    minutes = int(offset.total_seconds() / 60)  # Go truncates toward zero
    if minutes == 0:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# --- composing with PyYAML, resolving nothing ----------------------------------------------------------------


class _UnresolvedResolver(BaseResolver):
    """Leaves implicit tags empty, so explicit tags stay visible and yaml.v3's rules can be applied afterwards."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return ""


class _NodeLoader(Reader, Scanner, Parser, Composer, _UnresolvedResolver):
    def __init__(self, stream: str | bytes) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _UnresolvedResolver.__init__(self)


def _short_tag(tag: str) -> str:
    if tag.startswith(_LONG_TAG_PREFIX):
        return "!!" + tag[len(_LONG_TAG_PREFIX) :]
    return "" if tag == "!" else tag


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a sequence"
    return f"the scalar {json.dumps(node.value, ensure_ascii=False)}"


# --- decoding into the Kitfile -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    line: int
    key: str
    message: str


class _FatalDecodeError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Decoder:
    """One decode of one document: collects every problem (as yaml.v3 does) and stops only on fatal ones."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[_Problem] = []
        self._active: set[int] = set()
        self._decoded = 0

    def problem(self, node: Node, key: str, message: str) -> None:
        self.problems.append(_Problem(_line(node), key, f"{self.source}:{_line(node)}: {message}"))

    def count(self, node: Node) -> None:
        self._decoded += 1
        if self._decoded > _MAX_DECODED_NODES:
            raise _FatalDecodeError(_line(node), "document contains excessive aliasing")

    def unique_keys(self, node: MappingNode) -> bool:
        """yaml.v3's duplicate-key check: same kind and same text is a duplicate; each later one is reported."""
        keys = [k for k, _ in node.value]
        groups: dict[tuple[type, str], list[int]] = {}
        for index, key in enumerate(keys):
            groups.setdefault((type(key), _key_text(key)), []).append(index)
        found = False
        for index, first in enumerate(keys):
            group = groups[(type(first), _key_text(first))]
            for later in group[group.index(index) + 1 :]:  # pairs in yaml.v3's order: by first, then by later
                text = _key_text(keys[later])
                quoted = json.dumps(text, ensure_ascii=False)
                self.problem(keys[later], text, f"mapping key {quoted} already defined at line {_line(first)}")
                found = True
        return not found

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and self.scalar(node) is None

    def scalar(self, node: ScalarNode) -> object:
        tag = _short_tag(node.tag)
        if tag == STR_TAG or (tag == "" and node.style is not None):
            return node.value
        try:
            return resolve_scalar(node.value, tag)[1]
        except ValueError as err:
            raise _FatalDecodeError(_line(node), str(err)) from None

    def text(self, node: Node, where: str) -> str:
        """A string field: the scalar's source text, ``""`` for null."""
        if not isinstance(node, ScalarNode):
            self.problem(node, where, f"{where} must be a string, not {_describe(node)}")
            return ""
        return "" if self.scalar(node) is None else str(node.value)

    def struct(self, node: Node, cls: type, where: str) -> Any:
        obj = cls()
        if self.is_null(node):
            return obj
        if not isinstance(node, MappingNode):
            self.problem(node, where, f"{where or 'the top level'} must be a mapping, not {_describe(node)}")
            return obj
        self.count(node)
        if not self.unique_keys(node):
            return obj
        fields = {f.key: f for f in kit_fields(cls) if not f.json_only}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                context = where or "the top level"
                self.problem(key_node, "", f"a key in {context} must be a string, not {_describe(key_node)}")
                continue
            name = "" if self.scalar(key_node) is None else str(key_node.value)
            spec = fields.get(name)
            if spec is None:
                quoted = json.dumps(name, ensure_ascii=False)
                self.problem(key_node, name, f"unknown field {quoted} in {where or 'the top level'}")
                continue
            value = self.field(value_node, spec, f"{where}.{name}" if where else name)
            if spec.kind == "ptrstruct":
                _mark_line(value, key_node)  # ``model`` is found at its key's line
            setattr(obj, spec.attr, value)
        return obj

    def field(self, node: Node, spec: KitField, where: str) -> object:
        if spec.kind == "str":
            return self.text(node, where)
        if spec.kind == "any":
            return self.value(node)
        if spec.kind in ("struct", "ptrstruct"):
            assert spec.item is not None
            if spec.kind == "ptrstruct" and self.is_null(node):
                return None
            return self.struct(node, spec.item, where)
        items: list[object] = []
        if self.is_null(node):
            return items
        if not isinstance(node, SequenceNode):
            self.problem(node, where, f"{where} must be a sequence, not {_describe(node)}")
            return items
        self.count(node)
        for index, item in enumerate(node.value):
            if spec.kind == "strlist":
                items.append(self.text(item, f"{where}[{index}]"))
            else:
                assert spec.item is not None
                element = self.struct(item, spec.item, f"{where}[{index}]")
                _mark_line(element, item)
                items.append(element)
        return items

    def value(self, node: Node) -> object:
        """A ``parameters`` value, as yaml.v3 decodes a node into ``any``."""
        self.count(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in self._active:
            raise _FatalDecodeError(_line(node), "anchor value contains itself")
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.value(item) for item in node.value]
            assert isinstance(node, MappingNode)
            result: dict[object, object] = {}
            if not self.unique_keys(node):
                return result
            string_keys = all(self._is_string_key(k) for k, _ in node.value)
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    self.problem(key_node, "", f"invalid map key: {_describe(key_node)}")
                    continue
                key = key_node.value if string_keys else self.scalar(key_node)
                result[key] = self.value(value_node)
            return result
        finally:
            self._active.discard(id(node))

    def _is_string_key(self, node: Node) -> bool:
        if not isinstance(node, ScalarNode):
            return False
        tag = _short_tag(node.tag)
        if tag == STR_TAG or (tag == "" and node.style is not None):
            return True
        try:
            return resolve_scalar(node.value, tag)[0] == STR_TAG
        except ValueError:
            return False


def _mark_line(element: object, node: Node) -> None:
    """Record where a layer element (it has a ``line`` field; ``package`` has none) starts in the file."""
    if hasattr(element, "line"):
        element.line = _line(node)


def _key_text(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else ""


# --- public API --------------------------------------------------------------------------------------------


def yaml_error_where(err: yaml.MarkedYAMLError) -> tuple[int, str]:
    """The 1-based line of a YAML error (0 when it has no mark) and its reason in one line."""
    mark = err.problem_mark or err.context_mark
    line = int(mark.line) + 1 if mark is not None else 0
    return line, "; ".join(part for part in (err.context, err.problem) if part)


def load_kitfile(data: str | bytes, *, source: str = "Kitfile") -> Kitfile:
    """Parse Kitfile YAML as kit does (yaml.v3, ``KnownFields(true)``, first document only).

    Args:
        data: the YAML text (bytes are decoded as YAML does: UTF-8, or UTF-16 with a BOM).
        source: the name used in error messages (``Kitfile:3: ...``); kept as ``Kitfile.source``, and each layer
            element's ``line`` is set, so that validation errors name the file and line too.

    Raises:
        KitfileError: the YAML is malformed or empty, or has an unknown or duplicate key, or a value of the wrong
            type. ``line``, ``key`` and ``problems`` (every problem found, one line each) are set.
    """
    loader: _NodeLoader | None = None
    try:
        loader = _NodeLoader(data)
        root = loader.get_node() if loader.check_node() else None
    except yaml.MarkedYAMLError as err:
        line, detail = yaml_error_where(err)
        message = f"{source}:{line}: invalid YAML: {detail}"
        raise KitfileError(message, path=source, line=line, problems=[message]) from None
    except yaml.YAMLError as err:
        message = f"{source}: invalid YAML: {' '.join(str(err).split())}"
        raise KitfileError(message, path=source, problems=[message]) from None
    except RecursionError:
        message = f"{source}: Kitfile is nested too deeply"
        raise KitfileError(message, path=source, problems=[message]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise KitfileError(f"{source}: Kitfile is empty", path=source, problems=[f"{source}: Kitfile is empty"])
    decoder = _Decoder(source)
    try:
        kitfile = decoder.struct(root, Kitfile, "")
    except _FatalDecodeError as err:
        message = f"{source}:{err.line}: {err.message}"
        raise KitfileError(message, path=source, line=err.line, problems=[message]) from None
    except RecursionError:
        message = f"{source}: Kitfile is nested too deeply"
        raise KitfileError(message, path=source, problems=[message]) from None
    if decoder.problems:
        first = decoder.problems[0]
        more = len(decoder.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise KitfileError(
            first.message + suffix,
            path=source,
            line=first.line,
            key=first.key,
            problems=[p.message for p in decoder.problems],
        )
    assert isinstance(kitfile, Kitfile)
    kitfile.source = source
    return kitfile


def read_kitfile(path: str | os.PathLike[str]) -> Kitfile:
    """Read and parse the Kitfile at ``path`` (see :func:`load_kitfile`); messages name the file as given.

    Raises:
        NotFoundError: there is no such file.
        KitfileError: the file cannot be read, or does not parse.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise NotFoundError(f"{name}: no such Kitfile", path=name) from None
    except OSError as err:
        raise KitfileError(f"{name}: cannot read Kitfile: {err.strerror or err}", path=name) from None
    return load_kitfile(data, source=name)
