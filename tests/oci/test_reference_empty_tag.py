"""An empty tag after ``:`` is refused as docker's grammar refuses it; no tag at all stays empty (each command defaults
it, as kit does); and ``host_port_hint`` spots a ``host:port`` read as a repository and a tag."""

from __future__ import annotations

import pytest

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci.reference import Reference, host_port_hint, parse_reference, parse_single_reference

HEX = "4413b7f5a2c5b2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a8a"
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    "text",
    ["demo:", "demo:,v2", f"demo:@{DIGEST}", "reg.io:5000/team/demo:", "localhost:5000/demo:", "a/b/c:"],
)
def test_an_empty_tag_is_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse_reference(text)
    assert str(err.value) == f"invalid reference {text!r}: the tag after ':' is empty"
    assert err.value.reference == text
    with pytest.raises(InvalidReferenceError, match="the tag after ':' is empty"):
        parse_single_reference(text)


@pytest.mark.parametrize(
    ("text", "registry", "repository"),
    [("demo", "localhost", "demo"), ("reg.io:5000/team/demo", "reg.io:5000", "team/demo"),
     ("a/b/c", "localhost", "a/b/c")],
)
def test_no_tag_stays_empty_and_defaults_to_latest_on_request(text: str, registry: str, repository: str) -> None:
    ref = parse_single_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, "", None)
    assert ref.with_default_tag().tag == "latest"


def test_a_tag_dropped_before_a_digest_must_still_be_a_tag() -> None:
    ref = parse_single_reference(f"demo:ignored@{DIGEST}")  # kit drops the tag; docker keeps it: both accept it
    assert (ref.repository, ref.tag, str(ref.digest)) == ("demo", "", DIGEST)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:5000", "127.0.0.1", "5000"), ("localhost:5000", "localhost", "5000"),
     ("reg.example.com:443", "reg.example.com", "443"), ("127.0.0.1:5000,v2", "127.0.0.1", "5000")],
)
def test_host_port_hint_names_what_the_text_was_read_as(text: str, host: str, port: str) -> None:
    assert host_port_hint(text) == (
        f"{host}:{port} was read as repository {host!r} with tag {port!r}: a registry reference needs a repository "
        f"path ({host}:{port}/REPOSITORY[:TAG])"
    )
    assert host_port_hint(parse_reference(text)[0]) == host_port_hint(text)


@pytest.mark.parametrize(
    "text",
    ["demo:5", "demo:v1", "127.0.0.1:5000/demo", "127.0.0.1:5000/demo:v1", "team/127.0.0.1:5000", "my.model:v2",
     "my.model:0", "my.model:70000", "localhost:latest", "demo", "", "UPPER:1", f"demo@{DIGEST}", DIGEST],
)
def test_host_port_hint_is_quiet_otherwise(text: str) -> None:
    assert host_port_hint(text) is None


def test_host_port_hint_takes_a_reference() -> None:
    assert host_port_hint(Reference("localhost", "10.0.0.7", "5000")) is not None
    assert host_port_hint(Reference("10.0.0.7:5000", "demo", "5000")) is None
