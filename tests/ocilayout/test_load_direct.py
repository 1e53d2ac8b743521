"""``load`` from an OCI archive through direct-I/O writers (each blob told its size): the same bytes in the store, a
corrupted blob refused with the source named, and no writer thread or ingest file left behind. The threshold and the
staging buffers are lowered so that this small ModelKit's layers go through the direct sink, which hashes them on a
thread of its own."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.errors import DigestMismatchError
from pymodelkit.store import directio, ingest
from pymodelkit.store.directio import DirectSink
from tests.ocilayout.conftest import REFERENCE, Saved
from tests.support.directio import direct_io_available
from tests.support.trees import read_tree

BUFFER = 16 << 10  # several staging buffers per layer of the churn tree's 200 kB weights


@pytest.fixture(autouse=True)
def direct_sinks(saved: Saved, monkeypatch: pytest.MonkeyPatch) -> list[DirectSink | None]:
    """After the ModelKit is packed and saved: every blob of 4 KiB or more written with direct I/O; the sinks the
    writers opened."""
    if not direct_io_available():
        pytest.skip("O_DIRECT is not available on this file system: load writes through the page cache here")
    monkeypatch.setattr(ingest, "DIRECT_MIN_BYTES", 4096)
    monkeypatch.setattr(directio, "BUFFER_BYTES", BUFFER)
    sinks: list[DirectSink | None] = []
    real_open = DirectSink.open

    def spy_open(cls: type[DirectSink], fd: int, /, **options: object) -> DirectSink | None:
        sink = real_open(fd, **options)  # type: ignore[arg-type]
        sinks.append(sink)
        assert options.get("observe") is not None  # load's writers hash: on the sink's thread
        return sink

    monkeypatch.setattr(DirectSink, "open", classmethod(spy_open))
    return sinks


def _writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("pymodelkit-directio", "pymodelkit-hash")]


def test_load_through_direct_writers_stores_the_same_bytes(
    saved: Saved, empty_store: pymodelkit.LocalStore, tmp_path: Path, direct_sinks: list[DirectSink | None]
) -> None:
    result = pymodelkit.load(saved.archive, store=empty_store)
    assert [k.digest for k in result.modelkits] == [saved.packed.digest]
    layers = saved.packed.manifest.layers or ()
    for layer in layers:
        assert empty_store.read_blob(layer.digest) == saved.store.read_blob(layer.digest)
    assert direct_sinks and None not in direct_sinks  # every blob of 4 KiB or more went through a direct sink
    assert any(layer.size > 2 * BUFFER for layer in layers)  # one spanned several staging buffers
    pymodelkit.unpack(REFERENCE, tmp_path / "out", store=empty_store)
    assert read_tree(tmp_path / "out") == read_tree(saved.source)
    assert empty_store.fsck().ok
    assert os.listdir(empty_store.storage / "ingest") == []
    assert _writer_threads() == []


def test_a_corrupted_blob_through_a_direct_writer_is_refused(
    saved: Saved, empty_store: pymodelkit.LocalStore, tmp_path: Path
) -> None:
    layers = saved.packed.manifest.layers or ()
    big = max(layers, key=lambda layer: layer.size)
    name = f"blobs/sha256/{big.digest.hex}"
    edited = tmp_path / "edited.tar"
    with tarfile.open(saved.archive) as source, tarfile.open(edited, "w", format=tarfile.PAX_FORMAT) as target:
        for info in source.getmembers():
            handle = source.extractfile(info)
            data = handle.read() if handle is not None else b""
            if info.name == name:
                at = len(data) - 3  # in the last staging buffer: every buffer before it was hashed on the thread
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
            target.addfile(info, io.BytesIO(data) if info.isreg() else None)
    with pytest.raises(DigestMismatchError) as refused:
        pymodelkit.load(edited, store=empty_store)
    message = str(refused.value)
    assert message.startswith(f"oci-archive:{edited}: blob digest mismatch: expected {big.digest}, got sha256:")
    assert "\n" not in message
    assert not empty_store.has_blob(big.digest)
    assert empty_store.list_modelkits() == []
    assert os.listdir(empty_store.storage / "ingest") == []
    assert _writer_threads() == []
