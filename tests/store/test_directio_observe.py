"""The zero-copy path of the direct-I/O sink and the blob writer: ``DirectSink(observe=...)`` (every byte given to a
second thread, in order, while the same buffer is written), ``DirectSink.fill`` (a reader fills the staging buffer in
place), and ``BlobWriter(hash_when_direct=...)``, ``BlobWriter.hashing`` and ``BlobWriter.write_from``."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodelkit.errors import DigestMismatchError, StoreError
from pymodelkit.oci.digest import Digest
from pymodelkit.store import LocalStore, directio, ingest
from pymodelkit.store.directio import ALIGNMENT, BUFFER_BYTES, DirectSink
from pymodelkit.store.ingest import DIRECT_MIN_BYTES, BlobWriter
from tests.support.directio import NO_DIRECT, direct_io_available

SMALL = 4 * ALIGNMENT  # the sink's staging buffer in these tests (two of them): a few KiB span several buffers
THREAD_NAMES = ("pymodelkit-directio", "pymodelkit-hash")
_real_pwrite = os.pwrite


DIRECT = direct_io_available()
needs_direct = pytest.mark.skipif(not DIRECT, reason=NO_DIRECT)


class ObserverBroke(Exception):
    """What the tests' failing observers raise."""


def _sink_threads() -> list[str]:
    """Names of the sinks' threads still alive (writer and observer)."""
    return sorted(t.name for t in threading.enumerate() if t.name in THREAD_NAMES)


def _ingest_names(store: LocalStore) -> list[str]:
    return sorted(os.listdir(store.storage / "ingest"))


def _open_sink(path: Path, observe: Callable[[memoryview], None] | None) -> tuple[int, DirectSink]:
    """``path`` opened for writing and a 2 x SMALL direct sink on it (skips where O_DIRECT is not available)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sink = DirectSink.open(fd, buffer_bytes=SMALL, buffers=2, observe=observe)
    if sink is None:
        os.close(fd)
        pytest.skip(NO_DIRECT)
    return fd, sink


class Recorder:
    """An observer that copies what it is given (after an optional sleep: a buffer reused too early shows)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.chunks: list[bytes] = []
        self.threads: set[str] = set()
        self._delay = delay

    def __call__(self, view: memoryview) -> None:
        self.threads.add(threading.current_thread().name)
        if self._delay:
            time.sleep(self._delay)
        self.chunks.append(bytes(view))

    @property
    def seen(self) -> bytes:
        return b"".join(self.chunks)


class Source:
    """Bytes handed out by ``write`` pieces (:meth:`take`) and by a ``readinto`` (:meth:`__call__`) that returns short
    counts (cycling through ``counts``) and 0 at the end; ``fail_after``: give exactly that many bytes, then raise
    (after scribbling on the view)."""

    def __init__(self, data: bytes, counts: list[int], fail_after: int | None = None) -> None:
        self.data = data
        self.at = 0
        self.counts = counts or [len(data) or 1]
        self.calls = 0
        self.lengths: list[int] = []  # the length of each view given
        self.kinds: set[type] = set()  # the objects those views are of
        self.fail_after = fail_after
        self.error = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    def take(self, n: int) -> bytes:
        piece = self.data[self.at : self.at + n]
        self.at += len(piece)
        return piece

    def __call__(self, view: memoryview) -> int:
        self.lengths.append(len(view))
        self.kinds.add(type(view.obj))
        want = min(len(view), self.counts[self.calls % len(self.counts)], len(self.data) - self.at)
        self.calls += 1
        if self.fail_after is not None:
            if self.at >= self.fail_after and want:
                view[: len(view)] = b"\xee" * len(view)  # scribbled on, yet not taken
                raise self.error
            want = min(want, self.fail_after - self.at)  # exactly ``fail_after`` bytes, then the error
        view[:want] = self.data[self.at : self.at + want]
        self.at += want
        return want


# --- DirectSink(observe=...) -------------------------------------------------------------------------------------


@needs_direct
@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 5 * SMALL + 7),
    plan=st.lists(
        st.tuples(st.booleans(), st.integers(1, 2 * SMALL + 3), st.integers(1, SMALL + 5)), min_size=1, max_size=10
    ),
)
def test_observe_sees_exactly_the_bytes_written(size: int, plan: list[tuple[bool, int, int]]) -> None:
    """Pieces of any size, by write() and by fill() with a reader returning short counts: the observer is given every
    byte once, in order, a full buffer at a time (the last one short), on its own thread; the file has the same."""
    data = secrets.token_bytes(size)
    source = Source(data, [short for _, _, short in plan])
    observer = Recorder()
    with tempfile.TemporaryDirectory() as temp:
        path = Path(temp) / "out"
        fd, sink = _open_sink(path, observer)
        try:
            step = 0
            while source.at < size:
                use_fill, n, _ = plan[step % len(plan)]
                step += 1
                if use_fill:
                    before, calls = source.at, source.calls
                    count = sink.fill(source, n)
                    assert source.calls == calls + 1  # one call per fill
                    assert source.lengths[-1] == min(n, SMALL - before % SMALL)  # the limit, or the buffer's room
                    assert count == source.at - before > 0
                else:
                    sink.write(source.take(n))
            assert sink.fill(source, SMALL) == 0  # the reader's end
            sink.finish()
        finally:
            sink.close()
            os.close(fd)
        assert path.read_bytes() == data
    assert observer.seen == data
    assert all(len(chunk) == SMALL for chunk in observer.chunks[:-1])
    assert all(0 < len(chunk) <= SMALL for chunk in observer.chunks)
    assert observer.threads == ({"pymodelkit-hash"} if size else set())
    assert _sink_threads() == []


@pytest.mark.parametrize("slow", ["observe", "pwrite"])
def test_a_buffer_is_reused_only_once_both_threads_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: str
) -> None:
    """A slow observer (it copies the bytes only after a sleep) or a slow disk: neither thread's view of a buffer is
    overwritten by the caller before it is done, so the observer's copy and the file are both the bytes written."""
    if slow == "pwrite":

        def pwrite(fd: int, data: memoryview, offset: int) -> int:
            time.sleep(0.004)
            return _real_pwrite(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", pwrite)
    observer = Recorder(delay=0.004 if slow == "observe" else 0.0)
    data = secrets.token_bytes(12 * SMALL + 777)
    source = Source(data, [3001, 5000, 1])
    path = tmp_path / "out"
    fd, sink = _open_sink(path, observer)
    try:
        turn = 0
        while source.at < len(data):
            if turn % 2:
                sink.write(source.take(4999))
            else:
                sink.fill(source, 7000)
            turn += 1
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert observer.seen == data
    assert path.read_bytes() == data
    assert _sink_threads() == []


@needs_direct
def test_observe_runs_while_the_same_buffer_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first buffer's observe and its pwrite wait for each other: that only ends if they run at the same time."""
    observing, writing = threading.Event(), threading.Event()
    met: dict[str, bool] = {}
    names: dict[str, str] = {}

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if offset == 0 and "pwrite" not in met:
            names["pwrite"] = threading.current_thread().name
            writing.set()
            met["pwrite"] = observing.wait(5)
        return _real_pwrite(fd, data, offset)

    def observe(view: memoryview) -> None:
        if "observe" not in met:
            names["observe"] = threading.current_thread().name
            observing.set()
            met["observe"] = writing.wait(5)

    monkeypatch.setattr(os, "pwrite", pwrite)
    path = tmp_path / "out"
    data = os.urandom(2 * SMALL + 5)
    fd, sink = _open_sink(path, observe)
    try:
        sink.write(data)
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert met == {"pwrite": True, "observe": True}
    assert names == {"pwrite": "pymodelkit-directio", "observe": "pymodelkit-hash"}
    assert path.read_bytes() == data


def test_observe_error_comes_out_of_a_later_write(tmp_path: Path) -> None:
    def observe(view: memoryview) -> None:
        raise ObserverBroke("hash failed")

    fd, sink = _open_sink(tmp_path / "out", observe)
    try:
        # The first buffer's observe fails before the buffer is free again: the write that reuses it raises.
        with pytest.raises(ObserverBroke, match=r"^hash failed$"):
            sink.write(os.urandom(3 * SMALL + 1))
        with pytest.raises(ObserverBroke, match=r"^hash failed$"):  # and every write after it
            sink.write(b"x")
        assert _sink_threads() != []
        sink.close()
        assert _sink_threads() == []
        with pytest.raises(ValueError, match=r"^direct sink is finished or closed$"):
            sink.fill(Source(b"abc", [3]), 3)
        sink.close()  # idempotent
    finally:
        sink.close()
        os.close(fd)
    assert _sink_threads() == []


def test_observe_error_on_the_last_buffer_comes_out_of_finish(tmp_path: Path) -> None:
    observer = Recorder()

    def observe(view: memoryview) -> None:
        if len(view) < SMALL:  # only the short last buffer, which finish() hands over
            raise ObserverBroke("hash failed at the tail")
        observer(view)

    data = os.urandom(2 * SMALL + 100)
    fd, sink = _open_sink(tmp_path / "out", observe)
    try:
        sink.write(data)  # the full buffers are observed without error
        with pytest.raises(ObserverBroke, match=r"^hash failed at the tail$"):
            sink.finish()
        assert _sink_threads() == []
        with pytest.raises(ValueError, match=r"^direct sink is finished or closed$"):
            sink.fill(Source(b"abc", [3]), 3)
        with pytest.raises(ObserverBroke):  # finish again: the same error, still closed
            sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert observer.seen == data[: 2 * SMALL]
    assert _sink_threads() == []


def test_observe_error_is_raised_by_check_not_by_fill(tmp_path: Path) -> None:
    def observe(view: memoryview) -> None:
        raise ObserverBroke("hash failed")

    source = Source(os.urandom(6 * SMALL), [SMALL])
    fd, sink = _open_sink(tmp_path / "out", observe)
    try:
        for _ in range(5):  # three buffers taken: the first one's observe has failed by then
            assert sink.fill(source, SMALL) == SMALL
        with pytest.raises(ObserverBroke, match=r"^hash failed$"):
            sink.check()
        with pytest.raises(ObserverBroke, match=r"^hash failed$"):
            sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert _sink_threads() == []


def test_close_drops_what_is_left_without_observing_it(tmp_path: Path) -> None:
    observer = Recorder()
    data = os.urandom(SMALL + 10)
    fd, sink = _open_sink(tmp_path / "out", observer)
    try:
        sink.write(data)
        sink.close()
    finally:
        os.close(fd)
    assert _sink_threads() == []
    assert observer.seen in (b"", data[:SMALL])  # the full buffer, unless dropped first; never the buffered 10 bytes


# --- DirectSink.fill ---------------------------------------------------------------------------------------------


@needs_direct
@pytest.mark.parametrize("before", [0, 1000, SMALL])
@pytest.mark.parametrize("limit", [1, 100, ALIGNMENT, SMALL - 1000, SMALL - 1, SMALL, SMALL + 1, 10 * SMALL])
def test_fill_respects_the_limit_and_the_buffer(tmp_path: Path, before: int, limit: int) -> None:
    head = os.urandom(before)
    body = os.urandom(limit)
    source = Source(body, [limit])
    observer = Recorder()
    path = tmp_path / "out"
    fd, sink = _open_sink(path, observer)
    try:
        sink.write(head)
        count = sink.fill(source, limit)
        room = SMALL - before % SMALL
        assert source.lengths == [min(limit, room)]
        assert count == min(limit, room)
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert path.read_bytes() == head + body[:count]
    assert observer.seen == head + body[:count]


def test_fill_returns_0_at_the_end_and_for_no_room(tmp_path: Path) -> None:
    head = os.urandom(1000)
    source = Source(b"", [5])
    path = tmp_path / "out"
    fd, sink = _open_sink(path, None)
    try:
        assert sink.fill(source, SMALL) == 0  # on a fresh buffer
        sink.write(head)
        assert sink.fill(source, SMALL) == 0  # the reader's end: nothing taken
        assert source.calls == 2
        assert sink.fill(source, 0) == 0  # a limit of 0: the reader is not called
        assert sink.fill(source, -5) == 0
        assert source.calls == 2
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert path.read_bytes() == head


@pytest.mark.parametrize("before", [0, 1000, SMALL])
def test_fill_reader_error_propagates_and_takes_nothing(tmp_path: Path, before: int) -> None:
    data = os.urandom(3 * SMALL + 5)
    source = Source(data, [777], fail_after=before)
    observer = Recorder()
    path = tmp_path / "out"
    fd, sink = _open_sink(path, observer)
    try:
        sink.write(source.take(before))
        with pytest.raises(ConnectionResetError) as caught:
            sink.fill(source, SMALL)  # scribbles on the buffer, then raises
        assert caught.value is source.error
        source.fail_after = None
        while source.at < len(data):  # the rest, into the very buffer that was scribbled on
            assert sink.fill(source, SMALL) > 0
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert path.read_bytes() == data
    assert observer.seen == data


@pytest.mark.parametrize(("answer", "room"), [(1001, 1000), (-1, 1000), (SMALL + 1, SMALL)])
def test_fill_reader_count_out_of_range_is_a_value_error(tmp_path: Path, answer: int, room: int) -> None:
    head = os.urandom(SMALL - room)
    rest = os.urandom(5000)
    path = tmp_path / "out"
    fd, sink = _open_sink(path, None)
    try:
        sink.write(head)
        with pytest.raises(ValueError, match=rf"^readinto returned {answer} for a buffer of {room} bytes$"):
            sink.fill(lambda view: answer, 2 * SMALL)
        sink.write(rest)  # nothing was taken
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert path.read_bytes() == head + rest


def test_fill_does_not_raise_a_background_write_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", pwrite)
    source = Source(os.urandom(6 * SMALL), [SMALL])
    fd, sink = _open_sink(tmp_path / "out", None)
    try:
        for _ in range(5):  # the first buffer's write failed before it came back for the third
            assert sink.fill(source, SMALL) == SMALL
        with pytest.raises(OSError) as caught:
            sink.check()
        assert caught.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            sink.write(b"x")
    finally:
        sink.close()
        os.close(fd)
    assert _sink_threads() == []


def test_fill_after_finish_is_refused(tmp_path: Path) -> None:
    fd, sink = _open_sink(tmp_path / "out", None)
    try:
        sink.write(b"abc")
        sink.finish()
        with pytest.raises(ValueError, match=r"^direct sink is finished or closed$"):
            sink.fill(Source(b"more", [4]), 4)
    finally:
        sink.close()
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"abc"


# --- BlobWriter: hashing, hash_when_direct -----------------------------------------------------------------------


@pytest.mark.parametrize("setting", [None, "0"])
@pytest.mark.parametrize("hint", [DIRECT_MIN_BYTES, DIRECT_MIN_BYTES - 1, None])
@pytest.mark.parametrize("hash_when_direct", [True, False])
@pytest.mark.parametrize("hashing", [True, False])
def test_writer_hashing_property(
    store: LocalStore,
    monkeypatch: pytest.MonkeyPatch,
    hashing: bool,
    hash_when_direct: bool,
    hint: int | None,
    setting: str | None,
) -> None:
    if setting is not None:
        monkeypatch.setenv("PYMODELKIT_DIRECT_IO", setting)
    direct = DIRECT and setting is None and hint is not None and hint >= DIRECT_MIN_BYTES
    with store.ingest(hashing=hashing, size_hint=hint, hash_when_direct=hash_when_direct) as writer:
        assert writer.direct_io is direct
        assert writer.hashing is (hashing or (direct and hash_when_direct))
    with BlobWriter(store.storage, hashing=hashing, size_hint=hint, hash_when_direct=hash_when_direct) as writer:
        assert writer.direct_io is direct
        assert writer.hashing is (hashing or (direct and hash_when_direct))
    assert _ingest_names(store) == []
    assert _sink_threads() == []


def test_writer_refused_flag_leaves_the_hashing_to_the_caller(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(fd: int, enable: bool) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(directio, "set_direct", refuse)
    data = os.urandom(BUFFER_BYTES + 3)
    with store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES, hash_when_direct=True) as writer:
        assert not writer.direct_io
        assert not writer.hashing
        writer.write(data)
        with pytest.raises(StoreError, match=r"^blob writer without hashing: commit needs the digest"):
            writer.commit()
    assert _ingest_names(store) == []
    with store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES, hash_when_direct=True) as writer:
        writer.write(data)
        wrong = Digest.from_bytes(b"not it")
        digest, _ = writer.commit(expected_digest=wrong)  # not hashing: the caller's digest is taken
    assert digest == wrong


class _ThreadRecordingSha256:
    """``hashlib.sha256`` that notes the thread of each ``update``."""

    threads: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self._inner = hashlib.sha256()

    def update(self, data: memoryview) -> None:
        self.threads.append(threading.current_thread().name)
        self._inner.update(data)

    def hexdigest(self) -> str:
        return self._inner.hexdigest()


@pytest.mark.parametrize(
    ("hashing", "hint", "thread"),
    [(True, DIRECT_MIN_BYTES, "pymodelkit-hash"), (False, DIRECT_MIN_BYTES, "pymodelkit-hash"), (True, None, None)],
)
def test_writer_hashes_on_the_sink_thread_when_direct(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, hashing: bool, hint: int | None, thread: str | None
) -> None:
    monkeypatch.setattr(ingest, "hashlib", SimpleNamespace(sha256=_ThreadRecordingSha256))
    monkeypatch.setattr(_ThreadRecordingSha256, "threads", [])
    data = os.urandom(2 * BUFFER_BYTES + 12345)
    with store.ingest(hashing=hashing, size_hint=hint, hash_when_direct=True) as writer:
        if hint is not None and not writer.direct_io:
            pytest.skip(NO_DIRECT)
        for at in range(0, len(data), 300_001):
            writer.write(data[at : at + 300_001])
        digest, size = writer.commit()
    assert (digest, size) == (Digest.from_bytes(data), len(data))
    expected = thread or threading.current_thread().name
    assert set(_ThreadRecordingSha256.threads) == {expected}
    assert store.blob_path(digest).read_bytes() == data


@pytest.mark.parametrize("size", [0, 1, ALIGNMENT, BUFFER_BYTES, 2 * BUFFER_BYTES + 4097])
def test_hash_when_direct_writer_commits_with_its_own_digest(store: LocalStore, size: int) -> None:
    data = os.urandom(size)
    with store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES, hash_when_direct=True) as writer:
        if not writer.direct_io:
            pytest.skip(NO_DIRECT)
        assert writer.hashing
        writer.write(data)
        digest, written = writer.commit()  # no expected_digest: the writer hashed
    assert (digest, written) == (Digest.from_bytes(data), size)
    assert store.blob_path(digest).read_bytes() == data
    assert _ingest_names(store) == []
    assert _sink_threads() == []


@needs_direct
def test_hash_when_direct_writer_rejects_a_wrong_digest(store: LocalStore) -> None:
    data = os.urandom(BUFFER_BYTES + 99)
    wrong = Digest.from_bytes(b"something else")
    actual = Digest.from_bytes(data)
    with store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES, hash_when_direct=True) as writer:
        assert writer.direct_io and writer.hashing
        writer.write(data)
        with pytest.raises(DigestMismatchError) as caught:
            writer.commit(expected_digest=wrong)
    assert str(caught.value) == f"blob digest mismatch: expected {wrong}, got {actual}"
    assert (caught.value.expected, caught.value.actual) == (str(wrong), str(actual))
    assert _ingest_names(store) == []
    assert not store.has_blob(actual) and not store.has_blob(wrong)
    assert _sink_threads() == []


# --- BlobWriter.write_from ---------------------------------------------------------------------------------------

# How a writer is made in the write_from tests: (hashing, size_hint, hash_when_direct); "direct*" go direct where the
# platform allows (through 2 x SMALL buffers when the test shrinks them), "cached" through the page cache.
MODES = {
    "direct-observed": (False, DIRECT_MIN_BYTES, True),
    "direct-hashing": (True, DIRECT_MIN_BYTES, False),
    "cached": (True, None, False),
}


def _writer(store: LocalStore, mode: str) -> BlobWriter:
    hashing, hint, hash_when_direct = MODES[mode]
    writer = store.ingest(hashing=hashing, size_hint=hint, hash_when_direct=hash_when_direct)
    assert writer.direct_io is (DIRECT and hint is not None)
    assert writer.hashing
    return writer


def _small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directio, "BUFFER_BYTES", SMALL)
    monkeypatch.setattr(directio, "BUFFER_COUNT", 2)


@pytest.mark.parametrize("mode", list(MODES))
@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(0, 6 * SMALL + 11),
    counts=st.lists(st.integers(1, SMALL + 3), min_size=1, max_size=6),
    plan=st.lists(st.tuples(st.booleans(), st.integers(1, 3 * SMALL)), min_size=1, max_size=6),
)
def test_write_from_takes_every_byte(
    mode: str, size: int, counts: list[int], plan: list[tuple[bool, int]]
) -> None:
    """write_from (a reader returning short counts) mixed with write(): the blob has the bytes and their digest, and a
    direct writer's reader is given views of the staging buffers (mmap) themselves."""
    data = secrets.token_bytes(size)
    source = Source(data, counts)
    with tempfile.TemporaryDirectory() as temp, pytest.MonkeyPatch.context() as patch:
        _small_buffers(patch)
        store = LocalStore(Path(temp) / "kit")
        with _writer(store, mode) as writer:
            step = 0
            while source.at < size:
                use_write, n = plan[step % len(plan)]
                step += 1
                if use_write:
                    writer.write(source.take(n))
                else:
                    before = source.at
                    taken = writer.write_from(source, n)
                    assert taken == min(n, size - before) == source.at - before
                assert writer.size == source.at
            assert writer.write_from(source, 100) == 0  # the end
            assert writer.size == size
            digest, written = writer.commit()
        assert (digest, written) == (Digest.from_bytes(data), size)
        assert store.blob_path(digest).read_bytes() == data
        assert _ingest_names(store) == []
    if source.lengths:
        if MODES[mode][1] is not None and DIRECT:
            assert source.kinds == {mmap.mmap} and max(source.lengths) <= SMALL
        else:
            assert source.kinds == {bytearray} and max(source.lengths) <= 1 << 20
    assert _sink_threads() == []


@pytest.mark.parametrize("mode", list(MODES))
def test_write_from_a_socket(store: LocalStore, mode: str) -> None:
    """The real use: ``recv_into`` of a socket whose peer sends in odd pieces, through full-size buffers."""
    data = os.urandom(3 * BUFFER_BYTES + 4321)
    left, right = socket.socketpair()

    def send() -> None:
        with right:
            at, sizes, turn = 0, [65_537, 1, 300_000, 4096], 0
            while at < len(data):
                piece = data[at : at + sizes[turn % len(sizes)]]
                right.sendall(piece)
                at += len(piece)
                turn += 1

    sender = threading.Thread(target=send)
    sender.start()
    try:
        with left, _writer(store, mode) as writer:
            taken = 0
            while taken < len(data):
                got = writer.write_from(left.recv_into, min(len(data) - taken, 1 << 20))
                assert got > 0
                taken += got
            assert writer.write_from(left.recv_into, 10) == 0  # the peer closed
            digest, size = writer.commit()
    finally:
        sender.join(10)
    assert (digest, size) == (Digest.from_bytes(data), len(data))
    assert store.blob_path(digest).read_bytes() == data
    assert _sink_threads() == []


@pytest.mark.parametrize("fail_after", [0, 5000, SMALL, 2 * SMALL + 1])
@pytest.mark.parametrize("mode", list(MODES))
def test_write_from_reader_error_keeps_what_it_took(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, mode: str, fail_after: int
) -> None:
    """A reader that raises midway (a connection reset): raised as it is, the bytes before it stay in the writer
    (``size``), and a second write_from from there completes the blob."""
    _small_buffers(monkeypatch)
    data = os.urandom(5 * SMALL + 333)
    source = Source(data, [1000, 3001], fail_after=fail_after)
    with _writer(store, mode) as writer:
        with pytest.raises(ConnectionResetError) as caught:
            writer.write_from(source, len(data))
        assert caught.value is source.error
        assert caught.value.filename is None  # the reader's error, not named after the ingest file
        assert writer.size == source.at == fail_after
        source.fail_after = None  # resumed, as a download resumes with a Range request
        assert writer.write_from(source, len(data) - writer.size) == len(data) - fail_after
        digest, size = writer.commit(expected_size=len(data))
    assert (digest, size) == (Digest.from_bytes(data), len(data))
    assert store.blob_path(digest).read_bytes() == data
    assert _ingest_names(store) == []
    assert _sink_threads() == []


@needs_direct
@pytest.mark.parametrize("fails_at", [0, SMALL])
def test_write_from_raises_a_background_write_error_naming_the_ingest(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, fails_at: int
) -> None:
    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if offset >= fails_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _real_pwrite(fd, data, offset)

    _small_buffers(monkeypatch)
    monkeypatch.setattr(os, "pwrite", pwrite)
    data = os.urandom(10 * SMALL)
    source = Source(data, [3000])
    writer = _writer(store, "direct-observed")
    with pytest.raises(OSError) as caught:  # at the latest once the failed buffer came back
        writer.write_from(source, len(data))
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value).endswith(f": '{writer.path}'")
    assert str(caught.value) == f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}: '{writer.path}'"
    assert source.at < len(data)
    writer.abort()
    assert _ingest_names(store) == []
    assert _sink_threads() == []


@pytest.mark.parametrize("mode", list(MODES))
def test_write_from_after_verify_or_commit_is_refused(store: LocalStore, mode: str) -> None:
    source = Source(b"0123456789", [4])
    with _writer(store, mode) as writer:
        assert writer.write_from(source, 6) == 6
        writer.verify()
        with pytest.raises(StoreError, match=r"^blob writer is verified: no more bytes can be written$"):
            writer.write_from(source, 4)
        assert source.calls == 2
        digest, size = writer.commit()
    assert (digest, size) == (Digest.from_bytes(b"012345"), 6)
    with pytest.raises(StoreError, match=r"^blob writer is closed: it was committed or aborted$"):
        writer.write_from(source, 4)
    assert source.calls == 2


@pytest.mark.parametrize("mode", list(MODES))
def test_write_from_limit_0_reads_nothing(store: LocalStore, mode: str) -> None:
    source = Source(b"abc", [3])
    with _writer(store, mode) as writer:
        assert writer.write_from(source, 0) == 0
        assert source.calls == 0
        assert writer.write_from(source, 3) == 3
        digest, _ = writer.commit()
    assert store.blob_path(digest).read_bytes() == b"abc"


class _ReaderCalledAgain(Exception):
    pass


@pytest.mark.parametrize("answer", [-1, "too many"])
@pytest.mark.parametrize("mode", ["direct-observed", "cached"])
def test_write_from_rejects_a_count_out_of_range(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, mode: str, answer: int | str
) -> None:
    """A reader claiming more bytes than its view holds, or a negative count, is a ValueError in either mode, and
    none of its bytes are taken."""
    _small_buffers(monkeypatch)
    calls: list[int] = []

    def readinto(view: memoryview) -> int:
        if calls:
            raise _ReaderCalledAgain("readinto called again after a bad count")
        calls.append(len(view))
        view[:] = b"\xee" * len(view)
        return -1 if answer == -1 else len(view) + 1

    with _writer(store, mode) as writer:
        try:
            taken: int | None = writer.write_from(readinto, 100)
        except ValueError as exc:
            taken = None
            assert re.fullmatch(r"readinto returned -?\d+ for a buffer of \d+ bytes", str(exc))
        assert taken is None, f"write_from returned {taken}, {writer.size} bytes written"
        assert writer.size == 0


@needs_direct
def test_an_observer_that_cannot_start_leaves_no_thread_and_no_ingest(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread to be had for the observer (many pulls at once): the write fails with that error, the writer
    thread already started is stopped, and abort removes the ingest file."""
    _small_buffers(monkeypatch)
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "pymodelkit-hash":
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    writer = store.ingest(hashing=False, size_hint=DIRECT_MIN_BYTES, hash_when_direct=True)
    assert writer.hashing and writer.direct_io
    with pytest.raises(RuntimeError, match=r"^can't start new thread$"):
        writer.write(os.urandom(3 * SMALL))
    writer.abort()
    assert _sink_threads() == []
    assert _ingest_names(store) == []
