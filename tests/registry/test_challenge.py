"""WWW-Authenticate parsing: several challenges per header, quoted strings, token68, case, scopes."""

from __future__ import annotations

import pytest

from pymodelkit.errors import RegistryError
from pymodelkit.registry.challenge import Challenge, parse_challenges

CASES: list[tuple[str, list[Challenge]]] = [
    (
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:org/repo:pull,push"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.example/token",
                    "service": "registry.example",
                    "scope": "repository:org/repo:pull,push",
                },
            )
        ],
    ),
    ('Basic realm="basic-realm"', [Challenge("basic", {"realm": "basic-realm"})]),
    ("Basic", [Challenge("basic")]),
    # several challenges in one header, commas inside quoted values
    (
        'Basic realm="a, b", Bearer realm="https://t/x?a=1,2",service="s"',
        [Challenge("basic", {"realm": "a, b"}), Challenge("bearer", {"realm": "https://t/x?a=1,2", "service": "s"})],
    ),
    # escapes: \" and \\ and an escaped ordinary character
    (r'Bearer realm="a\"b\\c\d"', [Challenge("bearer", {"realm": 'a"b\\cd'})]),
    # case-insensitive scheme and parameter names; values keep their case
    ('BEARER Realm="X", SERVICE=Reg', [Challenge("bearer", {"realm": "X", "service": "Reg"})]),
    # spaces around '=' (BWS), unquoted tokens, empty quoted value
    ('Bearer realm = "r" , error="" ,scope=x', [Challenge("bearer", {"realm": "r", "error": "", "scope": "x"})]),
    # token68, alone and followed by another challenge
    ("Negotiate YIIBaQYGKwYBBQUC+/==", [Challenge("negotiate", token68="YIIBaQYGKwYBBQUC+/==")]),
    ('Newauth abc+/=, Basic realm="r"', [Challenge("newauth", token68="abc+/="), Challenge("basic", {"realm": "r"})]),
    # empty list elements are allowed anywhere
    (' , Basic realm="x" ,, Bearer ,', [Challenge("basic", {"realm": "x"}), Challenge("bearer")]),
    # a repeated parameter: the first one counts
    ('Bearer realm="first",realm="second"', [Challenge("bearer", {"realm": "first"})]),
    # the token error parameters registry:2 adds
    (
        'Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a:pull,push repository:b:pull",'
        'error="insufficient_scope"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "http://127.0.0.1:1/token",
                    "service": "svc",
                    "scope": "repository:a:pull,push repository:b:pull",
                    "error": "insufficient_scope",
                },
            )
        ],
    ),
    ("", []),
    # "realm=" alone is a valid token68
    ("Bearer realm=", [Challenge("bearer", token68="realm=")]),
]


@pytest.mark.parametrize(("header", "expected"), CASES)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_parse_several_header_lines_in_order() -> None:
    assert parse_challenges(['Basic realm="a"', 'Bearer realm="b"']) == [
        Challenge("basic", {"realm": "a"}),
        Challenge("bearer", {"realm": "b"}),
    ]


def test_scopes_splits_space_separated_scopes_keeping_commas() -> None:
    (challenge,) = parse_challenges('Bearer scope="repository:a:pull,push   repository:b/c:pull registry:catalog:*"')
    assert challenge.scopes == ("repository:a:pull,push", "repository:b/c:pull", "registry:catalog:*")
    assert challenge.realm == ""
    assert challenge.service == ""
    assert challenge.error == ""


def test_challenge_is_immutable_and_hashable() -> None:
    challenge = Challenge("Bearer", {"Realm": "r"})
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {"realm": "r"}
    with pytest.raises(TypeError):
        challenge.params["realm"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        challenge.scheme = "basic"  # type: ignore[misc]
    assert hash(challenge) == hash(Challenge("bearer", {"realm": "r"}))
    assert {challenge, Challenge("bearer", {"realm": "r"})} == {challenge}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('Bearer realm="unterminated', "expected a closing quote at offset 26"),
        ('Bearer realm="x" junk', "expected a comma between parameters at offset 17"),
        ("Bearer a=b, realm=", "expected a parameter value at offset 18"),
        ("Bearer realm=, x=y", "expected a space or a comma after the scheme at offset 16"),
        ("=Bearer", "expected an authentication scheme at offset 0"),
        ('Bearer realm="x\\', "expected a closing quote at offset 15"),
    ],
)
def test_malformed_header_is_a_registry_error(header: str, message: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_challenges(header)
    assert str(info.value) == f"malformed WWW-Authenticate header: {message}: {header!r}"
