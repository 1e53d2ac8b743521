"""``WWW-Authenticate`` challenges, parsed as RFC 9110 §11 defines them (spec ``oci-distribution.md`` §3.1).

One header may carry several challenges; a challenge is a scheme followed by either a token68 or comma-separated
``name=value`` parameters, where a value is a token or a quoted string with backslash escapes (and may itself hold
commas, as ``scope="repository:a:pull,push"`` does). Scheme and parameter names are case-insensitive and kept in
lower case. Turning a challenge into an ``Authorization`` header is ``registry.auth``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NoReturn

from pymodelkit.errors import RegistryError

__all__ = ["Challenge", "parse_challenges"]

# RFC 9110 token characters, and token68 (RFC 9110 §11.2).
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SPACE = " \t"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One authentication challenge: ``scheme`` (lower case), ``params`` (names in lower case) and ``token68``.

    ``params`` is read-only; building a challenge from any mapping copies it.
    """

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", self.scheme.lower())
        object.__setattr__(self, "params", MappingProxyType({k.lower(): v for k, v in self.params.items()}))

    def __hash__(self) -> int:
        return hash((self.scheme, tuple(sorted(self.params.items())), self.token68))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Challenge):
            return NotImplemented
        return (self.scheme, dict(self.params), self.token68) == (other.scheme, dict(other.params), other.token68)

    def __repr__(self) -> str:
        return f"Challenge(scheme={self.scheme!r}, params={dict(self.params)!r}, token68={self.token68!r})"

    @property
    def realm(self) -> str:
        """The ``realm`` parameter (``""`` when absent)."""
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        """The ``service`` parameter (``""`` when absent)."""
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The space-separated scopes of the ``scope`` parameter, in order (empty when absent)."""
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str:
        """The ``error`` parameter, e.g. ``invalid_token`` or ``insufficient_scope`` (``""`` when absent)."""
        return self.params.get("error", "")


def parse_challenges(headers: str | Iterable[str]) -> list[Challenge]:
    """Parse one ``WWW-Authenticate`` header value, or several (one per header line), into challenges in order.

    Raises:
        RegistryError: the header is not a list of challenges (e.g. an unterminated quoted string).
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    challenges: list[Challenge] = []
    for value in values:
        challenges.extend(_Parser(value).challenges())
    return challenges


class _Parser:
    """A cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def challenges(self) -> Iterator[Challenge]:
        while True:
            self._skip_list_separators()
            if self._at_end():
                return
            scheme = self._token("an authentication scheme")
            if not self._at_end() and self.text[self.pos] not in _SPACE + ",":
                self._fail("a space or a comma after the scheme")
            self._skip(_SPACE)
            token68 = self._token68()
            if token68 is not None:
                yield Challenge(scheme, {}, token68)
                continue
            yield Challenge(scheme, self._params())

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        while True:
            self._skip_list_separators()
            if self._at_end():
                return params
            start = self.pos
            match = _TOKEN_RE.match(self.text, self.pos)
            if match is None:
                self._fail("a parameter name")
            self.pos = match.end()
            self._skip(_SPACE)
            if self._at_end() or self.text[self.pos] != "=":
                self.pos = start  # not "name=": the next challenge's scheme
                return params
            self.pos += 1
            self._skip(_SPACE)
            value = self._quoted() if self._peek() == '"' else self._token("a parameter value")
            params.setdefault(match.group().lower(), value)  # a repeated parameter: the first one counts
            self._skip(_SPACE)
            if not self._at_end() and self.text[self.pos] != ",":
                self._fail("a comma between parameters")

    def _token68(self) -> str | None:
        match = _TOKEN68_RE.match(self.text, self.pos)
        if match is None:
            return None
        end = match.end()
        rest = end
        while rest < len(self.text) and self.text[rest] in _SPACE:
            rest += 1
        # "abc==" alone or before a comma is a token68; "name=value" and "name =" are parameters.
        if rest < len(self.text) and self.text[rest] != ",":
            return None
        self.pos = rest
        return match.group()

    def _quoted(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif ch == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(ch)
                self.pos += 1
        self._fail("a closing quote")

    def _token(self, what: str) -> str:
        match = _TOKEN_RE.match(self.text, self.pos)
        if match is None:
            self._fail(what)
        self.pos = match.end()
        return match.group()

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _skip_list_separators(self) -> None:
        self._skip(_SPACE + ",")

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    def _fail(self, expected: str) -> NoReturn:
        raise RegistryError(
            f"malformed WWW-Authenticate header: expected {expected} at offset {self.pos}: {self.text[:200]!r}"
        )
