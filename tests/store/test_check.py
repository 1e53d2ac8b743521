"""fsck (corrupt, missing, stray) and gc (exactly the unreferenced blobs), and stores left behind by a crash."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pymodelkit.errors import StoreError
from pymodelkit.oci import Descriptor, Digest, Manifest, parse_reference
from pymodelkit.store import FsckReport, GcReport, LocalStore
from pymodelkit.store.layout import repo_index_path

BuildModelKit = Callable[..., tuple[Descriptor, Manifest]]

FIRST = Digest.parse("sha256:1c756e3551c45407b59e6ad98d436ff183d4d30fd8e58a6a29b71d8c78791f84")
WEIGHTS = Digest.parse("sha256:9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c")
CONFIG = Digest.parse("sha256:8fb8a2331718bf3f3dcab6c16bd463e282eccf9ac6a4e573fd877bcc9b534255")
ORPHAN = Digest.parse("sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c")  # b"foo\n"


def test_fsck_of_healthy_store(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    assert store.fsck() == FsckReport(ok=True)


def test_fsck_finds_corrupt_blob(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    store.blob_path(WEIGHTS).write_bytes(b"weighty")  # same size, other bytes
    report = store.fsck()
    assert report == FsckReport(ok=False, corrupt_blobs=[(WEIGHTS, f"manifest {FIRST} (layer 0)")])
    store.blob_path(WEIGHTS).write_bytes(b"weights!")
    report = store.fsck()
    assert report.corrupt_blobs == [(WEIGHTS, f"manifest {FIRST} (layer 0)")]
    assert report.problems == [f"blob {WEIGHTS} is 8 bytes but manifest {FIRST} (layer 0) records 7"]
    store.write_blob(b"foo\n")
    os.chmod(store.blob_path(ORPHAN), 0o600)
    store.blob_path(ORPHAN).write_bytes(b"bar\n")
    assert store.fsck().corrupt_blobs == [(WEIGHTS, f"manifest {FIRST} (layer 0)"), (ORPHAN, "unreferenced")]


def test_fsck_finds_missing_blobs(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    store.blob_path(CONFIG).unlink()
    store.blob_path(WEIGHTS).unlink()
    report = store.fsck()
    assert not report.ok
    assert report.corrupt_blobs == []
    assert report.missing_blobs == [(CONFIG, f"manifest {FIRST} (config)"), (WEIGHTS, f"manifest {FIRST} (layer 0)")]
    store.blob_path(FIRST).unlink()
    report = store.fsck()
    assert report.missing_blobs == [
        (FIRST, "localhost/test"),
        (FIRST, "localhost/test:v1"),
        (FIRST, "storage/index.json"),
    ]


def test_fsck_reports_size_mismatch_and_dangling_tag(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    index = repo_index_path(store.storage, "localhost/test")
    index.write_text('{"schemaVersion":2,"manifests":[]}')
    report = store.fsck()
    assert report.problems == [f"tag localhost/test:v1 points at {FIRST}, which is not in the repo index"]
    assert not report.ok


def test_gc_removes_exactly_unreferenced_blobs(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    store.write_blob(b"foo\n")  # written, never referenced
    with store.ingest() as writer:  # a pack that died after its layer, before its manifest
        writer.write(b"lost layer")
        lost, _ = writer.commit()
    kept = {p.name for p in (store.storage / "blobs" / "sha256").iterdir()} - {ORPHAN.hex, lost.hex}
    assert store.gc(dry_run=True) == GcReport(removed=sorted([ORPHAN, lost], key=str), freed_bytes=14)
    assert store.has_blob(ORPHAN)
    assert store.gc() == GcReport(removed=sorted([ORPHAN, lost], key=str), freed_bytes=14)
    assert (
        {p.name for p in (store.storage / "blobs" / "sha256").iterdir()} == kept == {FIRST.hex, CONFIG.hex, WEIGHTS.hex}
    )
    assert store.gc() == GcReport(removed=[], freed_bytes=0)
    assert store.fsck().ok


def test_gc_drops_manifests_no_repo_lists(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    # A crash after storage/index.json gained the manifest but before the repo index did.
    repo_index_path(store.storage, "localhost/test").unlink()
    (store.storage / "bG9jYWxob3N0L3Rlc3Q=-tags.json").unlink()
    report = store.gc()
    assert report == GcReport(removed=sorted([FIRST, CONFIG, WEIGHTS], key=str), freed_bytes=471 + 53 + 7)
    assert (store.storage / "index.json").read_bytes() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
    assert store.fsck().ok


def test_crash_leftovers_are_only_strays(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    # A process killed mid-ingest, and one killed while writing the repo index temp file.
    ingest_file = store.storage / "ingest" / "pymodelkit_0123456789abcdef"
    ingest_file.write_bytes(b"half a layer")
    temp_index = store.storage / ".bG9jYWxob3N0L3Rlc3Q=-index.json.x1y2z3.tmp"
    temp_index.write_bytes(b'{"schemaVersion":2,"manifests":[{"mediaType":"appli')
    assert [(k.repo_key, k.digest, k.tags) for k in store.list_modelkits()] == [("localhost/test", FIRST, ("v1",))]
    assert store.read_manifest(parse_reference("test:v1")[0])[0].digest == FIRST
    report = store.fsck()
    assert report == FsckReport(ok=True, stray_ingest=[ingest_file, temp_index])
    assert store.gc() == GcReport(removed=[], freed_bytes=12 + 51)
    assert not ingest_file.exists()
    assert not temp_index.exists()
    assert store.fsck() == FsckReport(ok=True)


def test_live_ingest_is_not_a_stray(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    with store.ingest() as writer:
        writer.write(b"in progress")
        assert store.fsck() == FsckReport(ok=True)
        assert store.gc() == GcReport(removed=[], freed_bytes=0)
        assert writer.path.exists()
        digest, _ = writer.commit()
    assert store.has_blob(digest)


def test_fsck_reports_unparseable_manifest_and_gc_refuses(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    path: Path = store.blob_path(FIRST)
    os.chmod(path, 0o600)
    path.write_bytes(b"x" * 471)
    report = store.fsck()
    assert report.corrupt_blobs == [
        (FIRST, "localhost/test"),
        (FIRST, "localhost/test:v1"),
        (FIRST, "storage/index.json"),
    ]
    assert report.problems == [
        f"manifest {FIRST} (localhost/test, localhost/test:v1, storage/index.json) cannot be read: fix or remove it"
    ]
    with pytest.raises(StoreError) as info:
        store.gc()
    assert str(info.value) == (
        f"gc refused: manifest {FIRST} (localhost/test, localhost/test:v1) cannot be read; run fsck"
    )
    assert store.has_blob(WEIGHTS)


_KILLED_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from conftest import build_modelkit
from pymodelkit.store import LocalStore

from pymodelkit.errors import NotFoundError
from pymodelkit.oci import parse_reference

store = LocalStore(sys.argv[1])
for i in range(100000):
    build_modelkit(store, "localhost/crash", [b"x" * (1 << 20), str(i).encode()], tags=[f"v{i % 5}"], name=str(i))
    if i % 3 == 0:
        try:
            store.remove(parse_reference(f"crash:v{(i + 2) % 5}")[0])
        except NotFoundError:
            pass
    if i % 7 == 0:
        store.remove_all()
"""


def test_killed_writer_leaves_consistent_store(tmp_path: Path) -> None:
    home = tmp_path / "kit"
    rng = random.Random(20260920)
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(home), str(Path(__file__).parent)])
        time.sleep(rng.uniform(0.3, 0.9))
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = LocalStore(home)
        report = store.fsck()
        assert (report.ok, report.corrupt_blobs, report.missing_blobs, report.problems) == (True, [], [], [])
        for kit in store.list_modelkits():
            assert kit.repo_key == "localhost/crash"
            assert store.read_manifest(parse_reference(f"crash@{kit.digest}")[0])[1] == kit.manifest
    store = LocalStore(home)
    store.gc()
    assert store.fsck() == FsckReport(ok=True)
    assert store.list_modelkits() != []
