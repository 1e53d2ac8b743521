"""The pack hot path's stages: the chunk fan-out (order, buffer reuse, errors), gzip through ISA-L or zlib (valid
gzip, deterministic per backend, overridable), hard-linked raw layers, and parallel layers in manifest order."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import isal  # noqa: F401  (the test extra installs it: the ISA-L path is always tested, never skipped)
import pytest

import pymodelkit
from pymodelkit._buffers import BufferPool, ChunkFanout
from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.pack import layers, pipeline
from pymodelkit.pack.compression import compression_backend, gzip_backend, open_compressing_writer

DATA = b"".join(b"row %d,%d,hello\n" % (i, i * 7) for i in range(50_000)) + os.urandom(100_000)


def _gzip(kind: str) -> bytes:
    out = bytearray()
    writer = open_compressing_writer(kind, out.extend)
    for start in range(0, len(DATA), 65536):
        writer.write(memoryview(DATA)[start : start + 65536])
    writer.close()
    return bytes(out)


@pytest.mark.parametrize("kind", ["gzip", "gzip-fastest"])
def test_isal_and_zlib_write_valid_deterministic_gzip(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert gzip_backend() == "isal" and compression_backend(kind).startswith("isal-")
    with_isal = _gzip(kind)
    assert with_isal == _gzip(kind) and gzip.decompress(with_isal) == DATA
    xfl = b"\x04" if kind == "gzip-fastest" else b"\x00"
    assert with_isal[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + xfl + b"\xff"
    monkeypatch.setenv("PYMODELKIT_GZIP_BACKEND", "zlib")
    assert gzip_backend() == "zlib" and compression_backend(kind).startswith("zlib-")
    with_zlib = _gzip(kind)
    assert with_zlib == _gzip(kind) and gzip.decompress(with_zlib) == DATA
    assert with_zlib != with_isal and with_zlib[:10] == with_isal[:10]
    monkeypatch.setenv("PYMODELKIT_GZIP_BACKEND", "brotli")
    with pytest.raises(ModelKitError, match="invalid PYMODELKIT_GZIP_BACKEND 'brotli'"):
        gzip_backend()


def test_gzip_layers_unpack_with_either_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "rows.csv").write_bytes(DATA * 40)  # > 8 MiB: the threaded stages
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\ndatasets:\n  - path: data\n")
    store = pymodelkit.LocalStore(tmp_path / "home")
    isal_pack = pymodelkit.pack(src, tag="gz:isal", compression="gzip-fastest", store=store, digest_cache=False)
    monkeypatch.setenv("PYMODELKIT_GZIP_BACKEND", "zlib")
    zlib_pack = pymodelkit.pack(src, tag="gz:zlib", compression="gzip-fastest", store=store, digest_cache=False)
    (isal_layer,), (zlib_layer,) = isal_pack.manifest.layers or (), zlib_pack.manifest.layers or ()
    assert isal_layer.digest != zlib_layer.digest
    assert isal_pack.kitfile.datasets[0].diff_id == zlib_pack.kitfile.datasets[0].diff_id
    for tag in ("gz:isal", "gz:zlib"):
        pymodelkit.unpack(tag, tmp_path / tag.replace(":", "-"), store=store)
        assert (tmp_path / tag.replace(":", "-") / "data" / "rows.csv").read_bytes() == DATA * 40


def test_fanout_gives_every_chunk_to_every_consumer_in_order() -> None:
    pool = BufferPool(2, 8)
    seen: dict[str, list[bytes]] = {"a": [], "b": []}
    released: list[int] = []

    def releaser(buffer: bytearray) -> Callable[[], None]:
        def release() -> None:
            released.append(1)
            pool.release(buffer)

        return release

    with ChunkFanout([lambda c: seen["a"].append(bytes(c)), lambda c: seen["b"].append(bytes(c))]) as fan:
        for index in range(50):
            buffer = pool.acquire()
            buffer[:] = b"%08d" % index
            fan.put(memoryview(buffer), releaser(buffer))
        fan.close()
    assert seen["a"] == seen["b"] == [b"%08d" % i for i in range(50)]
    assert len(released) == 50


def test_fanout_raises_a_consumer_error_and_still_frees_buffers() -> None:
    pool = BufferPool(2, 4)
    calls = threading.Event()

    def broken(chunk: memoryview) -> None:
        calls.set()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), ChunkFanout([broken, lambda c: None]) as fan:
        for _ in range(100):  # would block forever on acquire if a failed consumer kept its buffers
            buffer = pool.acquire()
            fan.put(memoryview(buffer), functools.partial(pool.release, buffer))
        fan.close()
    assert calls.is_set()


def test_raw_layer_hard_link_shares_the_file_and_never_changes_its_mode(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    weights = src / "weights.bin"
    weights.write_bytes(os.urandom(3 << 20))
    weights.chmod(0o640)
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
    store = pymodelkit.LocalStore(tmp_path / "home")
    linked = pymodelkit.pack(src, tag="raw:link", layer_format="raw", link=True, store=store, digest_cache=False)
    (layer,) = linked.manifest.layers or ()
    blob = store.blob_path(layer.digest)
    assert os.path.samefile(blob, weights) and stat.S_IMODE(weights.stat().st_mode) == 0o640
    assert layer.digest.hex == hashlib.sha256(weights.read_bytes()).hexdigest()
    copied = pymodelkit.pack(src, tag="raw:copy", layer_format="raw", store=pymodelkit.LocalStore(tmp_path / "h2"),
                             digest_cache=False)
    assert copied.manifest.layers == linked.manifest.layers
    copy_blob = pymodelkit.LocalStore(tmp_path / "h2").blob_path(layer.digest)
    assert not os.path.samefile(copy_blob, weights) and stat.S_IMODE(copy_blob.stat().st_mode) == 0o600
    pymodelkit.unpack("raw:link", tmp_path / "out", store=store)
    assert (tmp_path / "out" / "weights.bin").read_bytes() == weights.read_bytes()


def test_parallel_layers_keep_manifest_order_and_raise_the_first_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    for name in ("a", "b", "c", "d"):
        (src / name).mkdir(parents=True)
        (src / name / "f.bin").write_bytes(name.encode() * (9 << 20 if name in "ac" else 1000))
    (src / "Kitfile").write_text(
        "manifestVersion: 1.0.0\nmodel:\n  path: a\ncode:\n  - path: b\ndatasets:\n  - path: c\ndocs:\n  - path: d\n"
    )
    store = pymodelkit.LocalStore(tmp_path / "home")
    parallel = pymodelkit.pack(src, tag="par:v1", store=store, digest_cache=False)
    monkeypatch.setattr(pipeline, "LAYER_WORKERS", 1)
    serial = pymodelkit.pack(src, tag="par:v2", store=store, digest_cache=False)
    assert parallel.manifest.layers == serial.manifest.layers
    paths = [(d.annotations or {})["org.cncf.model.filepath"] for d in parallel.manifest.layers or ()]
    assert paths == ["a", "b", "c", "d"]
    monkeypatch.setattr(pipeline, "LAYER_WORKERS", 2)
    real = layers.build_layer

    def failing(job: layers.LayerJob, *args: Any, **kwargs: Any) -> layers.BuiltLayer:
        if job.layer.path == "b":
            time.sleep(0.2)  # fails after c did
            raise PackError("layer b failed")
        if job.layer.path == "c":
            raise PackError("layer c failed")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(pipeline, "build_layer", failing)
    with pytest.raises(PackError, match="layer b failed"):
        pymodelkit.pack(src, tag="par:v3", store=store, digest_cache=False)
    assert "par:v3" not in {t for kit in store.list_modelkits() for t in kit.tags}
