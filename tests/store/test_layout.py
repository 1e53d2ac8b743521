"""Paths and files of the store layout, and the OCI image-layout rules our storage/ follows."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from pymodelkit.errors import NotFoundError
from pymodelkit.oci import Descriptor, Digest, Manifest, parse_reference
from pymodelkit.store import LocalStore, repo_file_stem
from pymodelkit.store.layout import list_repo_keys, repo_for_index_name, repo_index_path, repo_tags_path

BuildModelKit = Callable[..., tuple[Descriptor, Manifest]]


@pytest.mark.parametrize(
    ("repo_key", "stem"),
    [
        ("localhost/test", "bG9jYWxob3N0L3Rlc3Q="),
        ("localhost/_", "bG9jYWxob3N0L18="),
        ("localhost/test-ref", "bG9jYWxob3N0L3Rlc3QtcmVm"),
        ("ghcr.io/org/model", "Z2hjci5pby9vcmcvbW9kZWw="),
        ("localhost:5000/a/b~?", "bG9jYWxob3N0OjUwMDAvYS9ifj8="),  # URL-safe alphabet: '/' and '+' never appear
    ],
)
def test_repo_file_stem_is_padded_base64url(repo_key: str, stem: str, tmp_path: Path) -> None:
    assert repo_file_stem(repo_key) == stem
    assert repo_index_path(tmp_path, repo_key) == tmp_path / f"{stem}-index.json"
    assert repo_tags_path(tmp_path, repo_key) == tmp_path / f"{stem}-tags.json"
    assert repo_for_index_name(f"{stem}-index.json") == repo_key


@pytest.mark.parametrize(
    "name",
    [
        "index.json",
        "bG9jYWxob3N0L3Rlc3Q=-tags.json",
        ".bG9jYWxob3N0L3Rlc3Q=-index.json.k2j3h4.tmp",
        "bG9jYWxob3N0L3Rlc3Q=-index.json.bak",
        "bad*name-index.json",
    ],
)
def test_repo_for_index_name_ignores_other_files(name: str) -> None:
    assert repo_for_index_name(name) is None


def test_list_repo_keys_sorted_and_skips_directories(tmp_path: Path) -> None:
    for key in ("localhost/test", "ghcr.io/org/model", "localhost/_"):
        repo_index_path(tmp_path, key).write_text("{}")
    (tmp_path / f"{repo_file_stem('localhost/dir')}-index.json").mkdir()
    (tmp_path / "bG9jYWxob3N0L3Rlc3Q=-tags.json").write_text("{}")
    assert list_repo_keys(tmp_path) == ["ghcr.io/org/model", "localhost/_", "localhost/test"]
    assert list_repo_keys(tmp_path / "absent") == []


def test_absent_store_reads_empty_and_creates_nothing(store: LocalStore, tmp_path: Path) -> None:
    assert store.storage == tmp_path / "kit" / "storage"
    assert store.list_repositories() == []
    assert store.list_modelkits() == []
    assert store.fsck().ok
    assert store.gc().removed == []
    assert not store.has_blob(Digest.from_bytes(b""))
    ref, _ = parse_reference("test:latest")
    with pytest.raises(NotFoundError, match=r"^Could not find modelkit test:latest$"):
        store.resolve(ref)
    assert not (tmp_path / "kit").exists()


def test_default_home_is_kitops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "default-kit-home"))
    assert LocalStore().home == tmp_path / "default-kit-home"
    assert LocalStore().storage == tmp_path / "default-kit-home" / "storage"


def test_first_write_creates_oci_layout(store: LocalStore) -> None:
    store.write_blob(b"{}")
    assert (store.storage / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert (store.storage / "index.json").read_bytes() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
    names = sorted(p.name for p in store.storage.iterdir())
    assert names == [".pymodelkit.lock", "blobs", "index.json", "ingest", "oci-layout"]
    assert [p.name for p in (store.storage / "blobs" / "sha256").iterdir()] == [
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    ]


def _check_oci_image_layout(storage: Path) -> None:
    """The image-layout rules of the OCI image spec (image-layout.md) that a reader relies on."""
    assert json.loads((storage / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((storage / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert isinstance(index["manifests"], list)
    for desc in index["manifests"]:
        assert set(desc) >= {"mediaType", "digest", "size"}
        algorithm, hex_ = desc["digest"].split(":")
        blob = storage / "blobs" / algorithm / hex_
        assert blob.is_file()
        data = blob.read_bytes()
        assert len(data) == desc["size"]
        assert hashlib.sha256(data).hexdigest() == hex_
        manifest = json.loads(data)
        assert manifest["schemaVersion"] == 2
        for child in [manifest["config"], *(manifest["layers"] or [])]:
            child_blob = storage / "blobs" / "sha256" / child["digest"].removeprefix("sha256:")
            assert child_blob.stat().st_size == child["size"]
    for algo_dir in (storage / "blobs").iterdir():
        assert algo_dir.name == "sha256"
        for blob in algo_dir.iterdir():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_our_storage_follows_oci_image_layout(store: LocalStore, build: BuildModelKit) -> None:
    a, _ = build(store, "localhost/test", [b"layer one", b"layer two"], tags=["v1"])
    b, _ = build(store, "localhost/_", [])
    c, _ = build(store, "ghcr.io/org/model", [b"layer one"], tags=["x", "y"], name="other")
    store.remove(parse_reference("test:v1")[0])
    _check_oci_image_layout(store.storage)
    index = json.loads((store.storage / "index.json").read_bytes())
    assert [d["digest"] for d in index["manifests"]] == [str(b.digest), str(c.digest)]
    assert not store.has_blob(a.digest)


def test_blob_modes_follow_kit(store: LocalStore, build: BuildModelKit) -> None:
    desc, manifest = build(store, "localhost/test", [b"weights"], tags=["v1"])
    assert manifest.layers is not None

    def mode(digest: Digest) -> int:
        return stat.S_IMODE(os.stat(store.blob_path(digest)).st_mode)

    assert mode(manifest.layers[0].digest) == 0o600
    assert mode(manifest.config.digest) == 0o444
    assert mode(desc.digest) == 0o444
