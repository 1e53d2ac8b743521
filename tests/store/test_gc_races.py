"""gc and fsck against writers at work: a file probed between its create and its flock (the hold of parked writers,
a writer's own ingest file) is either left alone or removed under the probe's lock so that its writer makes another;
a hard link on its way into the store is live; parked files stay live under threads and a gc in another process."""

from __future__ import annotations

import fcntl
import functools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pymodelkit.errors import DigestMismatchError
from pymodelkit.oci import Digest
from pymodelkit.store import LocalStore
from pymodelkit.store.holds import HOLD_PREFIX, Hold, is_ingest_live, remove_stray

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")


def _ingest_names(store: LocalStore) -> list[str]:
    return sorted(p.name for p in (store.storage / "ingest").iterdir())


def _holds(store: LocalStore) -> list[str]:
    return [name for name in _ingest_names(store) if name.startswith(HOLD_PREFIX)]


@pytest.fixture
def laid_out(store: LocalStore) -> LocalStore:
    """The store with its layout made (an ingest directory, no file in it)."""
    store.ingest().abort()
    return store


@pytest.fixture
def after_create(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Callable[[Path, int], None]], list[Path]]]:
    """``after_create(prefix, action)``: run ``action(path, fd)`` once, right after the next ``O_CREAT`` open of an
    ingest file named ``prefix...`` returned, before its creator locks it; returns the list the path goes into."""
    real = os.open

    def arm(prefix: str, action: Callable[[Path, int], None]) -> list[Path]:
        hit: list[Path] = []

        def open_then_act(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kwargs: object) -> int:
            fd = real(path, flags, mode, **kwargs)  # type: ignore[arg-type]
            name = os.path.basename(os.fspath(path))
            if not hit and flags & os.O_CREAT and name.startswith(prefix) and not name.startswith(f"{prefix}hold-"):
                hit.append(Path(os.fspath(path)))
                action(Path(os.fspath(path)), fd)
            return fd

        monkeypatch.setattr(os, "open", open_then_act)
        return hit

    yield arm
    monkeypatch.undo()


# ----- between a file's create and its lock -------------------------------------------------------------------


def test_gc_between_the_holds_create_and_its_lock_loses_nothing(laid_out: LocalStore, after_create: Callable[
        ..., list[Path]]) -> None:
    store = laid_out
    writer = store.ingest()
    writer.write(b"hello")
    hit = after_create(HOLD_PREFIX, lambda path, fd: store.gc())  # the gc sees an unlocked file: a stray
    writer.park()
    assert len(hit) == 1 and not hit[0].exists()  # removed by the gc while it held the lock: the hold made another
    assert is_ingest_live(writer.path)
    assert _holds(store) != [hit[0].name] and len(_holds(store)) == 1
    assert store.fsck().stray_ingest == []
    store.gc()
    assert writer.path.exists()
    writer.commit()
    assert store.has_blob(Digest.from_bytes(b"hello"))
    assert _ingest_names(store) == []
    assert Hold._holds == {}


def test_gc_between_an_ingest_files_create_and_its_lock_loses_nothing(laid_out: LocalStore, after_create: Callable[
        ..., list[Path]]) -> None:
    store = laid_out
    hit = after_create("pymodelkit_", lambda path, fd: store.gc())
    writer = store.ingest()
    assert len(hit) == 1 and not hit[0].exists()
    assert writer.path != hit[0] and is_ingest_live(writer.path)
    writer.write(b"hello")
    store.gc()
    assert writer.commit() == (Digest.from_bytes(b"hello"), 5)
    assert _ingest_names(store) == []


def _probe_for(seconds: float) -> Callable[[Path, int], None]:
    """A probe (fsck's, gc's) holding the new file's lock when its creator asks for it."""

    def probe(path: Path, fd: int) -> None:
        held = os.open(path, os.O_RDONLY)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        threading.Timer(seconds, os.close, (held,)).start()

    return probe


def test_a_probe_holding_a_new_holds_lock_only_delays_it(laid_out: LocalStore,
                                                          after_create: Callable[..., list[Path]]) -> None:
    store = laid_out
    writer = store.ingest()
    writer.write(b"hello")
    hit = after_create(HOLD_PREFIX, _probe_for(0.2))
    started = time.monotonic()
    writer.park()
    assert time.monotonic() - started >= 0.15  # it waited for the probe's lock (not LOCK_NB: a failed park)
    assert [p.name for p in hit] == _holds(store)  # and kept its file
    assert is_ingest_live(writer.path)
    writer.commit()
    assert _ingest_names(store) == []


def test_a_probe_holding_a_new_ingest_files_lock_only_delays_it(laid_out: LocalStore,
                                                                after_create: Callable[..., list[Path]]) -> None:
    store = laid_out
    hit = after_create("pymodelkit_", _probe_for(0.2))
    started = time.monotonic()
    writer = store.ingest()
    assert time.monotonic() - started >= 0.15
    assert hit == [writer.path]
    assert is_ingest_live(writer.path)
    writer.write(b"hello")
    writer.commit()
    assert _ingest_names(store) == []


# ----- gc removes a stray only under the lock it probed it with ------------------------------------------------


def test_remove_stray_decides_under_its_probes_lock(laid_out: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = laid_out.storage / "ingest"
    locked = ingest / "pymodelkit_00000000000000aa"
    locked.write_bytes(b"live")
    fd = os.open(locked, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    stray = ingest / "pymodelkit_00000000000000bb"
    stray.write_bytes(b"stray")
    try:
        assert not remove_stray(locked) and locked.exists()
        assert remove_stray(stray) and not stray.exists()
        assert not remove_stray(stray)  # gone
        live_hold = ingest / f"{HOLD_PREFIX}00000000000000aa"
        os.link(locked, live_hold)  # a hold file whose lock is held
        held = ingest / "pymodelkit_00000000000000cc.held-00000000000000aa"
        held.write_bytes(b"parked")
        orphan = ingest / "pymodelkit_00000000000000dd.held-00000000000000ee"  # its hold is gone
        orphan.write_bytes(b"parked")
        assert not remove_stray(held) and held.exists()
        assert remove_stray(orphan) and not orphan.exists()
    finally:
        os.close(fd)
    assert remove_stray(held) and not held.exists()  # its hold is no longer locked
    # Replaced between the probe's open and its lock: the path names another file now, left for a later gc.
    replaced = ingest / "pymodelkit_00000000000000ff"
    replaced.write_bytes(b"old")
    real = os.open

    def open_then_replace(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kwargs: object) -> int:
        fd = real(path, flags, mode, **kwargs)  # type: ignore[arg-type]
        if os.fspath(path) == str(replaced):
            newer = replaced.with_name("newer")
            newer.write_bytes(b"new")
            os.replace(newer, replaced)
        return fd

    monkeypatch.setattr(os, "open", open_then_replace)
    assert not remove_stray(replaced)
    monkeypatch.undo()
    assert replaced.read_bytes() == b"new"


# ----- hard links on their way into the store -------------------------------------------------------------------


def test_a_link_on_its_way_into_the_store_is_live(laid_out: LocalStore, tmp_path: Path) -> None:
    store = laid_out
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights" * 1000)
    seen: list[tuple[list[str], list[Path]]] = []

    def hash_during_a_gc() -> Digest:  # link_blob hashes the file once it is linked: a gc runs meanwhile
        seen.append(([n for n in _ingest_names(store) if "link_" in n], store.fsck().stray_ingest))
        store.gc()
        return Digest.from_bytes(source.read_bytes())

    digest = store.link_blob(source, hash_during_a_gc)
    assert digest == Digest.from_bytes(source.read_bytes())
    [(links, strays)] = seen
    assert len(links) == 1 and strays == []
    assert os.stat(store.blob_path(digest)).st_ino == os.stat(source).st_ino
    assert _ingest_names(store) == []
    assert Hold._holds == {}
    assert store.link_blob(source, hash_during_a_gc) == digest  # present: the link goes, the blob stays
    assert _ingest_names(store) == []


def test_links_left_by_a_crash_are_strays(laid_out: LocalStore) -> None:
    ingest = laid_out.storage / "ingest"
    left = [ingest / "pymodelkit_link_0011223344556677.held-8899aabbccddeeff",  # its process died
            ingest / "pymodelkit_link_0123456789abcdef"]  # named as before holds
    for path in left:
        path.write_bytes(b"linked")
    assert sorted(laid_out.fsck().stray_ingest) == sorted(left)
    assert laid_out.gc().freed_bytes == 12
    assert _ingest_names(laid_out) == []


# ----- under load -------------------------------------------------------------------------------------------------


def test_parked_files_stay_live_under_threads_and_a_gc(laid_out: LocalStore) -> None:
    """Five threads ingest, park, commit or abort (or fail a digest), a checker probes every parked file, a gc runs
    over and over: no parked file is ever seen dead, no commit fails, and nothing is left."""
    store = laid_out
    stop = threading.Event()
    problems: list[str] = []
    parked_now: set[Path] = set()
    lock = threading.Lock()

    def checker() -> None:
        while not stop.is_set():
            with lock:
                snapshot = list(parked_now)
            for path in snapshot:
                live = is_ingest_live(path)
                with lock:
                    if not live and path in parked_now:
                        problems.append(f"parked {path.name} seen dead")

    def collector() -> None:
        while not stop.is_set():
            store.gc()

    def worker(n: int) -> None:
        rnd = random.Random(n)
        try:
            for i in range(120):
                writer = store.ingest()
                writer.write(f"{n}-{i}".encode())
                if rnd.random() < 0.1:
                    with pytest.raises(DigestMismatchError):
                        writer.park(expected_digest=Digest.from_bytes(b"nope"))
                    continue
                writer.park()
                with lock:
                    parked_now.add(writer.path)
                time.sleep(rnd.random() / 1000)
                with lock:
                    parked_now.discard(writer.path)
                if rnd.random() < 0.5:
                    writer.commit()
                else:
                    writer.abort()
        except Exception as exc:  # reported below
            problems.append(f"worker {n}: {exc!r}")

    helpers = [threading.Thread(target=checker), threading.Thread(target=collector)]
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for thread in helpers + workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    for thread in helpers:
        thread.join()
    assert problems == []
    assert _ingest_names(store) == []
    assert Hold._holds == {}


def _same(digest: Digest) -> Digest:
    return digest


_GC_LOOP = """
import sys, time
from pymodelkit.store import LocalStore
store = LocalStore(sys.argv[1])
print("ready", flush=True)
runs, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    store.gc()
    runs += 1
print(runs)
"""


def test_writers_lose_nothing_to_a_gc_in_another_process(laid_out: LocalStore, tmp_path: Path) -> None:
    store = laid_out
    gc_loop = subprocess.Popen([sys.executable, "-c", _GC_LOOP, str(store.home), "2.5"], stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[2])
    assert gc_loop.stdout is not None
    assert gc_loop.stdout.readline() == "ready\n"
    problems: list[str] = []
    sources = []
    for n in range(2):
        source = tmp_path / f"source-{n}"
        source.write_bytes(f"linked {n}".encode())
        sources.append(source)

    def worker(n: int) -> None:
        rnd = random.Random(n)
        end = time.monotonic() + 2.0
        i = 0
        try:
            while time.monotonic() < end:
                i += 1
                if n < 2:
                    digest = Digest.from_bytes(sources[n].read_bytes())
                    if store.link_blob(sources[n], functools.partial(_same, digest)) is None:
                        problems.append("link_blob could not link")
                    continue
                writer = store.ingest()
                writer.write(f"{n}-{i}-{rnd.random()}".encode())
                if rnd.random() < 0.7:
                    writer.park()
                writer.commit()
        except Exception as exc:  # reported below
            problems.append(f"worker {n}: {exc!r}")

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    runs = int(gc_loop.stdout.read())
    gc_loop.stdout.close()
    assert gc_loop.wait(timeout=30) == 0
    assert problems == []
    assert runs > 10  # the gcs overlapped the writers
    assert _ingest_names(store) == []
