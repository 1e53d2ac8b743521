"""Simple-signing payload: byte-exact against sigstore's and cosign's vectors, and tolerant parsing."""

from __future__ import annotations

import pytest

from pymodelkit.errors import SignatureError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import parse_reference
from pymodelkit.signing.payload import (
    SIMPLE_SIGNING_TYPE,
    SimpleSigningClaims,
    docker_reference,
    parse_simple_signing_payload,
    simple_signing_payload,
)

VALID_DIGEST = "sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"

# sigstore/sigstore pkg/signature/payload/payload_test.go, TestMarshalCosign: (docker reference, annotations, bytes)
MARSHAL_COSIGN = [
    pytest.param(
        "example.com/test/image",
        None,
        b'{"critical":{"identity":{"docker-reference":"example.com/test/image"},"image":{"docker-manifest-digest":'
        b'"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image '
        b'signature"},"optional":null}',
        id="no claims",
    ),
    pytest.param(
        "example.com/atomic/test/image",
        {"creator": "atomic", "timestamp": 1458239713},
        b'{"critical":{"identity":{"docker-reference":"example.com/atomic/test/image"},"image":{"docker-manifest-digest"'
        b':"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image '
        b'signature"},"optional":{"creator":"atomic","timestamp":1458239713}}',
        id="standard atomic signature",
    ),
    pytest.param(
        "example.com/cosign/test/image",
        {
            "creator": "anyone",
            "some_struct": {"foo": "bar", "false": True, "nothing": None},
            "CamelCase WithSpace": 8.314,
        },
        b'{"critical":{"identity":{"docker-reference":"example.com/cosign/test/image"},"image":{"docker-manifest-digest"'
        b':"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image '
        b'signature"},"optional":{"CamelCase WithSpace":8.314,"creator":"anyone","some_struct":{"false":true,'
        b'"foo":"bar","nothing":null}}}',
        id="arbitrary claims",
    ),
]


@pytest.mark.parametrize(("docker_ref", "annotations", "expected"), MARSHAL_COSIGN)
def test_marshal_cosign_vectors(docker_ref: str, annotations: dict[str, object] | None, expected: bytes) -> None:
    assert simple_signing_payload(docker_ref, Digest.parse(VALID_DIGEST), annotations) == expected
    assert simple_signing_payload(docker_ref, VALID_DIGEST, annotations) == expected  # str digests too


def test_custom_identity_is_just_the_docker_reference_given() -> None:
    """cosign's --sign-container-identity replaces docker-reference; our API takes that string directly."""
    payload = simple_signing_payload("registry.example/claimed/identity", VALID_DIGEST)
    assert payload.startswith(b'{"critical":{"identity":{"docker-reference":"registry.example/claimed/identity"},')


def test_obsolete_payload_docker_hub_normalisation() -> None:
    """sigstore/cosign pkg/cosign/obsolete_test.go: docker.io/namespace/image is signed as index.docker.io/…"""
    ref, _ = parse_reference(
        "docker.io/namespace/image@sha256:4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec"
    )
    assert ref.digest is not None
    expected = (
        b'{"critical":{"identity":{"docker-reference":"index.docker.io/namespace/image"},"image":{"docker-manifest-'
        b'digest":"sha256:4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec"},"type":"cosign container '
        b'image signature"},"optional":null}'
    )
    assert simple_signing_payload(docker_reference(ref), ref.digest) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker.io/library/ubuntu:22.04", "index.docker.io/library/ubuntu"),
        ("docker.io/ubuntu", "index.docker.io/library/ubuntu"),
        ("index.docker.io/ubuntu:latest", "index.docker.io/library/ubuntu"),
        ("docker.io/namespace/image:tag", "index.docker.io/namespace/image"),
        ("localhost:5000/foo:1", "localhost:5000/foo"),
        ("127.0.0.1:5000/a/b/c@" + VALID_DIGEST, "127.0.0.1:5000/a/b/c"),
        ("ghcr.io/org/model:v1", "ghcr.io/org/model"),
        ("registry-1.docker.io/x", "registry-1.docker.io/x"),
    ],
)
def test_docker_reference(text: str, expected: str) -> None:
    ref, _ = parse_reference(text)
    assert docker_reference(ref) == expected


def test_hand_written_payload_and_its_238_bytes() -> None:
    hex64 = "0123456789abcdef" * 4
    expected = (
        b"{"
        b'"critical":{'
        b'"identity":{"docker-reference":"example.com/test/image"},'
        b'"image":{"docker-manifest-digest":"sha256:' + hex64.encode() + b'"},'
        b'"type":"cosign container image signature"'
        b"},"
        b'"optional":null'
        b"}"
    )
    payload = simple_signing_payload("example.com/test/image", Digest("sha256", hex64))
    assert payload == expected
    assert len(payload) == 238


def test_annotations_sorted_by_bytes_and_html_escaped() -> None:
    payload = simple_signing_payload(
        "r.example/x",
        VALID_DIGEST,
        {"b": "2", "a": "x<y>&z", "B": "\u2028\u2029", "é": "ü"},
    )
    assert payload.endswith(
        b'"optional":{"B":"\\u2028\\u2029","a":"x\\u003cy\\u003e\\u0026z","b":"2","\xc3\xa9":"\xc3\xbc"}}'
    )


def test_empty_annotations_are_null_not_an_empty_object() -> None:
    assert simple_signing_payload("r.example/x", VALID_DIGEST, {}).endswith(b'"optional":null}')


# --- parsing -----------------------------------------------------------------------------------------------------


def test_parse_upstream_unmarshal_vectors() -> None:
    """TestUnmarshalCosign's payloads (the "unknown type" one too: cosign verify does not check the type)."""
    no_claims = MARSHAL_COSIGN[0].values[2]
    assert isinstance(no_claims, bytes)
    assert parse_simple_signing_payload(no_claims) == SimpleSigningClaims(
        "example.com/test/image", VALID_DIGEST, SIMPLE_SIGNING_TYPE, None
    )
    arbitrary = MARSHAL_COSIGN[2].values[2]
    assert isinstance(arbitrary, bytes)
    claims = parse_simple_signing_payload(arbitrary)
    assert claims.optional == {
        "CamelCase WithSpace": 8.314,
        "creator": "anyone",
        "some_struct": {"false": True, "foo": "bar", "nothing": None},
    }
    unknown = (
        b'{"critical":{"identity":{"docker-reference":"example.com/atomic/test/image"},"image":{"docker-manifest-digest":'
        b'"' + VALID_DIGEST.encode() + b'"},"type":"atomic container signature"},"optional":{}}'
    )
    claims = parse_simple_signing_payload(unknown)
    assert claims.type == "atomic container signature" and claims.optional == {}


def test_parse_is_case_insensitive_like_go() -> None:
    old = (
        b'{"Critical":{"Identity":{"Docker-Reference":"index.docker.io/a/b"},"Image":{"Docker-manifest-digest":"'
        + VALID_DIGEST.encode()
        + b'"},"Type":"cosign container image signature"},"Optional":{"k":"v"}}'
    )
    assert parse_simple_signing_payload(old) == SimpleSigningClaims(
        "index.docker.io/a/b", VALID_DIGEST, SIMPLE_SIGNING_TYPE, {"k": "v"}
    )


def test_parse_last_duplicate_wins_like_go() -> None:
    payload = (
        b'{"critical":{"image":{"docker-manifest-digest":"sha256:aa","DOCKER-MANIFEST-DIGEST":"'
        + VALID_DIGEST.encode()
        + b'"}}}'
    )
    claims = parse_simple_signing_payload(payload)
    assert claims.manifest_digest == VALID_DIGEST
    assert claims.docker_reference == "" and claims.type == "" and claims.optional is None


def test_round_trip() -> None:
    payload = simple_signing_payload("r.example/x", VALID_DIGEST, {"a": "1"})
    assert parse_simple_signing_payload(payload) == SimpleSigningClaims(
        "r.example/x", VALID_DIGEST, SIMPLE_SIGNING_TYPE, {"a": "1"}
    )


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"", "not UTF-8 JSON"),
        (b"\xff{}", "not UTF-8 JSON"),
        (b"{", "not UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "critical is missing"),
        (b'{"critical":"x"}', "critical is not an object"),
        (b'{"critical":{}}', "image is missing"),
        (b'{"critical":{"image":{}}}', "docker-manifest-digest is missing"),
        (b'{"critical":{"image":{"docker-manifest-digest":5}}}', "not a string"),
        (b'{"critical":{"image":{"docker-manifest-digest":"sha256:aa"},"identity":[]}}', "identity is not an object"),
        (b'{"critical":{"image":{"docker-manifest-digest":"sha256:aa"}},"optional":[1]}', "optional is not an object"),
    ],
)
def test_parse_malformed(payload: bytes, needle: str) -> None:
    with pytest.raises(SignatureError) as err:
        parse_simple_signing_payload(payload)
    assert needle in str(err.value) and "\n" not in str(err.value)
