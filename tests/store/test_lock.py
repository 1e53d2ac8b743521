"""Concurrent writers: threads and processes adding ModelKits at once lose no index, tags or storage-index entry."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

from pymodelkit.oci import Descriptor, Manifest
from pymodelkit.store import LocalStore
from pymodelkit.store.layout import repo_index_path, repo_tags_path
from pymodelkit.store.lock import StoreLock

BuildModelKit = Callable[..., tuple[Descriptor, Manifest]]

CONFTEST_DIR = Path(__file__).resolve().parent


def _assert_complete(store: LocalStore, expected: dict[str, set[str]]) -> None:
    """Every repo lists exactly the expected manifests, each tagged ``t<n>``, and storage/index.json has them all."""
    all_digests: set[str] = set()
    for repo, digests in expected.items():
        index = json.loads(repo_index_path(store.storage, repo).read_bytes())
        assert {d["digest"] for d in index["manifests"]} == digests
        tags = json.loads(repo_tags_path(store.storage, repo).read_bytes())
        assert {d["digest"] for d in tags.values()} == digests
        all_digests |= digests
    storage_index = json.loads((store.storage / "index.json").read_bytes())
    assert {d["digest"] for d in storage_index["manifests"]} == all_digests
    assert store.fsck().ok


def test_eight_threads_lose_nothing(tmp_path: Path, build: BuildModelKit) -> None:
    home = tmp_path / "kit"
    expected: dict[str, set[str]] = {"localhost/shared": set(), "localhost/own-0": set(), "localhost/own-1": set()}
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        store = LocalStore(home) if n % 2 else shared_store  # both one shared instance and separate instances
        barrier.wait()
        try:
            for i in range(6):
                repo = "localhost/shared" if i % 2 == 0 else f"localhost/own-{n % 2}"
                desc, _ = build(store, repo, [f"layer {n} {i}".encode()], tags=[f"t{n}x{i}"], name=f"m{n}-{i}")
                with lock:
                    expected[repo].add(str(desc.digest))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    shared_store = LocalStore(home)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(len(v) for v in expected.values()) == 48
    _assert_complete(LocalStore(home), expected)


_WORKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from conftest import build_modelkit
    from pymodelkit.store import LocalStore

    store = LocalStore(sys.argv[1])
    name = sys.argv[2]
    for i in range(25):
        desc, _ = build_modelkit(store, "localhost/shared", [f"{name} layer {i}".encode()], tags=[f"{name}-{i}"],
                                 name=f"{name}-{i}")
        print(desc.digest, flush=True)
    """
)


def test_two_processes_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "kit"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), name, str(CONFTEST_DIR)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    digests: set[str] = set()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        digests |= set(out.split())
    assert len(digests) == 50
    _assert_complete(LocalStore(home), {"localhost/shared": digests})


def test_lock_is_reentrant_and_excludes_other_holders(tmp_path: Path) -> None:
    first = StoreLock(tmp_path / "storage" / ".pymodelkit.lock")
    second = StoreLock(tmp_path / "storage" / ".pymodelkit.lock")
    order: list[str] = []
    with first, first:

        def take_second() -> None:
            with second:
                order.append("second")

        thread = threading.Thread(target=take_second)
        thread.start()
        thread.join(timeout=0.3)
        assert thread.is_alive()  # blocked on the flock the first lock holds
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"]
