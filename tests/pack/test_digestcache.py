"""The digest cache: unchanged layers are reused without reading, changed bytes are never reused (even with the size
and mtime put back), racy entries are not recorded, and a corrupt cache file is ignored."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.oci import Digest
from pymodelkit.pack import digestcache
from pymodelkit.pack.digestcache import CachedLayer, DigestCache
from tests.support.samestat import overwrite_keeping_size_and_mtime

KITFILE = "manifestVersion: 1.0.0\nmodel:\n  path: model\ncode:\n  - path: src\n"
RAW_KITFILE = "manifestVersion: 1.0.0\nmodel:\n  path: model/weights.bin\n"
PAST = 1_600_000_000


def _tree(root: Path) -> Path:
    src = root / "src-tree"
    (src / "model").mkdir(parents=True)
    (src / "src").mkdir()
    (src / "model" / "weights.bin").write_bytes(bytes(range(256)) * 4096)
    (src / "src" / "train.py").write_text("print('train')\n")
    (src / "Kitfile").write_text(KITFILE)
    for path in src.rglob("*"):
        os.utime(path, (PAST, PAST))
    return src


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files made by the test are milliseconds old; trust them as if they were older than the racy window."""
    monkeypatch.setattr(digestcache, "RACY_WINDOW_NS", 0)


def _layer_digests(result: pymodelkit.PackResult) -> list[Digest]:
    return [layer.digest for layer in result.manifest.layers or ()]


def test_repack_of_an_unchanged_tree_reuses_every_layer(tmp_path: Path, no_racy_window: None) -> None:
    src = _tree(tmp_path)
    store = pymodelkit.LocalStore(tmp_path / "home")
    first = pymodelkit.pack(src, tag="cache:v1", store=store)
    assert first.reused == ()
    second = pymodelkit.pack(src, tag="cache:v2", store=store)
    assert second.reused == tuple(_layer_digests(first))
    assert second.manifest.layers == first.manifest.layers
    assert second.config_bytes == first.config_bytes
    assert (store.home / "pymodelkit-cache" / "digests.json").is_file()


def test_same_size_and_mtime_with_other_bytes_is_not_reused(tmp_path: Path, no_racy_window: None) -> None:
    src = _tree(tmp_path)
    store = pymodelkit.LocalStore(tmp_path / "home")
    first = pymodelkit.pack(src, tag="cache:v1", store=store)
    weights = src / "model" / "weights.bin"
    overwrite_keeping_size_and_mtime(weights, b"\xff")
    second = pymodelkit.pack(src, tag="cache:v2", store=store)
    model_first, code_first = _layer_digests(first)
    model_second, code_second = _layer_digests(second)
    assert model_second != model_first
    assert second.reused == (code_first,) and code_second == code_first
    blob = store.blob_path(model_second).read_bytes()
    assert Digest("sha256", hashlib.sha256(blob).hexdigest()) == model_second


def test_files_changed_within_the_racy_window_are_not_recorded(tmp_path: Path) -> None:
    src = _tree(tmp_path)  # utime just ran: every ctime is now
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.pack(src, tag="cache:v1", store=store)
    assert pymodelkit.pack(src, tag="cache:v2", store=store).reused == ()
    assert not (store.home / "pymodelkit-cache" / "digests.json").exists()


def test_a_layer_whose_blob_left_the_store_is_built_again(tmp_path: Path, no_racy_window: None) -> None:
    src = _tree(tmp_path)
    store = pymodelkit.LocalStore(tmp_path / "home")
    first = pymodelkit.pack(src, tag="cache:v1", store=store)
    model = _layer_digests(first)[0]
    store.blob_path(model).unlink()
    second = pymodelkit.pack(src, tag="cache:v2", store=store)
    assert model not in second.reused and len(second.reused) == 1
    assert store.blob_path(model).is_file() and _layer_digests(second) == _layer_digests(first)


def test_compression_and_format_are_part_of_the_key(tmp_path: Path, no_racy_window: None) -> None:
    src = _tree(tmp_path)
    store = pymodelkit.LocalStore(tmp_path / "home")
    plain = pymodelkit.pack(src, tag="cache:v1", store=store)
    zstd = pymodelkit.pack(src, tag="cache:v2", store=store, compression="zstd")
    assert zstd.reused == () and _layer_digests(zstd) != _layer_digests(plain)
    assert pymodelkit.pack(src, tag="cache:v3", store=store, compression="zstd").reused == tuple(_layer_digests(zstd))
    (src / "Kitfile").write_text(RAW_KITFILE)
    raw = pymodelkit.pack(src, tag="cache:v4", store=store, layer_format="raw")
    assert raw.reused == ()
    assert [d.media_type for d in raw.manifest.layers or ()] == ["application/vnd.kitops.modelkit.model.v1.raw"]


def test_a_corrupt_cache_file_is_ignored_and_replaced(tmp_path: Path, no_racy_window: None) -> None:
    src = _tree(tmp_path)
    store = pymodelkit.LocalStore(tmp_path / "home")
    cache_file = store.home / "pymodelkit-cache" / "digests.json"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"{not json")
    first = pymodelkit.pack(src, tag="cache:v1", store=store)
    assert json.loads(cache_file.read_bytes())["format"] == 1
    cache_file.write_text(json.dumps({"format": 1, "entries": {k: {"digest": 3} for k in ["a", "b"]}}))
    assert pymodelkit.pack(src, tag="cache:v2", store=store).manifest.layers == first.manifest.layers


def test_digest_cache_can_be_turned_off(tmp_path: Path, no_racy_window: None) -> None:
    src = _tree(tmp_path)
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.pack(src, tag="cache:v1", store=store, digest_cache=False)
    assert not (store.home / "pymodelkit-cache").exists()
    pymodelkit.pack(src, tag="cache:v1", store=store)
    assert pymodelkit.pack(src, tag="cache:v2", store=store, digest_cache=False).reused == ()


def test_the_cache_keeps_the_newest_entries(tmp_path: Path) -> None:
    cache = DigestCache(tmp_path / "digests.json", max_entries=3)
    digest = Digest("sha256", "0" * 64)
    for index in range(5):
        assert cache.record(f"k{index}", CachedLayer("m", digest, index, digest), newest_ns=0)
        cache.save()
    reread = DigestCache(tmp_path / "digests.json")
    assert [reread.lookup(f"k{i}") is not None for i in range(5)] == [False, False, True, True, True]
    assert reread.lookup("k4") == CachedLayer("m", digest, 4, digest)


def test_future_timestamps_are_not_trusted(tmp_path: Path) -> None:
    cache = DigestCache(tmp_path / "digests.json")
    digest = Digest("sha256", "0" * 64)
    assert not cache.record("k", CachedLayer("m", digest, 1, digest), newest_ns=time.time_ns() + 10**12)
    assert not cache.record("k", CachedLayer("m", digest, 1, digest), newest_ns=time.time_ns() - 10**9)
    assert cache.record("k", CachedLayer("m", digest, 1, digest), newest_ns=time.time_ns() - 3 * 10**9)


def test_the_racy_window_ends_when_the_inputs_were_stated_not_when_the_layer_was_done(tmp_path: Path) -> None:
    # A file changed 1 s before its layer's walk could change again within one timestamp tick of being read; a layer
    # that then took 5 s to build must still not be recorded, although its files are 6 s old when it is done.
    cache = DigestCache(tmp_path / "digests.json")
    digest = Digest("sha256", "0" * 64)
    now = time.time_ns()
    stated, changed = now - 5 * 10**9, now - 6 * 10**9
    assert not cache.record("k", CachedLayer("m", digest, 1, digest), newest_ns=changed, stat_ns=stated)
    assert cache.record("k", CachedLayer("m", digest, 1, digest), newest_ns=changed - 2 * 10**9, stat_ns=stated)
