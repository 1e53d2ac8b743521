"""References parse as kit's ParseReference parses them (kit's own unit-test table, spec format.md)."""

from __future__ import annotations

import pytest

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import Reference, format_for_display, parse_reference

HEX = "4413b7f5a2c5b2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a8a"
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "extra"),
    [
        ("testregistry.io/test-organization/test-repository:test-tag", "testregistry.io",
         "test-organization/test-repository", "test-tag", None, []),
        ("test-repository:test-tag,extraTag1,extraTag2", "localhost", "test-repository", "test-tag", None,
         ["extraTag1", "extraTag2"]),
        ("localhost:5000/test-organization/test-repository:test-tag", "localhost:5000",
         "test-organization/test-repository", "test-tag", None, []),
        (DIGEST, "localhost", "_", "", DIGEST, []),
        ("a/b/c/d", "localhost", "a/b/c/d", "", None, []),
        ("test.io/a/b/c/d", "test.io", "a/b/c/d", "", None, []),
        (f"testrepo@{DIGEST}", "localhost", "testrepo", "", DIGEST, []),
        (f"testrepo:ignoredtag@{DIGEST}", "localhost", "testrepo", "", DIGEST, []),
        (f"testorg.com/testrepo@{DIGEST}", "testorg.com", "testrepo", "", DIGEST, []),
        ("localhost/foo", "localhost", "localhost/foo", "", None, []),
        ("models/v1:2", "localhost", "models/v1", "2", None, []),
        ("test:test", "localhost", "test", "test", None, []),
    ],
)
def test_parse_reference_matches_kit(
    text: str, registry: str, repository: str, tag: str, digest: str | None, extra: list[str]
) -> None:
    ref, extras = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert extras == extra


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty string"),
        ("Test/Repo:v1", "must be lowercase"),
        ("repo:-bad", "invalid tag"),
        ("repo@sha256:abc", "not a valid digest"),
        ("repo--:v1", "invalid repository"),
    ],
)
def test_parse_reference_rejects_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message):
        parse_reference(text)


def test_string_and_display_forms() -> None:
    ref, _ = parse_reference("test:v1")
    assert str(ref) == "localhost/test:v1"
    assert ref.display() == "test:v1"
    assert ref.repo_key == "localhost/test"
    untagged = Reference("localhost", "_", digest=Digest.parse(DIGEST))
    assert untagged.display() == DIGEST
    assert format_for_display("localhost/_") == ""
    assert str(parse_reference("ghcr.io/org/m")[0].with_default_tag()) == "ghcr.io/org/m:latest"


@pytest.mark.parametrize("text", ["test:v1\n", "test:ünï", "tést:v1"])
def test_non_ascii_and_trailing_newlines_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


@pytest.mark.parametrize("text", ["data:1.0/x", "reg.io:port/x:v1", "user@reg.io/x:v1"])
def test_registries_with_invalid_ports_are_refused_as_go_refuses_them(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid"):
        parse_reference(text)


def test_registry_ports_and_years_below_1000() -> None:
    import datetime as dt

    from pymodelkit.oci.gojson import format_rfc3339nano

    assert parse_reference("localhost:5000/x:v1")[0].registry == "localhost:5000"
    assert format_rfc3339nano(dt.datetime(1, 2, 3, tzinfo=dt.timezone.utc)) == "0001-02-03T00:00:00Z"
