"""The direct-I/O sink and the blob writer that uses it: the bytes on disk, the fallback to the page cache, errors of
the background write, abort, the setting, and a resumed download written through it."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodelkit.errors import DigestMismatchError, ModelKitError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.download import download_blob
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.upload import FileSpan, put_blob, start_upload
from pymodelkit.store import LocalStore, directio, ingest
from pymodelkit.store.directio import ALIGNMENT, BUFFER_BYTES, BUFFER_COUNT, DirectSink
from pymodelkit.store.ingest import DIRECT_MIN_BYTES
from tests.support.directio import NO_DIRECT, direct_io_available
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

SMALL = 4 * ALIGNMENT  # the sink tests' buffer: 16 KiB, so that a few KiB span several buffers
SIZES = [0, 1, 4095, 4096, 4097, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL + 1234]
WRITER_SIZES = [0, 1, 4095, 4096, 4097, BUFFER_BYTES - 1, BUFFER_BYTES, BUFFER_BYTES + 1, 2 * BUFFER_BYTES + 777]
MEDIA = "application/vnd.kitops.modelkit.model.v1.tar"
FAST = RetryPolicy(attempts=6, base_delay_s=0.01, max_delay_s=0.05, budget_s=20.0)
_real_pwrite = os.pwrite


# Where O_DIRECT is not available, the writers must say so and still write the same bytes: the tests assert what the
# platform allows, and the ones that need a direct sink skip, saying why.
DIRECT = direct_io_available()


def _sink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pymodelkit-directio"]


def _ingest_names(store: LocalStore) -> list[str]:
    return sorted(os.listdir(store.storage / "ingest"))


def _pieces(data: bytes, sizes: list[int]) -> Iterator[memoryview]:
    view = memoryview(data)
    at, index = 0, 0
    while at < len(data):
        size = sizes[index % len(sizes)] if sizes else len(data)
        yield view[at : at + size]
        at += size
        index += 1


def _sink_roundtrip(path: Path, data: bytes, sizes: list[int]) -> bool:
    """Write ``data`` in pieces of ``sizes`` through a 2 x SMALL sink on ``path``; returns whether it was direct."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        sink = DirectSink.open(fd, buffer_bytes=SMALL, buffers=2)
        if sink is None:
            pytest.skip(NO_DIRECT)
        was_direct = sink.direct
        for piece in _pieces(data, sizes):
            sink.write(piece)
        sink.finish()
        assert not sink.direct  # O_DIRECT is cleared at the end
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    return was_direct


@pytest.mark.parametrize("size", SIZES)
def test_sink_writes_exactly_the_bytes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    assert _sink_roundtrip(tmp_path / "out", data, [1000, 5000, SMALL, 1])
    assert _sink_threads() == []


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 5 * SMALL), sizes=st.lists(st.integers(1, 2 * SMALL + 3), min_size=1, max_size=8))
def test_sink_any_piece_sizes(size: int, sizes: list[int]) -> None:
    data = secrets.token_bytes(size)
    with tempfile.TemporaryDirectory() as temp:
        _sink_roundtrip(Path(temp) / "out", data, sizes)


@pytest.mark.parametrize("size", WRITER_SIZES)
def test_writer_with_size_hint_commits_the_blob(store: LocalStore, size: int) -> None:
    data = os.urandom(size)
    with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:
        assert writer.direct_io is DIRECT
        for piece in _pieces(data, [1 << 20, 12345]):
            writer.write(piece)
        assert writer.size == size  # counted as taken, also the bytes still in a staging buffer
        digest, written = writer.commit(mode=0o600)
    assert (digest, written) == (Digest.from_bytes(data), size)
    path = store.blob_path(digest)
    assert path.read_bytes() == data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _ingest_names(store) == []
    assert _sink_threads() == []


def test_writer_commit_sets_the_mode_asked_for(store: LocalStore) -> None:
    data = os.urandom(BUFFER_BYTES + 5)
    with store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES) as writer:
        assert writer.direct_io is DIRECT
        writer.write(data)
        digest, _ = writer.commit(expected_digest=Digest.from_bytes(data), expected_size=len(data), mode=0o444)
    assert stat.S_IMODE(os.stat(store.blob_path(digest)).st_mode) == 0o444
    assert store.blob_path(digest).read_bytes() == data


def test_writer_size_mismatch_drops_the_ingest(store: LocalStore) -> None:
    data = os.urandom(BUFFER_BYTES + 1)
    with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:
        assert writer.direct_io is DIRECT
        writer.write(data)
        with pytest.raises(DigestMismatchError, match=rf"^blob size mismatch: expected 5 bytes, wrote {len(data)}$"):
            writer.commit(expected_size=5)
    assert _ingest_names(store) == []
    assert _sink_threads() == []


def test_small_or_missing_size_hint_writes_through_the_cache(store: LocalStore) -> None:
    for hint in (None, DIRECT_MIN_BYTES - 1):
        with store.ingest(size_hint=hint) as writer:
            assert not writer.direct_io


def test_setting_off_writes_through_the_cache(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(BUFFER_BYTES + 3)
    for value in ("0", "false", "OFF"):
        monkeypatch.setenv("PYMODELKIT_DIRECT_IO", value)
        with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:
            assert not writer.direct_io
            writer.write(data)
            digest, _ = writer.commit()
        assert store.blob_path(digest).read_bytes() == data
    monkeypatch.setenv("PYMODELKIT_DIRECT_IO", "1")
    with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:
        assert writer.direct_io is DIRECT


def test_invalid_setting_is_an_error_and_leaves_nothing(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMODELKIT_DIRECT_IO", "maybe")
    with pytest.raises(ModelKitError, match=r"^invalid PYMODELKIT_DIRECT_IO 'maybe': use 1/0"):
        store.ingest(size_hint=DIRECT_MIN_BYTES)
    ingest_dir = store.storage / "ingest"
    assert not ingest_dir.exists() or os.listdir(ingest_dir) == []


def test_flag_refused_falls_back_to_the_cache(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int, enable: bool) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(directio, "set_direct", refuse)
    data = os.urandom(2 * BUFFER_BYTES + 99)
    with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:
        assert not writer.direct_io
        for piece in _pieces(data, [777_777]):
            writer.write(piece)
        digest, _ = writer.commit()
    assert store.blob_path(digest).read_bytes() == data
    assert _sink_threads() == []


def test_first_direct_write_einval_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if not refused:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return _real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    path = tmp_path / "out"
    data = os.urandom(3 * SMALL + 5)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        sink = DirectSink.open(fd, buffer_bytes=SMALL, buffers=2)
        if sink is None:
            pytest.skip(NO_DIRECT)
        assert sink.direct
        for piece in _pieces(data, [SMALL // 3]):
            sink.write(piece)
        sink.finish()
        assert refused == [0]
        assert not sink.direct
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_einval_after_direct_writes_falls_back(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file system whose direct I/O wants 16 KiB alignment: full 1 MiB buffers go direct, the last buffer's part
    # aligned to 4 KiB only is refused (EINVAL, nothing written) and must go through the page cache.
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if os.get_blocking(fd) and fcntl_direct(fd) and (offset % (4 * ALIGNMENT) or len(data) % (4 * ALIGNMENT)):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return _real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    data = os.urandom(2 * BUFFER_BYTES + 5 * ALIGNMENT + 100)  # the last buffer: 5 x 4 KiB (not 16 KiB-aligned) + 100
    writer = store.ingest(hashing=True, size_hint=DIRECT_MIN_BYTES)
    with writer:
        if not writer.direct_io:
            pytest.skip(NO_DIRECT)
        for piece in _pieces(data, [300_001]):
            writer.write(piece)
        digest, size = writer.commit()
    assert size == len(data)
    assert store.blob_path(digest).read_bytes() == data
    assert refused == [2 * BUFFER_BYTES]  # only the unaligned-at-16-KiB part, once; then buffered
    assert _sink_threads() == []


def fcntl_direct(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))


def test_a_failed_write_names_the_ingest_file(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def write(fd: int, data: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store.ingest().abort()  # the store's layout first: its files are written with os.write too
    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "write", write)
    writer = store.ingest(hashing=True, size_hint=DIRECT_MIN_BYTES)
    path = writer.path
    with pytest.raises(OSError) as caught, writer:
        for _ in range(8):
            writer.write(b"x" * BUFFER_BYTES)
        writer.commit()
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(path)
    assert _ingest_names(store) == []
    assert _sink_threads() == []


def test_on_dev_shm_the_bytes_are_the_same(tmp_path: Path) -> None:
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as temp:
        store = LocalStore(Path(temp) / "kit")
        data = os.urandom(BUFFER_BYTES + 4097)
        with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:  # direct or not: tmpfs takes O_DIRECT from Linux 6.6
            for piece in _pieces(data, [300_001]):
                writer.write(piece)
            digest, _ = writer.commit()
        assert store.blob_path(digest).read_bytes() == data
        assert digest == Digest.from_bytes(data)


def test_abort_midway_leaves_no_file_and_no_thread(store: LocalStore) -> None:
    writer = store.ingest(size_hint=DIRECT_MIN_BYTES)
    writer.write(os.urandom(3 * BUFFER_BYTES + 10))
    assert _sink_threads() != []
    assert writer.path.exists()
    writer.abort()
    assert _sink_threads() == []
    assert _ingest_names(store) == []
    with pytest.raises(StoreError, match=r"^blob writer is closed: it was committed or aborted$"):
        writer.write(b"more")


def _failing_pwrite(at_or_after: int, code: int) -> Callable[[int, memoryview, int], int]:
    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if offset >= at_or_after:
            raise OSError(code, os.strerror(code))
        return _real_pwrite(fd, data, offset)

    return pwrite


def test_background_write_error_surfaces_from_a_later_write(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(BUFFER_BYTES, errno.ENOSPC))
    writer = store.ingest(size_hint=DIRECT_MIN_BYTES)
    piece = os.urandom(BUFFER_BYTES)
    with pytest.raises(OSError) as info:  # from a write after the failure: at the latest once every buffer came back
        for _ in range(2 * BUFFER_COUNT + 4):
            writer.write(piece)
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}: '{writer.path}'"
    writer.abort()
    assert _ingest_names(store) == []
    assert _sink_threads() == []


def test_background_write_error_surfaces_from_commit(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(BUFFER_BYTES + 100)
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(BUFFER_BYTES, errno.EIO))  # the tail's write fails
    with store.ingest(size_hint=DIRECT_MIN_BYTES) as writer:
        assert writer.direct_io is DIRECT
        writer.write(data)
        with pytest.raises(OSError) as info:
            writer.commit()
    assert info.value.errno == errno.EIO
    assert _ingest_names(store) == []
    assert _sink_threads() == []
    assert not store.has_blob(Digest.from_bytes(data))


def test_writer_starting_over_after_abort(store: LocalStore) -> None:
    """What a download does when the registry answers 200 to a Range request: drop the writer, start a new one."""
    data = os.urandom(2 * BUFFER_BYTES + 1)
    first = store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES)
    first.write(data[:BUFFER_BYTES + 3])
    first.abort()
    with store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES) as second:
        assert second.direct_io is DIRECT
        second.write(data)
        digest, _ = second.commit(expected_digest=Digest.from_bytes(data), expected_size=len(data))
    assert store.blob_path(digest).read_bytes() == data
    assert _ingest_names(store) == []
    assert _sink_threads() == []


def test_a_cut_download_resumes_into_the_direct_writer(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "DIRECT_MIN_BYTES", 1 << 20)  # a 3 MiB blob goes direct, through 64 KiB buffers
    monkeypatch.setattr(directio, "BUFFER_BYTES", 64 << 10)
    sinks: list[DirectSink | None] = []
    real_open = DirectSink.open

    def spy_open(cls: type[DirectSink], fd: int, /, **options: object) -> DirectSink | None:
        sink = real_open(fd, **options)  # type: ignore[arg-type]
        sinks.append(sink)
        return sink

    monkeypatch.setattr(DirectSink, "open", classmethod(spy_open))
    data = os.urandom(3 * (1 << 20) + 4321)
    repo = f"directio/t{secrets.token_hex(4)}"
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    digest = Digest.from_bytes(data)
    with RegistryClient(registry.host) as client, upload.open("rb") as handle:
        put_blob(client, start_upload(client, repo), digest, FileSpan(handle.fileno(), 0, len(data)))
    proxy = fault_proxy(registry.url)
    proxy.cut("GET", "/blobs/sha256:", after_bytes=1_234_567, direction="response", times=2)  # not aligned
    store = LocalStore(tmp_path / "home")
    with RegistryClient(proxy.host, plain_http=True) as client:
        assert download_blob(client, repo, Descriptor(MEDIA, digest, len(data)), store, retry=FAST) is True
    assert store.blob_path(digest).read_bytes() == data
    assert proxy.cuts == 2
    assert [r.status for r in proxy.requests if r.method == "GET"] == [None, None, 206]
    assert len(sinks) == 1 and sinks[0] is not None  # one writer, direct, kept across the cuts
    assert _ingest_names(store) == []
    assert _sink_threads() == []
