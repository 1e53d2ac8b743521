"""Sigstore bundle v0.3 / DSSE: upstream envelopes verify with our PAE and keys; build → verify; malformed bundles."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pymodelkit.errors import SignatureError
from pymodelkit.oci.digest import Digest
from pymodelkit.signing.bundle import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_SIGN_PREDICATE_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    BundleClaims,
    build_bundle,
    bundle_version,
    in_toto_statement,
    pae,
    verify_bundle,
)
from pymodelkit.signing.keys import SigningKey, VerificationKey, generate_signing_key, load_verification_key

DATA = Path(__file__).parent / "data"
DIGEST = Digest("sha256", "ab" * 32)
BLOB_SHA256 = "658781cd4ed9bca60dacd09f7bb914bb51502e8b5d619f57f39a1d652596cc24"  # sha256("some-payload")


def _envelope(name: str) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(base64.b64decode((DATA / name).read_text()))
    return envelope


def _bundle_of(envelope: dict[str, Any], media_type: str = BUNDLE_MEDIA_TYPE) -> bytes:
    """Wrap a DSSE envelope in a key-based bundle, as cosign's makeLocalAttestNewBundle test helper does."""
    signatures = [{"sig": s["sig"]} for s in envelope["signatures"]]
    bundle = {
        "mediaType": media_type,
        "verificationMaterial": {"publicKey": {"hint": "unused"}},
        "dsseEnvelope": {
            "payload": envelope["payload"],
            "payloadType": envelope["payloadType"],
            "signatures": signatures,
        },
    }
    return json.dumps(bundle).encode()


# --- PAE and the published vectors -------------------------------------------------------------------------------


def test_pae_dsse_spec_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"  # byte lengths
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_dsse_spec_signature_verifies() -> None:
    """secure-systems-lab/dsse protocol.md test vector: P-256 key (X, Y) and a raw r||s signature over the PAE."""
    numbers = ec.EllipticCurvePublicNumbers(
        46950820868899156662930047687818585632848591499744589407958293238635476079160,
        5640078356564379163099075877009565129882514886557779369047442380624545832820,
        ec.SECP256R1(),
    )
    key = VerificationKey(numbers.public_key())
    signature = base64.b64decode(
        "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
    )
    assert key.verify(pae("http://example.com/HelloWorld", b"hello world"), signature)
    assert not key.verify(pae("http://example.com/HelloWorld", b"hello world!"), signature)


@pytest.mark.parametrize("name", ["cosign_blobSLSAProvenanceSignature.b64", "cosign_dssePredicateMultipleSubjects.b64"])
def test_cosign_dsse_envelope_verifies_with_our_pae_and_key(name: str) -> None:
    """sigstore/cosign verify_blob_attestation_test.go: pubkey + envelope: PAE + ECDSA-SHA256 verifies."""
    key = load_verification_key(DATA / "cosign_attestation_pub.pem")
    envelope = _envelope(name)
    payload = base64.b64decode(envelope["payload"])
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    assert key.verify(pae(envelope["payloadType"], payload), signature)
    for index in (0, len(payload) // 2, len(payload) - 1):
        flipped = bytearray(payload)
        flipped[index] ^= 0x01
        assert not key.verify(pae(envelope["payloadType"], bytes(flipped)), signature)
    bad_signature = bytearray(signature)
    bad_signature[-1] ^= 0x01
    assert not key.verify(pae(envelope["payloadType"], payload), bytes(bad_signature))
    assert not key.verify(pae("application/json", payload), signature)


def test_cosign_envelope_in_a_bundle_gives_its_claims() -> None:
    key = load_verification_key(DATA / "cosign_attestation_pub.pem")
    claims = verify_bundle(_bundle_of(_envelope("cosign_blobSLSAProvenanceSignature.b64")), key)
    assert claims == BundleClaims((f"sha256:{BLOB_SHA256}",), {}, "https://slsa.dev/provenance/v0.2")
    claims = verify_bundle(_bundle_of(_envelope("cosign_dssePredicateMultipleSubjects.b64")), key)
    assert claims is not None and len(claims.subject_digests) == 2
    assert claims.subject_digests[0] == f"sha256:{BLOB_SHA256}"
    other = load_verification_key(DATA / "sigstore_ecdsa_pub.pem")
    assert verify_bundle(_bundle_of(_envelope("cosign_blobSLSAProvenanceSignature.b64")), other) is None


# --- statement and bundle bytes ----------------------------------------------------------------------------------


def test_in_toto_statement_bytes() -> None:
    hex64 = "ab" * 32
    assert in_toto_statement(DIGEST) == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"' + hex64.encode() + b'"}}],'
        b'"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )
    assert in_toto_statement(str(DIGEST), {"b": "2", "a": "<1>"}) == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"' + hex64.encode() + b'"},'
        b'"annotations":{"a":"\\u003c1\\u003e","b":"2"}}],'
        b'"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )


def test_build_bundle_shape() -> None:
    key = generate_signing_key()
    bundle = json.loads(build_bundle(key, DIGEST, {"k": "v"}))
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"] == {"publicKey": {"hint": key.public_key().hint}}
    envelope = bundle["dsseEnvelope"]
    assert list(envelope) == ["payload", "payloadType", "signatures"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == in_toto_statement(DIGEST, {"k": "v"})
    assert list(envelope["signatures"][0]) == ["sig"]  # empty keyid omitted, as protobuf JSON does
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    assert signature[0] == 0x30  # ASN.1 DER
    assert key.public_key().verify(pae(IN_TOTO_PAYLOAD_TYPE, base64.b64decode(envelope["payload"])), signature)


@pytest.mark.parametrize(
    "make",
    [
        generate_signing_key,
        lambda: SigningKey(ec.generate_private_key(ec.SECP384R1())),
        lambda: SigningKey(rsa.generate_private_key(65537, 2048)),
        lambda: SigningKey(ed25519.Ed25519PrivateKey.generate()),
    ],
    ids=["p256", "p384", "rsa", "ed25519"],
)
def test_build_then_verify(make: Any) -> None:
    key: SigningKey = make()
    data = build_bundle(key, DIGEST, {"org.example/team": "ml"})
    claims = verify_bundle(data, key.public_key())
    assert claims == BundleClaims((str(DIGEST),), {"org.example/team": "ml"}, COSIGN_SIGN_PREDICATE_TYPE)
    assert verify_bundle(data, generate_signing_key().public_key()) is None


def test_tampered_payload_does_not_verify() -> None:
    key = generate_signing_key()
    bundle = json.loads(build_bundle(key, DIGEST))
    other = in_toto_statement(Digest("sha256", "cd" * 32))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(other).decode()
    assert verify_bundle(json.dumps(bundle).encode(), key.public_key()) is None


def test_any_verifying_signature_is_enough_and_urlsafe_base64_is_accepted() -> None:
    key, stranger = generate_signing_key(), generate_signing_key()
    bundle = json.loads(build_bundle(key, DIGEST))
    ours = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    theirs = base64.b64encode(stranger.sign(b"whatever")).decode()
    urlsafe = ours.replace("+", "-").replace("/", "_").rstrip("=")
    bundle["dsseEnvelope"]["signatures"] = [{"sig": theirs, "keyid": "x"}, {"sig": urlsafe}]
    claims = verify_bundle(json.dumps(bundle).encode(), key.public_key())
    assert claims is not None and claims.subject_digests == (str(DIGEST),)


@pytest.mark.parametrize(
    ("media_type", "version"),
    [
        ("application/vnd.dev.sigstore.bundle.v0.3+json", (0, 3)),
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", (0, 3)),
        ("application/vnd.dev.sigstore.bundle.v0.4+json", (0, 4)),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2", (0, 2)),
        ("application/vnd.dev.sigstore.bundle+json;version=0.1", (0, 1)),
        ("application/json", None),
    ],
)
def test_bundle_version(media_type: str, version: tuple[int, int] | None) -> None:
    assert bundle_version(media_type) == version


def test_later_media_type_spellings_verify() -> None:
    key = generate_signing_key()
    for media_type in (
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.4+json",
    ):
        bundle = json.loads(build_bundle(key, DIGEST))
        bundle["mediaType"] = media_type
        assert verify_bundle(json.dumps(bundle).encode(), key.public_key()) is not None


def _mutated(change: Any) -> bytes:
    bundle = json.loads(build_bundle(_KEY, DIGEST))
    change(bundle)
    return json.dumps(bundle).encode()


_KEY = generate_signing_key()


def _set(path: tuple[str, ...], value: object) -> Any:
    def change(bundle: dict[str, Any]) -> None:
        target = bundle
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(name: str) -> Any:
    def change(bundle: dict[str, Any]) -> None:
        del bundle[name]

    return change


def _signed_statement(statement: bytes) -> Any:
    def change(bundle: dict[str, Any]) -> None:
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(statement).decode()
        sig = _KEY.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement))
        bundle["dsseEnvelope"]["signatures"] = [{"sig": base64.b64encode(sig).decode()}]

    return change


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff", "not UTF-8 JSON"),
        (b"[1]", "not a JSON object"),
        (_mutated(_set(("mediaType",), "application/json")), "not a sigstore bundle"),
        (_mutated(_drop("mediaType")), "not a sigstore bundle"),
        (_mutated(_set(("mediaType",), "application/vnd.dev.sigstore.bundle+json;version=0.2")), "0.3 or later"),
        (_mutated(_drop("dsseEnvelope")), "no DSSE envelope"),
        (_mutated(lambda b: b.update(messageSignature={}) or b.pop("dsseEnvelope")), "a message signature"),
        (_mutated(_set(("dsseEnvelope",), "x")), "dsseEnvelope is not an object"),
        (_mutated(_set(("dsseEnvelope", "payloadType"), "application/json")), "unsupported DSSE payload type"),
        (_mutated(_set(("dsseEnvelope", "payload"), "!!!")), "not valid base64"),
        (_mutated(_set(("dsseEnvelope", "payload"), 5)), "not a base64 string"),
        (_mutated(_set(("dsseEnvelope", "signatures"), [])), "no signatures"),
        (_mutated(_set(("dsseEnvelope", "signatures"), ["x"])), "not an object"),
        (_mutated(_set(("dsseEnvelope", "signatures"), [{"sig": "***"}])), "not valid base64"),
        (_mutated(_signed_statement(b"not json")), "malformed in-toto statement"),
        (_mutated(_signed_statement(b'{"_type":"https://example.com/Other"}')), "unsupported in-toto statement type"),
        (_mutated(_signed_statement(b'{"_type":"https://in-toto.io/Statement/v1","subject":{}}')), "not a list"),
        (
            _mutated(_signed_statement(b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":[]}]}')),
            "digest map",
        ),
        (
            _mutated(
                _signed_statement(
                    b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{},"annotations":[]}]}'
                )
            ),
            "annotations are not an object",
        ),
    ],
)
def test_malformed_bundles(data: bytes, needle: str) -> None:
    with pytest.raises(SignatureError) as err:
        verify_bundle(data, _KEY.public_key())
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unsigned_garbage_statement_is_none_not_an_error() -> None:
    """The statement is parsed only after a signature verified: a bad signature over junk is just "not verified"."""
    data = _mutated(_set(("dsseEnvelope", "payload"), base64.b64encode(b"junk").decode()))
    assert verify_bundle(data, _KEY.public_key()) is None


def test_statement_without_subjects_and_other_algorithms() -> None:
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha512": "AA" * 64, "gitCommit": "x"}, "annotations": {"n": 1, "s": "t"}}],
            "predicateType": "p",
        }
    ).encode()
    claims = verify_bundle(_mutated(_signed_statement(statement)), _KEY.public_key())
    assert claims == BundleClaims(("sha512:" + "aa" * 64,), {"n": "1", "s": "t"}, "p")
    empty = b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}'
    assert verify_bundle(_mutated(_signed_statement(empty)), _KEY.public_key()) == BundleClaims((), {}, "")


def test_claims_of_a_subject_are_its_own_and_the_payload_decodes_unpadded() -> None:
    other, target = "11" * 32, "22" * 32
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": other}, "annotations": {"env": "prod"}}, {"digest": {"sha256": target}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1",
        }
    ).encode()
    sign = _signed_statement(statement)

    def unpadded(bundle: dict[str, Any]) -> None:
        sign(bundle)
        bundle["dsseEnvelope"]["payload"] = bundle["dsseEnvelope"]["payload"].rstrip("=")  # protobuf JSON allows it

    claims = verify_bundle(_mutated(unpadded), _KEY.public_key())
    assert claims is not None
    assert claims.payload == statement
    assert claims.annotations_for(f"sha256:{other}") == {"env": "prod"}
    assert claims.annotations_for(f"sha256:{target}") == {}  # not the first subject's claims
    assert claims.annotations_for("sha256:" + "33" * 32) == {}
