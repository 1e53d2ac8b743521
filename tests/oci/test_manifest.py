"""Manifests: canonical bytes (spec vector C) and reading what every kit version wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pymodelkit.errors import InvalidReferenceError, ModelKitError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest, compute_file_digest, is_digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import LayerMediaType

VECTOR_C_CONFIG = b'{"manifestVersion":"1.0.0","package":{"name":"test-empty"}}'
VECTOR_C_MANIFEST = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"artifactType":"application/vnd.kitops.modelkit.manifest.v1+json","config":{"mediaType":'
    b'"application/vnd.kitops.modelkit.config.v1+json","digest":'
    b'"sha256:71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a","size":59},"layers":null,'
    b'"annotations":{"ml.kitops.modelkit.cli-version":"unknown","org.opencontainers.image.created":'
    b'"1970-01-01T00:00:00Z"}}'
)


def test_empty_modelkit_manifest_is_byte_identical_to_kit() -> None:
    config = Descriptor("application/vnd.kitops.modelkit.config.v1+json", Digest.from_bytes(VECTOR_C_CONFIG), 59)
    manifest = Manifest(
        config=config,
        layers=None,
        annotations={
            "ml.kitops.modelkit.cli-version": "unknown",
            "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
        },
    )
    data = manifest.to_json_bytes()
    assert data == VECTOR_C_MANIFEST
    assert len(data) == 438
    assert hashlib.sha256(data).hexdigest() == "c64d3a024cff461ed3f45287bf0662d953ff1d265feba57c92842dd3081ad66e"


def test_parse_round_trips_and_detects_format() -> None:
    manifest = Manifest.parse(VECTOR_C_MANIFEST)
    assert manifest.layers is None
    assert manifest.format == "kitops"
    assert manifest.to_json_bytes() == VECTOR_C_MANIFEST


def test_older_kit_manifest_without_media_or_artifact_type_reads() -> None:
    older = (
        b'{"schemaVersion":2,"config":{"mediaType":"application/vnd.kitops.modelkit.config.v1+json",'
        b'"digest":"sha256:71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a","size":59},'
        b'"layers":[{"mediaType":"application/vnd.kitops.modelkit.model.v1.tar+gzip","digest":'
        b'"sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb","size":10}],'
        b'"annotations":{"ml.kitops.modelkit.cli-version":"0.2.0"}}'
    )
    manifest = Manifest.parse(older)
    assert manifest.media_type is None and manifest.artifact_type is None
    assert manifest.format == "kitops"
    assert manifest.to_json_bytes() == older
    assert manifest.layers is not None
    assert LayerMediaType.parse(manifest.layers[0].media_type) == LayerMediaType("model", "tar", "gzip")


def test_non_model_manifest_is_refused_with_kits_message() -> None:
    other = (
        b'{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
        b'"digest":"sha256:71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a","size":59},'
        b'"layers":[]}'
    )
    with pytest.raises(ModelKitError, match="manifest is not a Model manifest"):
        _ = Manifest.parse(other).format


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("application/vnd.kitops.modelkit.model.v1.tar", LayerMediaType("model", "tar", "none")),
        ("application/vnd.kitops.modelkit.dataset.v1.raw+gzip", LayerMediaType("dataset", "raw", "gzip")),
        ("application/vnd.kitops.modelkit.mcpb.v1.raw", LayerMediaType("mcpb", "raw", "none")),
        ("application/vnd.kitops.modelkit.code.v1.tar+zstd", LayerMediaType("code", "tar", "zstd")),
    ],
)
def test_layer_media_types_round_trip(text: str, parsed: LayerMediaType) -> None:
    assert LayerMediaType.parse(text) == parsed
    assert str(parsed) == text


def test_unknown_layer_base_is_an_error() -> None:
    with pytest.raises(ModelKitError, match="invalid base type weights"):
        LayerMediaType.parse("application/vnd.kitops.modelkit.weights.v1.tar")


def test_digests_parse_strictly() -> None:
    assert is_digest("sha256:" + "a" * 64)
    assert not is_digest("sha256:" + "A" * 64)
    with pytest.raises(InvalidReferenceError, match="64 lowercase hex"):
        Digest.parse("sha256:abc")


def test_file_digest_streams(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (9 << 20))
    digest, size = compute_file_digest(path)
    assert size == 9 << 20
    assert digest.hex == hashlib.sha256(b"x" * (9 << 20)).hexdigest()
