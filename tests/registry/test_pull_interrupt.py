"""A pull interrupted (Ctrl-C in the main thread, a KeyboardInterrupt in a worker, twice in a row) or failed while a
layer is stalled mid-body stops its downloads at once and leaves nothing: no blob, nothing in the ingest area (no
parked file, no hold file), no thread of its own."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pymodelkit.errors import RegistryError
from pymodelkit.oci import Descriptor, Manifest
from pymodelkit.progress import ProgressEvent
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.transfer import pull
from pymodelkit.store import LocalStore
from pymodelkit.store.ingest import DIRECT_MIN_BYTES
from tests.support.faultproxy import FaultProxy
from tests.support.rawkits import push_raw_layers
from tests.support.registry import TestRegistry

pytestmark = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler, reason="needs Python's own SIGINT handler"
)

FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
STALL_AT = 256 << 10  # the big layers stall after this much of their body, for longer than any test may take
STALL_S = 60.0
PROMPT_S = 8.0  # a stopped pull returns within this (the trigger waits 1 s; a read notices a stop within 0.2 s)


@dataclass(frozen=True)
class Kit:
    """A ModelKit in the registry: two big layers (read from the socket through the page cache, and with direct
    I/O where the file system allows) that the tests stall, two small ones, and the small *trigger* layer."""

    repository: str
    manifest: Manifest

    @property
    def big(self) -> list[Descriptor]:
        return list((self.manifest.layers or ())[:2])

    @property
    def trigger(self) -> Descriptor:
        return (self.manifest.layers or ())[-1]


@pytest.fixture(scope="module")
def kit(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Kit:
    source = LocalStore(tmp_path_factory.mktemp("interrupt-source"))
    payloads = [os.urandom(4 << 20), os.urandom(DIRECT_MIN_BYTES + 4096), b"small a", b"small b", b"trigger"]
    _, repository, manifest = push_raw_layers(registry.host, source, payloads, name="interrupt/kit")
    return Kit(repository, manifest)


@pytest.fixture
def stalled(kit: Kit, registry: TestRegistry, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    """A proxy to the registry where the big layers stall mid-body and the trigger layer answers after 1 s."""
    proxy = fault_proxy(registry.url)
    for blob in kit.big:
        proxy.stall("GET", rf"/blobs/{blob.digest}$", seconds=STALL_S, after_bytes=STALL_AT, times=None)
    proxy.stall("GET", rf"/blobs/{kit.trigger.digest}$", seconds=1.0, times=None)
    return proxy


@pytest.fixture
def new_threads() -> Callable[[], list[str]]:
    """``new_threads()``: the names of pymodelkit's threads started since the test began and still alive."""
    before = set(threading.enumerate())

    def alive() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("pymodelkit") and t not in before]

    return alive


def _assert_nothing_left(store: LocalStore) -> None:
    storage = store.storage
    assert sorted(os.listdir(storage / "ingest")) == []  # no parked file, no hold file, no partial download
    blobs = storage / "blobs" / "sha256"
    assert (sorted(os.listdir(blobs)) if blobs.is_dir() else []) == []
    assert store.list_repositories() == []


class _OnTrigger:
    """A progress callback that runs ``action`` once, on the trigger layer's last event (``finished``) or its first,
    and records how far each big layer had come by then."""

    def __init__(self, kit: Kit, action: Callable[[], None], *, finished: bool = True) -> None:
        self._key = kit.trigger.digest.short()
        self._big = {blob.digest.short() for blob in kit.big}
        self._action = action
        self._finished = finished
        self._done: dict[str, int] = {}
        self.big_done: dict[str, int] | None = None  # at the trigger

    def __call__(self, event: ProgressEvent) -> None:
        if event.key in self._big:
            self._done[event.key] = event.done
        if event.key == self._key and event.finished == self._finished and self.big_done is None:
            self.big_done = {key: self._done.get(key, 0) for key in self._big}
            self._action()


def _ctrl_c() -> None:
    """What a Ctrl-C does: SIGINT, which Python turns into KeyboardInterrupt in the main thread."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def _raise(exc: BaseException) -> Callable[[], None]:
    def action() -> None:
        raise exc

    return action


@pytest.mark.parametrize(
    ("action", "expected"),
    [(_ctrl_c, KeyboardInterrupt), (_raise(KeyboardInterrupt()), KeyboardInterrupt),
     (_raise(RuntimeError("a layer failed")), RuntimeError)],
    ids=["ctrl-c-in-main-thread", "interrupt-in-a-worker", "failure-in-a-worker"],
)
def test_a_stopped_pull_ends_its_stalled_downloads_at_once(kit: Kit, stalled: FaultProxy, tmp_path: Path,
                                                           new_threads: Callable[[], list[str]],
                                                           action: Callable[[], None],
                                                           expected: type[BaseException]) -> None:
    store = LocalStore(tmp_path / "pulled")
    trigger = _OnTrigger(kit, action)
    started = time.monotonic()
    with pytest.raises(expected):
        pull(f"{stalled.host}/{kit.repository}:v1", store=store, plain_http=True, retry=FAST, concurrency=6,
             on_progress=trigger)
    assert time.monotonic() - started < PROMPT_S  # not the STALL_S of the big layers, nor the read timeout
    assert new_threads() == []
    _assert_nothing_left(store)
    assert trigger.big_done is not None
    assert all(0 < done <= STALL_AT for done in trigger.big_done.values())  # both were stalled mid-body


def test_a_failed_layer_ends_the_stalled_downloads_at_once(kit: Kit, stalled: FaultProxy, tmp_path: Path,
                                                           new_threads: Callable[[], list[str]]) -> None:
    stalled.clear()
    for blob in kit.big:
        stalled.stall("GET", rf"/blobs/{blob.digest}$", seconds=STALL_S, after_bytes=STALL_AT, times=None)
    stalled.fail("GET", rf"/blobs/{kit.trigger.digest}$", status=404, times=None)
    store = LocalStore(tmp_path / "pulled")
    started = time.monotonic()
    # three at a time: the config and the big layers first, then the small ones, the trigger last
    with pytest.raises(RegistryError, match=str(kit.trigger.digest)):
        pull(f"{stalled.host}/{kit.repository}:v1", store=store, plain_http=True, retry=FAST, concurrency=3)
    assert time.monotonic() - started < PROMPT_S
    assert new_threads() == []
    _assert_nothing_left(store)


def test_a_second_ctrl_c_leaves_nothing_either(kit: Kit, stalled: FaultProxy, tmp_path: Path,
                                               new_threads: Callable[[], list[str]]) -> None:
    """The second Ctrl-C ends the wait for the workers: one of them, still downloading, finishes after the pull
    has returned, and must drop what it verified rather than hand it to a pull that is gone."""
    left = threading.Event()

    def ctrl_c_twice_then_finish_late() -> None:  # on the trigger's worker, its bytes received, not yet verified
        _ctrl_c()
        time.sleep(0.5)  # the main thread now waits for the workers, this one among them
        _ctrl_c()
        assert left.wait(10)

    store = LocalStore(tmp_path / "pulled")
    with pytest.raises(KeyboardInterrupt):
        pull(f"{stalled.host}/{kit.repository}:v1", store=store, plain_http=True, retry=FAST, concurrency=6,
             on_progress=_OnTrigger(kit, ctrl_c_twice_then_finish_late, finished=False))
    assert new_threads() != []  # the trigger's worker outlived the pull
    left.set()
    deadline = time.monotonic() + PROMPT_S
    while new_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new_threads() == []
    _assert_nothing_left(store)
