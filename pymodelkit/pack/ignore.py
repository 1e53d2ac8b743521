"""Which context paths a tar layer leaves out: ``.kitignore`` patterns and the paths of the other layers.

Implements spec ``kitops-modelkit.md`` §2.5: moby/patternmatcher v0.6.0 semantics for the patterns (read with
``ignorefile.ReadAll`` rules, each compiled the way patternmatcher compiles it: to an exact, prefix or suffix test or
to a Go regular expression, which is translated here to an equivalent Python one), and kit's ``Matches`` after PR
#1280 (other layers exclude by whole path element). The walk that uses it lives in :mod:`pymodelkit.pack.walk`.

Longer than the house limit because patternmatcher hands pattern text on to Go's regexp package, so matching
exactly needs a Go ``filepath.Match`` syntax check and a Go-regexp-to-Python translator; both are the private
helpers in the second half of the module (candidates for a private module of their own).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pymodelkit.errors import PackError
from pymodelkit.kitfile.paths import clean_path, is_within

__all__ = ["FIXED_PATTERNS", "IGNORE_FILE_NAME", "IgnoreMatcher", "PatternMatcher", "read_ignore_patterns"]

IGNORE_FILE_NAME = ".kitignore"
# Appended after the .kitignore patterns, so no "!" line can re-include them (kit's DefaultKitfileNames + ignore file).
FIXED_PATTERNS = ("Kitfile", "kitfile", ".kitfile", ".kitignore")

# Go's unicode.IsSpace set, which strings.TrimSpace strips (Python's str.strip also strips \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_UTF8_BOM = "\ufeff"
# bufio.Scanner's default MaxScanTokenSize: a longer line makes ignorefile.ReadAll fail.
_MAX_LINE_BYTES = 64 * 1024
_REGEX_META = ".+()|{}$"  # escaped by patternmatcher, no glob meaning

_EXACT, _PREFIX, _SUFFIX, _REGEXP, _BAD = range(5)


def read_ignore_patterns(text: str) -> list[str]:
    """Return the patterns of an ignore file, by ``ignorefile.ReadAll`` rules.

    A UTF-8 BOM is dropped from line 1; lines starting with ``#`` are skipped before trimming; lines are trimmed of
    whitespace and skipped when empty; a leading ``!`` is kept (and the rest trimmed again); the pattern is
    ``filepath.Clean``ed and loses one leading ``/``.

    Raises:
        PackError: a line longer than Go's bufio.Scanner accepts (64 KiB).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    patterns: list[str] = []
    for number, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith("\r") else raw
        if number == 0 and line.startswith(_UTF8_BOM):
            line = line[1:]
        if len(raw.encode("utf-8", "surrogateescape")) >= _MAX_LINE_BYTES:
            raise PackError("bufio.Scanner: token too long")
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if pattern == "":
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str  # the cleaned pattern without its "!"
    exclusion: bool
    kind: int
    regex: re.Pattern[str] | None
    go_regex: str = ""  # the Go regular expression patternmatcher builds (kind _REGEXP and _BAD)

    def match(self, path: str) -> bool:
        kind = self.kind
        if kind == _EXACT:
            return path == self.text
        if kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if kind == _SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[0] == "/" and path == suffix[1:])
        if kind == _REGEXP:
            assert self.regex is not None
            return self.regex.search(path) is not None
        raise PackError(f'syntax error in pattern "{self.text}"')


class PatternMatcher:
    """moby/patternmatcher's ``PatternMatcher``: ordered patterns, ``!`` exclusions, last match wins.

    Patterns are trimmed, skipped when empty, ``filepath.Clean``ed and checked with ``filepath.Match`` syntax rules
    at construction. A pattern that passes those rules but whose Go regular expression does not compile (``[z-a]``,
    ``\\1``) fails when it is first evaluated, as in Go.

    Raises:
        PackError: an invalid pattern (the message names it), or a lone ``!``.
    """

    __slots__ = ("_exclusions", "_parents", "_patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        compiled: list[_Pattern] = []
        exclusions = False
        for raw in patterns:
            text = raw.strip(_GO_SPACE)
            if text == "":
                continue
            text = clean_path(text)
            exclusion = text[0] == "!"
            if exclusion:
                if len(text) == 1:
                    raise PackError('illegal exclusion pattern: "!"')
                text = text[1:]
                exclusions = True
            if not _is_valid_glob(text):
                raise PackError(f'syntax error in pattern "{text}"')
            compiled.append(_compile(text, exclusion))
        self._patterns = tuple(compiled)
        self._exclusions = exclusions
        # Whether each pattern matches one of the parent directories of the last path's parent (None: not evaluated
        # yet). A walk asks about the files of one directory in a row, so its parents are tested once per directory.
        self._parents: tuple[str, list[bool | None]] = ("", [])

    @property
    def has_exclusions(self) -> bool:
        """True when any pattern starts with ``!``."""
        return self._exclusions

    def matches_or_parent_matches(self, path: str) -> bool:
        """True when ``path`` (slash-separated) or one of its parent directories is matched and not re-included.

        Raises:
            PackError: an evaluated pattern whose regular expression is invalid.
        """
        matched = False
        parent = _go_dir(path)
        cached = self._parents
        if cached[0] != parent or not cached[1]:
            cached = (parent, [None] * len(self._patterns))
            self._parents = cached  # one assignment: a thread with another parent replaces it, never mixes them
        parent_hits = cached[1]
        for index, pattern in enumerate(self._patterns):
            # An inclusion is skipped once matched, an exclusion until matched.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)  # first, as Go evaluates it: a bad pattern fails here
            if not hit:
                parent_hit = parent_hits[index]
                if parent_hit is None:
                    parent_hit = parent_hits[index] = _matches_a_parent(pattern, parent)
                hit = parent_hit
            if hit:
                matched = not pattern.exclusion
        return matched


class IgnoreMatcher:
    """kit's ignore decision for one pack: the ``.kitignore`` patterns plus the other layers' paths.

    ``layer_paths`` are the Kitfile paths of every layer and of the parent chain, in kit's order (code, datasets,
    docs, prompts, mcpServers, model, parts, then parents); they are trimmed and cleaned here.
    """

    __slots__ = ("_layers", "_patterns")

    def __init__(self, patterns: Sequence[str], layer_paths: Sequence[str]) -> None:
        try:
            self._patterns = PatternMatcher([*patterns, *FIXED_PATTERNS])
        except PackError as err:
            raise PackError(f"invalid {IGNORE_FILE_NAME} file: {err}") from None
        self._layers = tuple(_clean(path) for path in layer_paths)

    @classmethod
    def load(cls, context: Path, layer_paths: Sequence[str]) -> IgnoreMatcher:
        """Read ``<context>/.kitignore`` (a missing file means no patterns) and build the matcher.

        Raises:
            PackError: the file cannot be read, or holds an invalid pattern.
        """
        path = Path(context) / IGNORE_FILE_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls([], layer_paths)
        except IsADirectoryError:
            raise PackError(f"failed to read {IGNORE_FILE_NAME} file: read {path}: is a directory") from None
        except OSError as err:
            reason = (err.strerror or str(err)).lower()
            raise PackError(f"failed to open {IGNORE_FILE_NAME} file: open {path}: {reason}") from None
        try:
            patterns = read_ignore_patterns(data.decode("utf-8", "surrogateescape"))
        except PackError as err:
            raise PackError(f"failed to read {IGNORE_FILE_NAME} file: {err}") from None
        return cls(patterns, layer_paths)

    @property
    def has_exclusions(self) -> bool:
        """True when the patterns contain a ``!`` exclusion (ignored directories are then still descended)."""
        return self._patterns.has_exclusions

    def matches(self, path: str, layer_path: str) -> bool:
        """True when ``path`` must be left out of the layer at ``layer_path``.

        It is left out when the patterns match it or a parent, or when it lies (by whole path elements) within
        another layer's path that is not the current layer or one of its parents.

        Raises:
            PackError: an evaluated pattern whose regular expression is invalid.
        """
        path = _clean(path)
        layer_path = _clean(layer_path)
        if self._patterns.matches_or_parent_matches(path):
            return True
        for layer in self._layers:
            if is_within(layer_path, layer):
                continue  # the current layer, or a layer that contains it
            if is_within(path, layer):
                return True
        return False


def _clean(path: str) -> str:
    # Already clean (the walk's paths nearly always are): no empty, "." or ".." element, no trailing slash, no space
    # to trim. Anything else takes the full Clean.
    if path and "//" not in path and "/." not in path and path[0] != "." and path[-1] != "/" \
            and path[0] not in _GO_SPACE and path[-1] not in _GO_SPACE:
        return path
    return clean_path(path.strip(_GO_SPACE))


def _matches_a_parent(pattern: _Pattern, parent: str) -> bool:
    """Whether ``pattern`` matches ``parent`` or one of its ancestors (``a``, ``a/b``, … up to ``parent``)."""
    parent_dirs = parent.split("/") if parent != "." else []
    return any(pattern.match("/".join(parent_dirs[:count])) for count in range(1, len(parent_dirs) + 1))


def _go_dir(path: str) -> str:
    """Go's ``filepath.Dir`` on Unix."""
    cut = path.rfind("/")
    head = path[:cut]
    # The walk's paths are clean: their head is then the answer (no empty, "." or ".." element, no trailing slash).
    if cut > 0 and "//" not in head and "/." not in head and head[0] != "." and head[-1] != "/":
        return head
    return clean_path(path[: cut + 1])


# --- filepath.Match syntax check -------------------------------------------------------------------------------------


def _is_valid_glob(pattern: str) -> bool:
    """Whether Go's ``filepath.Match(pattern, ".")`` would not return ``ErrBadPattern`` (Go ≥ 1.16 checks it all)."""
    rest = pattern
    while rest:
        rest = rest.lstrip("*")
        in_range = False
        end = 0
        while end < len(rest):
            char = rest[end]
            if char == "\\":
                if end + 1 < len(rest):
                    end += 1
            elif char == "[":
                in_range = True
            elif char == "]":
                in_range = False
            elif char == "*" and not in_range:
                break
            end += 1
        if not _is_valid_chunk(rest[:end]):
            return False
        rest = rest[end:]
    return True


def _is_valid_chunk(chunk: str) -> bool:
    size = len(chunk)
    pos = 0
    while pos < size:
        char = chunk[pos]
        if char == "[":
            pos += 1
            if pos < size and chunk[pos] == "^":
                pos += 1
            ranges = 0
            while True:
                if pos < size and chunk[pos] == "]" and ranges > 0:
                    pos += 1
                    break
                pos = _class_item_end(chunk, pos)
                if pos < 0:
                    return False
                if chunk[pos] == "-":
                    pos = _class_item_end(chunk, pos + 1)
                    if pos < 0:
                        return False
                ranges += 1
        elif char == "\\":
            if pos + 1 >= size:
                return False
            pos += 2
        else:
            pos += 1
    return True


def _class_item_end(chunk: str, pos: int) -> int:
    """End of one class character (Go ``getEsc``), or -1 when malformed; something must follow it."""
    size = len(chunk)
    if pos >= size or chunk[pos] in "-]":
        return -1
    if chunk[pos] == "\\":
        pos += 1
        if pos >= size:
            return -1
    if "\udc80" <= chunk[pos] <= "\udcff":  # an undecodable byte: Go sees utf8.RuneError
        return -1
    pos += 1
    return pos if pos < size else -1


# --- patternmatcher compile ------------------------------------------------------------------------------------------


def _compile(text: str, exclusion: bool) -> _Pattern:
    """Classify the pattern and build its Go regular expression exactly as patternmatcher's ``compile`` does."""
    regex = ["^"]
    kind = _EXACT
    size = len(text)
    pos = 0
    token = 0
    while pos < size:
        char = text[pos]
        pos += 1
        if char == "*":
            if pos < size and text[pos] == "*":
                pos += 1
                if pos < size and text[pos] == "/":
                    pos += 1
                if pos >= size:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        regex.append(".*")
                        kind = _REGEXP
                else:
                    regex.append("(.*/)?")
                    kind = _REGEXP
                if token == 0:
                    kind = _SUFFIX
            else:
                regex.append("[^/]*")
                kind = _REGEXP
        elif char == "?":
            regex.append("[^/]")
            kind = _REGEXP
        elif char in _REGEX_META:
            regex.append("\\" + char)
        elif char == "\\":
            if pos < size:
                regex.append("\\" + text[pos])
                pos += 1
                kind = _REGEXP
            else:
                regex.append("\\")
        elif char in "[]":
            regex.append(char)
            kind = _REGEXP
        else:
            regex.append(char)
        token += 1
    if kind != _REGEXP:
        return _Pattern(text, exclusion, kind, None)
    regex.append("$")
    go_regex = "".join(regex)
    try:
        translated = _GoRegex(go_regex).translate()
    except _RegexError:
        return _Pattern(text, exclusion, _BAD, None, go_regex)
    return _Pattern(text, exclusion, _REGEXP, re.compile(translated, re.ASCII), go_regex)


# --- Go regexp (RE2 syntax, Perl flags) to Python re ------------------------------------------------------------------


class _RegexError(Exception):
    pass


_MAX_RUNE = 0x10FFFF
_DIGIT = ((0x30, 0x39),)
_SPACE = ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20))
_WORD = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_PERL_CLASSES = {"d": _DIGIT, "s": _SPACE, "w": _WORD}
_POSIX_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": _DIGIT,
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": _WORD,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_C_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def _negate(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    nxt = 0
    for low, high in sorted(ranges):
        if low > nxt:
            result.append((nxt, low - 1))
        nxt = max(nxt, high + 1)
    if nxt <= _MAX_RUNE:
        result.append((nxt, _MAX_RUNE))
    return result


def _class_text(ranges: Sequence[tuple[int, int]], negated: bool) -> str:
    items = "".join(f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)
    if negated:
        return f"[^{items}\\n]"  # Go's negated classes never match a newline (no ClassNL flag)
    return f"[{items}]" if items else "(?!)"


class _GoRegex:
    """Translates the subset of Go regexp syntax patternmatcher can produce; unsupported constructs are errors."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0

    def translate(self) -> str:
        src = self.src
        out: list[str] = []
        can_repeat = False
        depth = 0
        while self.pos < len(src):
            char = src[self.pos]
            if char in "*+?":
                if not can_repeat:
                    raise _RegexError("missing argument to repetition operator")
                self.pos += 1
                lazy = self.pos < len(src) and src[self.pos] == "?"
                if lazy:
                    self.pos += 1
                out.append(char + ("?" if lazy else ""))
                can_repeat = False
                continue
            if char == "^":
                out.append("^")
                can_repeat = False
            elif char == "$":
                out.append(r"\Z")
                can_repeat = False
            elif char == "(":
                out.append("(?:")
                depth += 1
                can_repeat = False
            elif char == ")":
                if depth == 0:
                    raise _RegexError("unexpected )")
                depth -= 1
                out.append(")")
                can_repeat = True
            elif char == "|":
                out.append("|")
                can_repeat = False
            elif char == ".":
                out.append(".")
                can_repeat = True
            elif char == "[":
                out.append(self._parse_class())
                can_repeat = True
                continue
            elif char == "\\":
                text, can_repeat = self._parse_top_escape()
                out.append(text)
                continue
            else:
                out.append(re.escape(char))
                can_repeat = True
            self.pos += 1
        if depth:
            raise _RegexError("missing )")
        return "".join(out)

    def _parse_top_escape(self) -> tuple[str, bool]:
        src = self.src
        if self.pos + 1 < len(src):
            code = src[self.pos + 1]
            assertion = {"A": r"\A", "b": r"\b", "B": r"\B", "z": r"\Z"}.get(code)
            if assertion is not None:
                self.pos += 2
                return assertion, False
            if code == "Q":
                end = src.find("\\E", self.pos + 2)
                literal = src[self.pos + 2 :] if end < 0 else src[self.pos + 2 : end]
                self.pos = len(src) if end < 0 else end + 2
                return "".join(re.escape(c) for c in literal), bool(literal)
            if code in "pPC":
                raise _RegexError("unsupported escape")
            ranges = self._perl_class(self.pos)
            if ranges is not None:
                self.pos += 2
                return _class_text(ranges, False), True
        rune = self._parse_escape()
        return re.escape(chr(rune)), True

    def _perl_class(self, pos: int) -> list[tuple[int, int]] | None:
        src = self.src
        if pos + 1 >= len(src) or src[pos] != "\\" or src[pos + 1].lower() not in _PERL_CLASSES:
            return None
        code = src[pos + 1]
        ranges = list(_PERL_CLASSES[code.lower()])
        return _negate(ranges) if code.isupper() else ranges

    def _parse_escape(self) -> int:
        """Go ``parseEscape``: one escaped character; ``self.pos`` is at the backslash."""
        src = self.src
        size = len(src)
        pos = self.pos + 1
        if pos >= size:
            raise _RegexError("trailing backslash")
        char = src[pos]
        pos += 1
        if char < "\x80" and not char.isalnum():
            self.pos = pos
            return ord(char)
        if "1" <= char <= "7" and (pos >= size or not "0" <= src[pos] <= "7"):
            raise _RegexError("backreference")
        if "0" <= char <= "7":
            value = ord(char) - 0x30
            for _ in range(2):
                if pos >= size or not "0" <= src[pos] <= "7":
                    break
                value = value * 8 + ord(src[pos]) - 0x30
                pos += 1
            self.pos = pos
            return value
        if char == "x":
            if pos >= size:
                raise _RegexError("invalid escape")
            first = src[pos]
            pos += 1
            if first == "{":
                value = 0
                digits = 0
                while True:
                    if pos >= size:
                        raise _RegexError("invalid escape")
                    char = src[pos]
                    pos += 1
                    if char == "}":
                        break
                    value = value * 16 + _unhex(char)
                    if value > _MAX_RUNE:
                        raise _RegexError("invalid escape")
                    digits += 1
                if digits == 0:
                    raise _RegexError("invalid escape")
                self.pos = pos
                return value
            if pos >= size:
                raise _RegexError("invalid escape")
            value = _unhex(first) * 16 + _unhex(src[pos])
            self.pos = pos + 1
            return value
        if char in _C_ESCAPES:
            self.pos = pos
            return _C_ESCAPES[char]
        raise _RegexError("invalid escape")

    def _class_char(self) -> int:
        src = self.src
        if self.pos >= len(src):
            raise _RegexError("missing closing ]")
        if src[self.pos] == "\\":
            return self._parse_escape()
        self.pos += 1
        return ord(src[self.pos - 1])

    def _parse_class(self) -> str:
        """Go ``parseClass``; ``self.pos`` is at ``[``. Emits an explicit Python class of code point ranges."""
        src = self.src
        self.pos += 1
        negated = self.pos < len(src) and src[self.pos] == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while self.pos >= len(src) or src[self.pos] != "]" or first:
            if self.pos >= len(src):
                raise _RegexError("missing closing ]")
            first = False
            if len(src) - self.pos > 2 and src.startswith("[:", self.pos):
                end = src.find(":]", self.pos + 2)
                if end >= 0:
                    name = src[self.pos + 2 : end]
                    negate_group = name.startswith("^")
                    group = _POSIX_CLASSES.get(name[1:] if negate_group else name)
                    if group is None:
                        raise _RegexError("invalid character class range")
                    ranges.extend(_negate(group) if negate_group else group)
                    self.pos = end + 2
                    continue
            if src.startswith(("\\p", "\\P"), self.pos):
                raise _RegexError("unsupported escape")
            perl = self._perl_class(self.pos)
            if perl is not None:
                ranges.extend(perl)
                self.pos += 2
                continue
            low = self._class_char()
            high = low
            if len(src) - self.pos >= 2 and src[self.pos] == "-" and src[self.pos + 1] != "]":
                self.pos += 1
                high = self._class_char()
                if high < low:
                    raise _RegexError("invalid character class range")
            ranges.append((low, high))
        self.pos += 1
        return _class_text(ranges, negated)


def _unhex(char: str) -> int:
    if "0" <= char <= "9":
        return ord(char) - 0x30
    if "a" <= char <= "f":
        return ord(char) - 0x61 + 10
    if "A" <= char <= "F":
        return ord(char) - 0x41 + 10
    raise _RegexError("invalid escape")
