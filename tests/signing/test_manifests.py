"""What ``sign`` leaves in the registry matches spec ``signing.md`` §2, §4, §5, §8.2 and §8.3 exactly.

Every expected document here is written by hand from the spec (literal strings and dicts), never built by our own
builders; the registry is read with plain httpx and signatures are checked with ``cryptography`` directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import pymodelkit
from pymodelkit.oci.digest import Digest
from pymodelkit.signing.cosign_tag import signature_config_bytes, signature_tag
from pymodelkit.signing.keys import SigningKey, generate_signing_key
from pymodelkit.signing.referrers import referrers_tag
from tests.support.registry import TestRegistry
from tests.support.trees import unique_repo, write_source_tree

KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: signed\nmodel:\n  name: m\n  path: model\ncode:\n  - path: src\n" \
    "datasets:\n  - name: train\n    path: data/train.csv\n"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"


def _published(registry: TestRegistry, tmp_path: Path, name: str) -> tuple[str, str, bytes]:
    """Pack and push a small ModelKit; returns its tagged reference, manifest digest text and manifest bytes."""
    ref = f"{registry.host}/{unique_repo('signing', name)}:v1"
    store = pymodelkit.LocalStore(tmp_path / "pack-home")
    packed = pymodelkit.pack(write_source_tree(tmp_path / "src", KITFILE, weights=5000), tag=ref, store=store)
    pymodelkit.push(ref, store=store)
    return ref, str(packed.digest), store.read_blob(packed.digest)


def _get(registry: TestRegistry, repository: str, kind: str, reference: str) -> httpx.Response:
    response = httpx.get(f"{registry.url}/v2/{repository}/{kind}/{reference}", headers={"Accept": ACCEPT})
    assert response.status_code == 200, response.text
    return response


def _verify_ecdsa(key: SigningKey, data: bytes, signature_b64: str) -> None:
    """Raise unless ``signature_b64`` (standard base64, DER) is ``key``'s ECDSA-SHA256 signature of ``data``."""
    public = serialization.load_pem_public_key(key.public_key().pem())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(signature_b64, validate=True), data, ec.ECDSA(hashes.SHA256()))


def _payload(docker_reference: str, digest: str) -> bytes:
    return (
        '{"critical":{"identity":{"docker-reference":"' + docker_reference + '"},"image":{"docker-manifest-digest":"'
        + digest + '"},"type":"cosign container image signature"},"optional":null}'
    ).encode()


def _config(*diff_ids: str) -> bytes:
    history = ",".join('{"created":"0001-01-01T00:00:00Z"}' for _ in diff_ids)
    ids = ",".join(f'"{d}"' for d in diff_ids)
    return (
        '{"architecture":"","created":"0001-01-01T00:00:00Z","history":[' + history + '],"os":"",'
        '"rootfs":{"type":"layers","diff_ids":[' + ids + ']},"config":{}}'
    ).encode()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----- pure --------------------------------------------------------------------------------------------------------


def test_the_tag_names_are_the_digest_with_a_dash() -> None:
    digest = Digest.parse("sha256:" + "ab" * 32)
    assert signature_tag(digest) == "sha256-" + "ab" * 32 + ".sig"
    assert referrers_tag(digest) == "sha256-" + "ab" * 32


def test_the_config_of_one_signature_is_the_233_bytes_of_the_spec() -> None:
    diff_id = "sha256:" + "0" * 64
    expected = (
        b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],'
        b'"os":"","rootfs":{"type":"layers","diff_ids":["sha256:' + b"0" * 64 + b'"]},"config":{}}'
    )
    assert signature_config_bytes([Digest.parse(diff_id)]) == expected
    assert len(expected) == 233


# ----- the legacy .sig tag -------------------------------------------------------------------------------------------


def test_one_signature_is_stored_exactly_as_cosign_stores_it(registry: TestRegistry, tmp_path: Path) -> None:
    ref, digest, manifest_bytes = _published(registry, tmp_path, "exact")
    repository = ref.split("/", 1)[1].split(":", 1)[0]
    key = generate_signing_key()
    result = pymodelkit.sign(ref, key)

    payload = _payload(f"{registry.host}/{repository}", digest)
    assert result.payload == payload and result.added
    tag = "sha256-" + digest.split(":", 1)[1] + ".sig"
    assert result.signature_tag == tag
    sig_response = _get(registry, repository, "manifests", tag)
    assert sig_response.headers["content-type"] == OCI_MANIFEST
    stored = json.loads(sig_response.content)
    signature = stored["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
    config = _config(_sha(payload))
    assert len(config) == 233
    assert stored == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 233, "digest": _sha(config)},
        "layers": [{
            "mediaType": SIMPLESIGNING, "size": len(payload), "digest": _sha(payload),
            "annotations": {"dev.cosignproject.cosign/signature": signature},
        }],
    }
    # go-containerregistry's key order, byte for byte
    assert sig_response.content == (
        '{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST + '","config":{"mediaType":'
        '"application/vnd.oci.image.config.v1+json","size":233,"digest":"' + _sha(config) + '"},"layers":[{'
        '"mediaType":"' + SIMPLESIGNING + '","size":' + str(len(payload)) + ',"digest":"' + _sha(payload) + '",'
        '"annotations":{"dev.cosignproject.cosign/signature":"' + signature + '"}}]}'
    ).encode()
    assert _get(registry, repository, "blobs", _sha(payload)).content == payload
    assert _get(registry, repository, "blobs", _sha(config)).content == config
    _verify_ecdsa(key, payload, signature)
    assert hashlib.sha256(manifest_bytes).hexdigest() == digest.split(":", 1)[1]


def test_two_keys_make_two_layers_and_the_same_key_again_adds_nothing(registry: TestRegistry, tmp_path: Path) -> None:
    ref, digest, _ = _published(registry, tmp_path, "two")
    repository = ref.split("/", 1)[1].split(":", 1)[0]
    first, second = generate_signing_key(), generate_signing_key()
    pymodelkit.sign(ref, first)
    pymodelkit.sign(ref, second, annotations={"ci": "build-7"})
    tag = "sha256-" + digest.split(":", 1)[1] + ".sig"
    before = _get(registry, repository, "manifests", tag).content
    stored = json.loads(before)

    plain = _payload(f"{registry.host}/{repository}", digest)
    annotated = plain.replace(b'"optional":null', b'"optional":{"ci":"build-7"}')
    layers = stored["layers"]
    assert [(layer["mediaType"], layer["digest"], layer["size"]) for layer in layers] == [
        (SIMPLESIGNING, _sha(plain), len(plain)), (SIMPLESIGNING, _sha(annotated), len(annotated))
    ]
    config = _config(_sha(plain), _sha(annotated))
    assert stored["config"] == {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                                "digest": _sha(config)}
    assert _get(registry, repository, "blobs", _sha(config)).content == config
    _verify_ecdsa(first, plain, layers[0]["annotations"]["dev.cosignproject.cosign/signature"])
    _verify_ecdsa(second, annotated, layers[1]["annotations"]["dev.cosignproject.cosign/signature"])
    with pytest.raises(InvalidSignature):  # the other key's signature
        _verify_ecdsa(second, plain, layers[0]["annotations"]["dev.cosignproject.cosign/signature"])

    again = pymodelkit.sign(ref, first)
    assert not again.added
    assert _get(registry, repository, "manifests", tag).content == before


# ----- bundles as referrers ------------------------------------------------------------------------------------------


def test_a_bundle_is_a_referrer_listed_by_the_fallback_index(
    registry: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14T22:13:20Z
    ref, digest, manifest_bytes = _published(registry, tmp_path, "bundle")
    repository = ref.split("/", 1)[1].split(":", 1)[0]
    key = generate_signing_key()
    result = pymodelkit.sign(ref, key, bundle=True, legacy=False)
    assert result.payload is None and result.signature_tag is None and result.fallback_index_updated

    index_response = _get(registry, repository, "manifests", "sha256-" + digest.split(":", 1)[1])
    index = json.loads(index_response.content)
    annotations = {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
    }
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert len(index["manifests"]) == 1
    entry = index["manifests"][0]
    referrer_response = _get(registry, repository, "manifests", entry["digest"])
    referrer_bytes = referrer_response.content
    assert entry == {"mediaType": OCI_MANIFEST, "digest": _sha(referrer_bytes), "size": len(referrer_bytes),
                     "annotations": annotations, "artifactType": BUNDLE}
    referrer = json.loads(referrer_bytes)
    bundle_layer = referrer["layers"][0]
    assert referrer == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "artifactType": BUNDLE,
                   "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": BUNDLE, "digest": bundle_layer["digest"], "size": bundle_layer["size"]}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest_bytes)},
        "annotations": annotations,
    }
    assert _get(registry, repository, "blobs", EMPTY_DIGEST).content == b"{}"
    assert _sha(b"{}") == EMPTY_DIGEST

    bundle_bytes = _get(registry, repository, "blobs", bundle_layer["digest"]).content
    assert _sha(bundle_bytes) == bundle_layer["digest"] and len(bundle_bytes) == bundle_layer["size"]
    bundle = json.loads(bundle_bytes)
    statement = (
        '{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"' + digest.split(":", 1)[1]
        + '"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    ).encode()
    der = serialization.load_pem_public_key(key.public_key().pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    assert bundle == {
        "mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": base64.b64encode(hashlib.sha256(der).digest()).decode()}},
        "dsseEnvelope": {"payload": base64.b64encode(statement).decode(), "payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": sig}]},
    }
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(statement), statement)
    _verify_ecdsa(key, pae, sig)

    # The Referrers API is absent on registry:2 2.8: that is why the fallback index exists.
    assert httpx.get(f"{registry.url}/v2/{repository}/referrers/{digest}").status_code == 404
    verified = pymodelkit.verify(ref, [key.public_key()])
    assert [(s.kind, s.payload, s.location) for s in verified.signatures] == [("bundle", statement, entry["digest"])]


def test_two_bundles_make_two_index_entries(registry: TestRegistry, tmp_path: Path) -> None:
    ref, digest, _ = _published(registry, tmp_path, "bundles")
    repository = ref.split("/", 1)[1].split(":", 1)[0]
    first, second = generate_signing_key(), generate_signing_key()
    one = pymodelkit.sign(ref, first, bundle=True, legacy=False)
    two = pymodelkit.sign(ref, second, bundle=True, legacy=False)
    index: dict[str, Any] = _get(registry, repository, "manifests", "sha256-" + digest.split(":", 1)[1]).json()
    assert one.bundle is not None and two.bundle is not None
    assert [m["digest"] for m in index["manifests"]] == [str(one.bundle.digest), str(two.bundle.digest)]
    assert all(m["artifactType"] == BUNDLE for m in index["manifests"])
    for key in (first, second):
        assert [s.kind for s in pymodelkit.verify(ref, [key.public_key()]).signatures] == ["bundle"]
    # the legacy tag was not written
    assert httpx.get(f"{registry.url}/v2/{repository}/manifests/sha256-{digest.split(':', 1)[1]}.sig",
                     headers={"Accept": ACCEPT}).status_code == 404
