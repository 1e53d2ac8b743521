"""A store laid out by hand exactly as kit lays it out (vector A of spec §5.5, kit's file names, modes and JSON)
lists, inspects, unpacks and re-tags; and what pymodelkit packs is laid out as kit lays it out."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pymodelkit
from pymodelkit.pack.ignore import IgnoreMatcher
from pymodelkit.pack.tarstream import write_tar
from pymodelkit.pack.walk import walk_layer

MODEL_LAYER = "sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"
DATASET_LAYER = "sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f"
CONFIG = (
    '{"manifestVersion":"1.0.0","package":{"name":"test-repack"},"model":{"path":"test-file.txt","digest":"'
    + MODEL_LAYER + '","diffId":"' + MODEL_LAYER + '"},"datasets":[{"path":"test-dir/test-subfile.txt","digest":"'
    + DATASET_LAYER + '","diffId":"' + DATASET_LAYER + '"}]}'
).encode()
KIT_MANIFEST_DIGEST = "sha256:dea916c124d740dfd839f20310fe4e93483a32c79594c8cfc5946bb878dd9009"


def _vector_a_tree(root: Path) -> Path:
    (root / "test-dir").mkdir(parents=True)
    (root / "test-file.txt").write_text("testing: test-file.txt")
    (root / "test-dir" / "test-subfile.txt").write_text("testing: test-dir/test-subfile.txt")
    for path in [root, root / "test-dir"]:
        os.chmod(path, 0o755)
    for path in [root / "test-file.txt", root / "test-dir" / "test-subfile.txt"]:
        os.chmod(path, 0o644)
    return root


def _layer_bytes(context: Path, layer_path: str) -> bytes:
    out = bytearray()
    matcher = IgnoreMatcher.load(context, ["test-dir/test-subfile.txt", "test-file.txt"])
    write_tar(walk_layer(context, layer_path, matcher), out.extend)
    return bytes(out)


def _kit_manifest() -> bytes:
    return (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":'
        '"application/vnd.kitops.modelkit.manifest.v1+json","config":{"mediaType":'
        '"application/vnd.kitops.modelkit.config.v1+json","digest":"sha256:'
        + hashlib.sha256(CONFIG).hexdigest() + '","size":475},"layers":[{"mediaType":'
        '"application/vnd.kitops.modelkit.model.v1.tar","digest":"' + MODEL_LAYER + '","size":2048,"annotations":'
        '{"org.cncf.model.filepath":"test-file.txt"}},{"mediaType":"application/vnd.kitops.modelkit.dataset.v1.tar",'
        '"digest":"' + DATASET_LAYER + '","size":2560,"annotations":{"org.cncf.model.filepath":'
        '"test-dir/test-subfile.txt"}}],"annotations":{"ml.kitops.modelkit.cli-version":"unknown",'
        '"org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}'
    ).encode()


def _write_kit_store(home: Path, blobs: list[tuple[bytes, int]], manifest: bytes) -> None:
    storage = home / "storage"
    (storage / "blobs" / "sha256").mkdir(parents=True)
    (storage / "ingest").mkdir()
    (storage / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for data, mode in blobs:
        path = storage / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
        path.write_bytes(data)
        os.chmod(path, mode)
    descriptor = (
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'
        + hashlib.sha256(manifest).hexdigest() + f'","size":{len(manifest)}}}'
    )
    (storage / "index.json").write_text(
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[' + descriptor + "]}"
    )
    stem = base64.urlsafe_b64encode(b"localhost/test").decode()
    assert stem == "bG9jYWxob3N0L3Rlc3Q="
    (storage / f"{stem}-index.json").write_text('{"schemaVersion":2,"manifests":[' + descriptor + "]}")
    (storage / f"{stem}-tags.json").write_text('{"test":' + descriptor + "}")


def test_store_laid_out_by_kit_lists_inspects_and_unpacks(tmp_path: Path) -> None:
    context = _vector_a_tree(tmp_path / "in")
    model, dataset = _layer_bytes(context, "test-file.txt"), _layer_bytes(context, "test-dir/test-subfile.txt")
    assert "sha256:" + hashlib.sha256(model).hexdigest() == MODEL_LAYER
    assert "sha256:" + hashlib.sha256(dataset).hexdigest() == DATASET_LAYER
    manifest = _kit_manifest()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == KIT_MANIFEST_DIGEST
    home = tmp_path / "kit-home"
    _write_kit_store(home, [(model, 0o600), (dataset, 0o600), (CONFIG, 0o444), (manifest, 0o444)], manifest)
    store = pymodelkit.LocalStore(home)

    rows = pymodelkit.list_modelkits(store)
    assert [(r.repo, r.tags, str(r.digest), r.model_name, r.size) for r in rows] == [
        ("localhost/test", ("test",), KIT_MANIFEST_DIGEST, "test-repack", 4608)
    ]
    inspected = json.loads(pymodelkit.inspect("test:test", store))
    assert inspected["cliVersion"] == "unknown"
    assert inspected["digest"] == KIT_MANIFEST_DIGEST
    assert inspected["kitfile"]["datasets"][0]["digest"] == DATASET_LAYER

    out = tmp_path / "out"
    pymodelkit.unpack("test:test", out, store=store)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "Kitfile", "test-dir/test-subfile.txt", "test-file.txt",
    ]
    assert (out / "test-dir" / "test-subfile.txt").read_text() == "testing: test-dir/test-subfile.txt"
    assert (out / "Kitfile").read_text() == (
        "manifestVersion: 1.0.0\npackage:\n  name: test-repack\nmodel:\n  path: test-file.txt\n"
        "datasets:\n  - path: test-dir/test-subfile.txt\n"
    )
    pymodelkit.tag("test:test", "other:v2", store)
    assert {(r.repo, r.tags) for r in pymodelkit.list_modelkits(store)} == {
        ("localhost/test", ("test",)), ("localhost/other", ("v2",)),
    }
    assert store.fsck().ok


def test_pymodelkit_writes_the_store_as_kit_does(tmp_path: Path) -> None:
    context = _vector_a_tree(tmp_path / "in")
    (context / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: test-repack\nmodel:\n  path: test-file.txt\n"
        "datasets:\n  - path: test-dir/test-subfile.txt\n"
    )
    home = tmp_path / "home"
    result = pymodelkit.pack(context, tag="test:test", store=pymodelkit.LocalStore(home))
    storage = home / "storage"
    descriptor = (
        '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'
        + str(result.digest) + f'","size":{len(result.manifest_bytes)}}}'
    )
    assert (storage / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    assert (storage / "bG9jYWxob3N0L3Rlc3Q=-index.json").read_text() == (
        '{"schemaVersion":2,"manifests":[' + descriptor + "]}"
    )
    assert (storage / "bG9jYWxob3N0L3Rlc3Q=-tags.json").read_text() == '{"test":' + descriptor + "}"
    index = json.loads((storage / "index.json").read_text())
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["digest"] for m in index["manifests"]] == [str(result.digest)]
    blobs = storage / "blobs" / "sha256"
    assert {p.name for p in blobs.iterdir()} == {
        MODEL_LAYER[7:], DATASET_LAYER[7:], hashlib.sha256(CONFIG).hexdigest(), result.digest.hex,
    }
    assert (blobs / MODEL_LAYER[7:]).stat().st_mode & 0o777 == 0o600
    assert (blobs / result.digest.hex).stat().st_mode & 0o777 == 0o444
    assert result.config_bytes == CONFIG
