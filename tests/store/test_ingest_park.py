"""A parked blob writer (``BlobWriter.park``): verified, its file descriptor given back, then committed or aborted by
path; kept live for fsck/gc by one hold file per ingest directory; refused when its file changed after it was
verified; through the page cache and with direct I/O. A commit of a present blob needs no parked file; a park
interrupted anywhere leaves nothing; a forked child leaves its parent's holds alone; a parked writer finalized inside
the hold registry does not deadlock."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pymodelkit.errors import DigestMismatchError, StoreError
from pymodelkit.oci import Digest
from pymodelkit.store import BlobWriter, LocalStore
from pymodelkit.store.directio import BUFFER_BYTES
from pymodelkit.store.holds import Hold
from pymodelkit.store.ingest import DIRECT_MIN_BYTES, is_ingest_live
from tests.support.directio import direct_io_available

HELLO = Digest.parse("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")  # b"hello"
CLOSED = r"^blob writer is closed: it was committed or aborted$"

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")


def _ingest_names(store: LocalStore) -> list[str]:
    return sorted(p.name for p in (store.storage / "ingest").iterdir())


def _fds_on(directory: Path) -> list[str]:
    """The files under ``directory`` this process has open."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own fd, closed meanwhile
            continue
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


def _parked(store: LocalStore, data: bytes = b"hello") -> BlobWriter:
    writer = store.ingest()
    writer.write(data)
    writer.park()
    return writer


# ----- commit and abort after park -------------------------------------------------------------------------------


def test_park_closes_the_file_and_commit_moves_the_verified_bytes(store: LocalStore) -> None:
    writer = store.ingest()
    writer.write(b"hello")
    ingest = store.storage / "ingest"
    assert _fds_on(ingest) == [str(writer.path)]
    assert not writer.parked
    assert writer.park(expected_digest=HELLO, expected_size=5) == HELLO
    assert writer.parked
    hold = [name for name in _ingest_names(store) if name.startswith("pymodelkit_hold-")]
    assert len(hold) == 1
    assert writer.path.name.endswith(f".held-{hold[0].removeprefix('pymodelkit_hold-')}")
    assert _fds_on(ingest) == [str(ingest / hold[0])]  # the hold only: the parked file itself is closed
    assert writer.path.read_bytes() == b"hello"
    assert writer.size == 5
    assert writer.commit(mode=0o600) == (HELLO, 5)
    assert not writer.parked
    assert store.blob_path(HELLO).read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(store.blob_path(HELLO)).st_mode) == 0o600
    assert _ingest_names(store) == []  # the parked file moved, the hold went with the last parked writer
    assert _fds_on(store.storage) == []


def test_commit_after_park_keeps_a_present_blob(store: LocalStore) -> None:
    store.write_blob(b"hello")
    inode = os.stat(store.blob_path(HELLO)).st_ino
    writer = _parked(store)
    assert writer.commit(mode=0o600) == (HELLO, 5)
    assert writer.was_present
    assert os.stat(store.blob_path(HELLO)).st_ino == inode
    assert _ingest_names(store) == []


def test_abort_after_park_removes_the_file_and_the_hold(store: LocalStore) -> None:
    writer = _parked(store)
    path = writer.path
    assert path.exists()
    writer.abort()
    assert not path.exists()
    assert not writer.parked
    assert _ingest_names(store) == []
    assert _fds_on(store.storage) == []
    writer.abort()  # again: nothing to do
    with pytest.raises(StoreError, match=CLOSED):
        writer.commit()
    assert not store.has_blob(HELLO)


def test_double_calls_on_a_parked_writer(store: LocalStore) -> None:
    writer = _parked(store)
    path = writer.path
    assert writer.park() == HELLO  # parked already: the same file, the same digest
    assert writer.path == path
    assert writer.verify(expected_digest=HELLO, expected_size=5) == HELLO
    with pytest.raises(StoreError, match=r"^blob writer is verified: no more bytes can be written$"):
        writer.write(b"more")
    with pytest.raises(StoreError, match=r"^blob writer is verified: no more bytes can be written$"):
        writer.write_from(lambda view: 0, 10)
    writer.commit()
    with pytest.raises(StoreError, match=CLOSED):
        writer.commit()
    with pytest.raises(StoreError, match=CLOSED):
        writer.park()
    writer.abort()  # after commit: nothing to do, the blob stays
    assert store.blob_path(HELLO).read_bytes() == b"hello"
    assert _ingest_names(store) == []


def test_park_of_an_aborted_writer_is_refused(store: LocalStore) -> None:
    writer = store.ingest()
    writer.write(b"hello")
    writer.abort()
    with pytest.raises(StoreError, match=CLOSED):
        writer.park()
    assert _ingest_names(store) == []


def test_park_checks_the_expected_digest_and_size(store: LocalStore) -> None:
    wrong = Digest.from_bytes(b"other")
    writer = store.ingest()
    writer.write(b"hello")
    with pytest.raises(DigestMismatchError, match=rf"^blob digest mismatch: expected {wrong}, got {HELLO}$"):
        writer.park(expected_digest=wrong)
    assert _ingest_names(store) == []
    writer = store.ingest()
    writer.write(b"hello")
    with pytest.raises(DigestMismatchError, match=r"^blob size mismatch: expected 4 bytes, wrote 5$"):
        writer.park(expected_size=4)
    assert _ingest_names(store) == []


def test_a_writer_without_hashing_parks_with_the_callers_digest(store: LocalStore) -> None:
    writer = store.ingest(hashing=False)
    writer.write(b"hello")
    with pytest.raises(StoreError, match="commit needs the digest of the bytes written"):
        writer.park()
    writer = store.ingest(hashing=False)
    writer.write(b"hello")
    assert writer.park(expected_digest=HELLO, expected_size=5) == HELLO
    assert writer.commit() == (HELLO, 5)
    assert store.blob_path(HELLO).read_bytes() == b"hello"


def test_commit_after_verify_rejects_another_expected_digest(store: LocalStore) -> None:
    writer = _parked(store)
    other = Digest.from_bytes(b"other")
    with pytest.raises(DigestMismatchError, match=rf"^blob digest mismatch: expected {other}, got {HELLO}$"):
        writer.commit(expected_digest=other)
    with pytest.raises(DigestMismatchError, match=r"^blob size mismatch: expected 6 bytes, wrote 5$"):
        _parked(store).commit(expected_size=6)
    assert not store.has_blob(HELLO)
    assert _ingest_names(store) == []


# ----- the parked file must be the one verified ------------------------------------------------------------------


def test_commit_refuses_a_parked_file_rewritten_in_place(store: LocalStore) -> None:
    writer = _parked(store)
    time.sleep(0.05)  # past the file system's timestamp granularity: the rewrite gets a new ctime
    with open(writer.path, "r+b") as handle:
        handle.write(b"jello")  # same size
    with pytest.raises(StoreError, match=r"^parked ingest file .*\.held-[0-9a-f]+ was changed after it was verified$"):
        writer.commit()
    assert not store.has_blob(HELLO)
    assert _ingest_names(store) == []


def test_commit_refuses_a_parked_file_replaced_or_grown(store: LocalStore) -> None:
    writer = _parked(store)
    other = writer.path.with_name("other")
    other.write_bytes(b"hello")  # the verified bytes, but not the verified file
    os.chmod(other, 0o600)
    os.replace(other, writer.path)
    with pytest.raises(StoreError, match=r"was changed after it was verified$"):
        writer.commit()
    writer = _parked(store)
    with open(writer.path, "ab") as handle:
        handle.write(b"!")
    with pytest.raises(StoreError, match=r"was changed after it was verified$"):
        writer.commit()
    assert not store.has_blob(HELLO)
    assert _ingest_names(store) == []


def test_commit_of_a_removed_parked_file_fails_cleanly(store: LocalStore) -> None:
    writer = _parked(store)
    os.unlink(writer.path)
    with pytest.raises(StoreError, match=r"^parked ingest file .* cannot be opened again: No such file or directory$"):
        writer.commit()
    assert _ingest_names(store) == []
    assert _fds_on(store.storage) == []


def test_commit_refuses_a_symlink_in_place_of_the_parked_file(store: LocalStore, tmp_path: Path) -> None:
    writer = _parked(store)
    outside = tmp_path / "outside"
    outside.write_bytes(b"hello")
    os.unlink(writer.path)
    os.symlink(outside, writer.path)
    with pytest.raises(StoreError, match=r"cannot be opened again"):
        writer.commit()
    assert not store.has_blob(HELLO)
    assert outside.read_bytes() == b"hello"
    assert _ingest_names(store) == []


# ----- many parked writers, one hold; fsck and gc --------------------------------------------------------------


def test_many_parked_writers_share_one_open_hold(store: LocalStore) -> None:
    payloads = [f"blob {i}".encode() for i in range(200)]
    writers = [_parked(store, data) for data in payloads]
    assert len(_fds_on(store.storage)) == 1
    holds = [n for n in _ingest_names(store) if n.startswith("pymodelkit_hold-")]
    assert len(holds) == 1
    assert len(_ingest_names(store)) == 201
    for writer in writers[:100]:
        writer.commit()
    assert holds == [n for n in _ingest_names(store) if n.startswith("pymodelkit_hold-")]  # still held
    for writer in writers[100:]:
        writer.abort()
    assert _ingest_names(store) == []
    assert _fds_on(store.storage) == []
    assert all(store.blob_path(Digest.from_bytes(d)).read_bytes() == d for d in payloads[:100])
    assert not any(store.has_blob(Digest.from_bytes(d)) for d in payloads[100:])


def test_parked_files_are_live_for_fsck_and_gc(store: LocalStore) -> None:
    writers = [_parked(store, data) for data in (b"one", b"two")]
    assert all(is_ingest_live(w.path) for w in writers)
    assert store.fsck().stray_ingest == []
    store.gc()
    assert all(w.path.exists() for w in writers)
    for writer in writers:
        writer.commit()
    assert store.has_blob(Digest.from_bytes(b"one")) and store.has_blob(Digest.from_bytes(b"two"))


def test_parked_files_of_a_dead_process_are_strays(store: LocalStore) -> None:
    _parked(store).abort()  # makes the layout
    ingest = store.storage / "ingest"
    orphan = ingest / "pymodelkit_00112233aabbccdd.held-0123456789abcdef"  # its hold file is gone
    orphan.write_bytes(b"x")
    dead_hold = ingest / "pymodelkit_hold-fedcba9876543210"  # a hold nobody locks: its process died
    dead_hold.write_bytes(b"")
    held_by_dead = ingest / "pymodelkit_8899aabbccddeeff.held-fedcba9876543210"
    held_by_dead.write_bytes(b"y")
    live = _parked(store)
    assert not is_ingest_live(orphan)
    assert not is_ingest_live(dead_hold)
    assert not is_ingest_live(held_by_dead)
    assert not is_ingest_live(ingest / "pymodelkit_1111111111111111.held-2222222222222222")  # neither exists
    assert sorted(store.fsck().stray_ingest) == sorted([orphan, dead_hold, held_by_dead])
    store.gc()
    assert [p.name for p in ingest.iterdir() if p != live.path and not p.name.startswith("pymodelkit_hold-")] == []
    live.commit()
    assert _ingest_names(store) == []


def test_a_dropped_parked_writer_releases_its_hold(store: LocalStore) -> None:
    writer = _parked(store)
    path = writer.path
    del writer
    gc.collect()
    assert _fds_on(store.storage) == []
    assert path.exists() and not is_ingest_live(path)  # a stray now, for gc
    store.gc()
    assert _ingest_names(store) == []


# ----- direct I/O -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hashing", [True, False])
def test_a_direct_io_writer_parks_and_commits(store: LocalStore, hashing: bool) -> None:
    data = os.urandom(BUFFER_BYTES + 12345)  # a full staging buffer and an unaligned tail
    digest = Digest.from_bytes(data)
    writer = store.ingest(hashing=hashing, size_hint=DIRECT_MIN_BYTES, hash_when_direct=True)
    assert writer.direct_io is direct_io_available(str(store.storage / "ingest"))
    writer.write(data)
    assert writer.park(expected_digest=digest, expected_size=len(data)) == digest
    assert not writer.staged and not writer.direct_io
    assert len(_fds_on(store.storage)) == 1  # the hold
    assert writer.commit(mode=0o600) == (digest, len(data))
    assert store.blob_path(digest).read_bytes() == data
    assert stat.S_IMODE(os.stat(store.blob_path(digest)).st_mode) == 0o600
    assert _ingest_names(store) == []


def test_a_direct_io_writer_aborts_after_park(store: LocalStore) -> None:
    data = os.urandom(BUFFER_BYTES + 1)
    writer = store.ingest(size_hint=DIRECT_MIN_BYTES)
    writer.write(data)
    writer.park()
    writer.abort()
    assert not store.has_blob(Digest.from_bytes(data))
    assert _ingest_names(store) == []
    assert _fds_on(store.storage) == []


# ----- a commit of a blob already present ----------------------------------------------------------------------


def test_commit_of_a_present_blob_needs_no_parked_file(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_blob(b"hello")
    writer = _parked(store)
    os.unlink(writer.path)  # gone: no matter, the store has the blob
    assert writer.commit() == (HELLO, 5)
    assert writer.was_present
    writer = _parked(store)
    path = writer.path
    opened: list[str] = []
    real_open = os.open

    def recording_open(name: str | os.PathLike[str], *args: object, **kwargs: object) -> int:
        opened.append(os.fspath(name))
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording_open)
    assert writer.commit() == (HELLO, 5)
    monkeypatch.undo()
    assert writer.was_present
    assert str(path) not in opened  # removed without being opened again
    assert not path.exists()
    assert _ingest_names(store) == []
    assert _fds_on(store.storage) == []
    assert Hold._holds == {}


# ----- a park interrupted anywhere leaves nothing ---------------------------------------------------------------


def _interrupt_hold_lock(monkeypatch: pytest.MonkeyPatch, writer: BlobWriter, tmp_path: Path) -> None:
    import fcntl

    def flock(fd: int, operation: int) -> None:
        raise KeyboardInterrupt  # while waiting for the new hold file's lock

    monkeypatch.setattr(fcntl, "flock", flock)


def _interrupt_before_rename(monkeypatch: pytest.MonkeyPatch, writer: BlobWriter, tmp_path: Path) -> None:
    def rename(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # the hold is taken, the file not yet renamed

    monkeypatch.setattr(os, "rename", rename)


def _interrupt_after_rename(monkeypatch: pytest.MonkeyPatch, writer: BlobWriter, tmp_path: Path) -> None:
    real = os.rename

    def rename(src: str, dst: str) -> None:
        real(src, dst)
        raise KeyboardInterrupt  # renamed, the writer's path not yet updated

    monkeypatch.setattr(os, "rename", rename)


def _interrupt_before_close(monkeypatch: pytest.MonkeyPatch, writer: BlobWriter, tmp_path: Path) -> None:
    real, target = os.close, writer._fd

    def close(fd: int) -> None:
        if fd == target:
            monkeypatch.setattr(os, "close", real)
            raise KeyboardInterrupt  # the writer has let go of its fd, not yet closed
        real(fd)

    monkeypatch.setattr(os, "close", close)


def _interrupt_after_close(monkeypatch: pytest.MonkeyPatch, writer: BlobWriter, tmp_path: Path) -> None:
    real, target = os.close, writer._fd
    assert target is not None

    def close(fd: int) -> None:
        real(fd)
        if fd == target:
            monkeypatch.setattr(os, "close", real)
            other = os.open(tmp_path / "other", os.O_RDONLY | os.O_CREAT, 0o600)  # the number reused at once
            if other != target:
                os.dup2(other, target)
                real(other)
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "close", close)


@pytest.mark.parametrize(
    "interrupt",
    [_interrupt_hold_lock, _interrupt_before_rename, _interrupt_after_rename, _interrupt_before_close,
     _interrupt_after_close],
    ids=["making-the-hold", "before-rename", "after-rename", "before-close", "after-close"],
)
def test_a_park_interrupted_anywhere_leaves_nothing(store: LocalStore, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    interrupt: Callable[..., None]) -> None:
    writer = store.ingest()
    writer.write(b"hello")
    fd = writer._fd
    assert fd is not None
    interrupt(monkeypatch, writer, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        writer.park()
    monkeypatch.undo()
    assert not writer.parked
    assert _ingest_names(store) == []  # neither name, nor a hold file
    assert _fds_on(store.storage) == []  # the ingest file's fd closed, once
    assert Hold._holds == {}  # no hold count left behind
    if interrupt is _interrupt_after_close:
        assert os.fstat(fd).st_ino == os.stat(tmp_path / "other").st_ino  # the reused number was left alone
        os.close(fd)
    with pytest.raises(StoreError, match=CLOSED):
        writer.commit()
    again = _parked(store)  # the hold registry works on
    assert is_ingest_live(again.path)
    again.commit()
    assert _ingest_names(store) == []


# ----- fork -------------------------------------------------------------------------------------------------------

_FORK_CHILD_EXITS = """
import os, sys
from pathlib import Path
from pymodelkit.store import LocalStore
from pymodelkit.store.ingest import is_ingest_live

store = LocalStore(Path(sys.argv[1]))
writer = store.ingest(); writer.write(b"hello"); writer.park()
ingest = store.storage / "ingest"
hold = next(p for p in ingest.iterdir() if p.name.startswith("pymodelkit_hold-"))
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    if sys.argv[2] == "abort":
        writer.abort()  # what the child inherited is the parent's: nothing is removed
    own = store.ingest(); own.write(b"child"); own.park()  # the child's own hold, its own to remove
    assert [p for p in ingest.iterdir() if p.name.startswith("pymodelkit_hold-") and p != hold]
    own.commit()
    sys.exit(0)  # a normal exit: finalizers run over what the child inherited
_, status = os.waitpid(pid, 0)
print("child", status)
print("holds", sorted(p.name for p in ingest.iterdir() if p.name.startswith("pymodelkit_hold-")) == [hold.name])
print("live", is_ingest_live(writer.path))
print("commit", writer.commit()[1])
print("left", sorted(p.name for p in ingest.iterdir()))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
@pytest.mark.parametrize("child", ["exits", "abort"])
def test_a_forked_child_never_removes_the_parents_hold(tmp_path: Path, child: str) -> None:
    script = tmp_path / "fork.py"
    script.write_text(_FORK_CHILD_EXITS)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "kit"), child], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.stderr == ""
    assert out.stdout.splitlines() == ["child 0", "holds True", "live True", "commit 5", "left []"]


_FORK_PARENT_DIES = """
import os, sys, time
from pathlib import Path
from pymodelkit.store import LocalStore

store = LocalStore(Path(sys.argv[1]))
writer = store.ingest(); writer.write(b"hello"); writer.park()
print("parked", writer.path, flush=True)
if os.fork() == 0:
    print("child", os.getpid(), flush=True)  # after the fork handlers
    time.sleep(60)
    os._exit(0)
os._exit(0)  # the parent dies without a word, as when killed: its hold file stays, and nobody should lock it
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_does_not_keep_a_dead_parents_files_live(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(_FORK_PARENT_DIES)
    home = tmp_path / "kit"
    parent = subprocess.Popen([sys.executable, str(script), str(home)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child = None
    try:
        assert parent.stdout is not None
        seen = dict(parent.stdout.readline().split(" ", 1) for _ in range(2))
        child = int(seen["child"])
        assert parent.wait(timeout=30) == 0
        parked = Path(seen["parked"].strip())
        store = LocalStore(home)
        hold = next(p for p in (store.storage / "ingest").iterdir() if p.name.startswith("pymodelkit_hold-"))
        os.kill(child, 0)  # the child lives on, with a copy of every descriptor its parent had
        assert not is_ingest_live(parked)
        assert sorted(store.fsck().stray_ingest) == sorted([parked, hold])
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


# ----- a parked writer finalized while its thread is inside the hold registry -----------------------------------

_FINALIZED_INSIDE_THE_REGISTRY = """
import faulthandler, gc, sys
from pathlib import Path
from pymodelkit.store import LocalStore, holds
from pymodelkit.store.ingest import is_ingest_live

faulthandler.dump_traceback_later(20, exit=True)  # a deadlock shows where, and ends
root = Path(sys.argv[1])

def dropped(store):
    # a parked writer only the cyclic garbage collector can finalize
    writer = store.ingest(); writer.write(b"dropped"); writer.park(); writer.cycle = writer
    return writer.path

def hold_files(store):
    return [p for p in (store.storage / "ingest").iterdir() if p.name.startswith("pymodelkit_hold-")]

gc.disable()
a, b, c = (LocalStore(root / name) for name in "abc")

# 1. collected while this thread holds the registry's lock
path = dropped(a)
with holds.Hold._lock:
    gc.collect()
print("1", hold_files(a) == [], not is_ingest_live(path), holds.Hold._holds == {})

# 2. collected inside acquire, while it makes the hold of another directory
path = dropped(a)
writer = b.ingest(); writer.write(b"b")
real = holds.secrets.token_hex
def collecting(n):
    gc.collect()
    return real(n)
holds.secrets.token_hex = collecting
writer.park()
holds.secrets.token_hex = real
print("2", hold_files(a) == [], not is_ingest_live(path), is_ingest_live(writer.path), len(hold_files(b)))
writer.commit()

# 3. collected inside acquire, between its lookup of a hold and its count: the hold it found is released then
path = dropped(c)
writer = c.ingest(); writer.write(b"c")
class Collecting(dict):
    def get(self, key, default=None):
        found = super().get(key, default)
        gc.collect()
        return found
holds.Hold._holds = Collecting(holds.Hold._holds)
writer.park()
holds.Hold._holds = dict(holds.Hold._holds)
print("3", not is_ingest_live(path), is_ingest_live(writer.path), len(hold_files(c)))
writer.commit()
print("end", holds.Hold._holds == {}, hold_files(b) == hold_files(c) == [])
"""


def test_a_parked_writer_finalized_inside_the_hold_registry_does_not_deadlock(tmp_path: Path) -> None:
    script = tmp_path / "finalize.py"
    script.write_text(_FINALIZED_INSIDE_THE_REGISTRY)
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.stderr == ""
    assert out.stdout.splitlines() == ["1 True True True", "2 True True True 1", "3 True True 1", "end True True"]
