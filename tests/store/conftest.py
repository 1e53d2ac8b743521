"""Fixtures for the store tests: an empty store, a kit-made store, a ModelKit builder."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from pymodelkit.oci import Descriptor, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MODELKIT_CONFIG
from pymodelkit.store import LocalStore

KIT_HOME = Path(__file__).resolve().parent.parent / "data" / "store" / "kit-home"
MODEL_LAYER = "application/vnd.kitops.modelkit.model.v1.tar"

BuildModelKit = Callable[..., tuple[Descriptor, Manifest]]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """An empty store (nothing on disk yet)."""
    return LocalStore(tmp_path / "kit")


@pytest.fixture
def kit_store(tmp_path: Path) -> Iterator[LocalStore]:
    """A copy of ``tests/data/store/kit-home``: a store laid out by kit, blobs 0444, an empty ``ingest/``."""
    home = tmp_path / "kit-made"
    shutil.copytree(KIT_HOME, home)
    storage = home / "storage"
    (storage / "ingest").mkdir()
    for blob in (storage / "blobs" / "sha256").iterdir():
        blob.chmod(0o444)
    yield LocalStore(home)


def build_modelkit(
    store: LocalStore,
    repo_key: str,
    layers: Sequence[bytes],
    *,
    tags: Sequence[str] = (),
    name: str = "test",
) -> tuple[Descriptor, Manifest]:
    """Store layers, a small config and a manifest, the way pack does; returns the manifest descriptor."""
    layer_descs = []
    for payload in layers:
        with store.ingest() as writer:
            writer.write(payload)
            digest, size = writer.commit(mode=0o600)
        layer_descs.append(Descriptor(MODEL_LAYER, digest, size))
    config = b'{"manifestVersion":"1.0.0","package":{"name":"' + name.encode() + b'"}}'
    config_digest = store.write_blob(config)
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, config_digest, len(config)),
        layers=tuple(layer_descs) or None,
    )
    desc = store.add_manifest(repo_key, manifest.to_json_bytes(), tags=tags)
    return desc, manifest


@pytest.fixture
def build() -> BuildModelKit:
    """``build(store, repo_key, layers, tags=..., name=...)``: see :func:`build_modelkit`."""
    return build_modelkit
