"""pack + push against the real registry: a second pack-and-push of an unchanged tree sends no blob byte; the
streaming ``--no-store`` push stores nothing, PATCHes as it produces, restarts a layer after a dropped connection,
and pushes the very ModelKit a normal pack would."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import pymodelkit
from pymodelkit.cli.main import cli
from pymodelkit.errors import InvalidReferenceError
from pymodelkit.pack import digestcache
from pymodelkit.registry import pull
from pymodelkit.registry.retry import RetryPolicy
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.trees import CHURN_KITFILE, read_tree, unique_repo, write_source_tree

FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
PAST = 1_600_000_000


@pytest.fixture(autouse=True)
def _epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # equal manifests from equal inputs


def _source(root: Path, weights: int = 1_200_000) -> Path:
    src = write_source_tree(root, CHURN_KITFILE, weights=weights)
    for path in src.rglob("*"):
        os.utime(path, (PAST, PAST))
    return src


def _stored_blobs(store: pymodelkit.LocalStore) -> list[str]:
    blobs = store.storage / "blobs" / "sha256"
    return sorted(p.name for p in blobs.iterdir()) if blobs.is_dir() else []


def test_second_pack_and_push_of_an_unchanged_tree_sends_no_blob_byte(
    registry: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digestcache, "RACY_WINDOW_NS", 0)
    src = _source(tmp_path)
    ref = f"{registry.host}/{unique_repo('stream', 'again')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    first = pymodelkit.pack_and_push(src, ref, store=store, plain_http=True)
    assert first.stored and first.push.bytes_uploaded > 1_200_000
    second = pymodelkit.pack_and_push(src, ref, store=store, plain_http=True)
    assert second.push.bytes_uploaded == 0 and second.push.uploaded == ()
    assert second.pack.reused == tuple(d.digest for d in first.pack.manifest.layers or ())
    assert second.push.digest == first.push.digest
    # and the same through the streaming push: the cache knows the layers, the registry has them
    third = pymodelkit.pack_and_push(src, ref, store=store, no_store=True, plain_http=True)
    assert third.push.bytes_uploaded == 0 and third.push.digest == first.push.digest


def test_no_store_streams_in_chunks_and_stores_nothing(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    src = _source(tmp_path)
    proxy = fault_proxy(registry.url)
    ref = f"{proxy.host}/{unique_repo('stream', 'nostore')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    result = pymodelkit.pack_and_push(src, ref, store=store, no_store=True, plain_http=True, chunk_bytes=256 << 10)
    assert not result.stored and _stored_blobs(store) == []
    model = max(result.pack.manifest.layers or (), key=lambda d: d.size)
    patches = [r for r in proxy.requests if r.method == "PATCH"]
    assert len(patches) == model.size // (256 << 10)  # whole chunks as PATCHes; the rest goes with the PUT
    assert result.push.bytes_uploaded == sum(d.size for d in result.pack.manifest.layers or ()) + len(
        result.pack.config_bytes
    )
    reference = pymodelkit.LocalStore(tmp_path / "home2")
    packed = pymodelkit.pack(src, tag=ref, store=reference)
    assert packed.digest == result.push.digest and packed.manifest_bytes == result.pack.manifest_bytes
    other = pymodelkit.LocalStore(tmp_path / "home3")
    assert pull(ref, store=other, plain_http=True).digest == packed.digest
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_no_store_restarts_a_layer_after_a_dropped_connection(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    src = _source(tmp_path)
    proxy = fault_proxy(registry.url)
    proxy.cut("PATCH", "/blobs/uploads/", after_bytes=100_000, times=1)
    ref = f"{proxy.host}/{unique_repo('stream', 'cut')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    result = pymodelkit.pack_and_push(src, ref, store=store, no_store=True, plain_http=True,
                                      chunk_bytes=256 << 10, retry=FAST)
    assert proxy.cuts == 1 and _stored_blobs(store) == []
    other = pymodelkit.LocalStore(tmp_path / "home2")
    assert pull(ref, store=other, plain_http=True).digest == result.push.digest
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_cli_pack_push_no_store(registry: TestRegistry, tmp_path: Path) -> None:
    src = _source(tmp_path, weights=10_000)
    ref = f"{registry.host}/{unique_repo('stream', 'cli')}:v1"
    home = tmp_path / "home"
    runner = CliRunner()
    done = runner.invoke(cli, ["--config", str(home), "pack", str(src), "-t", ref, "--push", "--no-store",
                               "--plain-http"])
    assert done.exit_code == 0, done.output
    assert "Pushed sha256:" in done.output and "Model saved" not in done.output
    assert _stored_blobs(pymodelkit.LocalStore(home)) == []
    digest_only = runner.invoke(cli, ["--config", str(home), "pack", str(src), "--no-store"])
    assert digest_only.exit_code == 0, digest_only.output
    assert "Model digest: sha256:" in digest_only.output and "Model saved" not in digest_only.output
    assert _stored_blobs(pymodelkit.LocalStore(home)) == []
    local = runner.invoke(cli, ["--config", str(home), "pack", str(src), "-t", "local/only:v1", "--push"])
    assert isinstance(local.exception, InvalidReferenceError) and "registry is required" in str(local.exception)


def test_streaming_push_memory_stays_flat_whatever_the_layer_size(registry: TestRegistry, tmp_path: Path) -> None:
    # httpx keeps each request (and its body) alive until Python's cycle collector runs; a fresh bytes object per
    # PATCH once held a whole 1 GiB layer in memory. The chunks now go through one reused buffer per layer.
    import tracemalloc

    src = tmp_path / "big"
    src.mkdir()
    block = os.urandom(1 << 20)
    with open(src / "weights.bin", "wb") as out:
        for _ in range(48):
            out.write(block)
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
    ref = f"{registry.host}/{unique_repo('stream', 'flat')}:v1"
    tracemalloc.start()
    try:
        result = pymodelkit.pack_and_push(src, ref, store=pymodelkit.LocalStore(tmp_path / "home"), no_store=True,
                                          digest_cache=False, chunk_bytes=2 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.push.bytes_uploaded > 48 << 20
    assert peak < 40 << 20, f"peak traced memory {peak >> 20} MiB while streaming a 48 MiB layer in 2 MiB chunks"
