"""A pull of a ModelKit with many layers holds O(concurrency) open files, not one per blob: it succeeds with the
process's file limit far below the layer count, and a layer that turns out corrupt or missing after the others were
verified leaves none of them in the store and nothing in its ingest area."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pymodelkit.errors import DigestMismatchError, RegistryError
from pymodelkit.oci import Descriptor, Manifest
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import parse_reference
from pymodelkit.progress import ProgressEvent
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.transfer import TOTAL_PROGRESS_KEY, pull
from pymodelkit.store import LocalStore
from pymodelkit.store.ingest import DIRECT_MIN_BYTES
from tests.support.faultproxy import FaultProxy
from tests.support.rawkits import push_raw_layers
from tests.support.registry import TestRegistry

resource = pytest.importorskip("resource")  # POSIX only
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")

LAYERS = 300
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
CONCURRENCY = 5
FILE_LIMIT_MARGIN = 64  # open files allowed above what the process holds before the pull: far below LAYERS


@dataclass(frozen=True)
class ManyLayers:
    """A ModelKit in the registry: one large layer (written with direct I/O where the file system allows) first,
    then ``LAYERS`` small ones, all distinct."""

    reference: str  # on the registry itself
    repository: str
    manifest: Manifest

    @property
    def blobs(self) -> list[Descriptor]:
        return [self.manifest.config, *(self.manifest.layers or ())]


@pytest.fixture(scope="module")
def many_layers(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> ManyLayers:
    """Build and push the ModelKit once for the module (the push is most of the cost)."""
    source = LocalStore(tmp_path_factory.mktemp("many-layers-source"))
    payloads = [os.urandom(DIRECT_MIN_BYTES + 12345)] + [os.urandom(64) + i.to_bytes(4, "big") for i in range(LAYERS)]
    reference, repository, manifest = push_raw_layers(registry.host, source, payloads, name="many/layers",
                                                       concurrency=CONCURRENCY)
    return ManyLayers(reference, repository, manifest)


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def file_limit() -> Iterator[Callable[[int], None]]:
    """``lower(soft)``: set the soft RLIMIT_NOFILE for the rest of the test; the old limits come back after it."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)

    def lower(soft: int) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))

    try:
        yield lower
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def _store_files(store: LocalStore) -> tuple[list[str], list[str]]:
    blobs = store.storage / "blobs" / "sha256"
    ingest = store.storage / "ingest"
    return (sorted(os.listdir(blobs)) if blobs.is_dir() else [], sorted(os.listdir(ingest)) if ingest.is_dir() else [])


def test_pull_of_many_layers_holds_few_files(many_layers: ManyLayers, tmp_path: Path,
                                             file_limit: Callable[[int], None]) -> None:
    store = LocalStore(tmp_path / "pulled")
    baseline = _open_files()
    peak = [baseline]
    lock = threading.Lock()

    def sample(event: ProgressEvent) -> None:  # on the pull's worker threads, as each blob goes
        count = _open_files()
        with lock:
            peak[0] = max(peak[0], count)

    soft = baseline + FILE_LIMIT_MARGIN
    assert soft < LAYERS  # one open file per layer could not work
    file_limit(soft)
    result = pull(many_layers.reference, store=store, plain_http=True, retry=FAST, concurrency=CONCURRENCY,
                  on_progress=sample)
    file_limit(resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # the checks below may open what they like

    assert sorted(result.fetched, key=str) == sorted((d.digest for d in many_layers.blobs), key=str)
    for blob in many_layers.blobs:
        path = store.blob_path(blob.digest)
        assert path.stat().st_size == blob.size
        assert Digest.from_bytes(path.read_bytes()) == blob.digest
    assert store.read_manifest(parse_reference(many_layers.reference)[0])[1] == many_layers.manifest
    blobs, ingest = _store_files(store)
    assert len(blobs) == len(many_layers.blobs) + 1  # and the manifest
    assert ingest == []
    assert peak[0] - baseline <= 3 * CONCURRENCY + 10  # per download: its ingest file and its connection


@pytest.mark.parametrize("fault", ["corrupt", "missing"])
def test_a_bad_last_layer_leaves_nothing_of_the_pull(many_layers: ManyLayers, tmp_path: Path, fault: str,
                                                     fault_proxy: Callable[..., FaultProxy],
                                                     registry: TestRegistry) -> None:
    proxy = fault_proxy(registry.url)
    bad = (many_layers.manifest.layers or ())[-1]
    if fault == "corrupt":  # the right length, other bytes
        proxy.fail("GET", rf"/blobs/{bad.digest}$", status=200, body=b"\0" * bad.size, times=None)
    else:
        proxy.fail("GET", rf"/blobs/{bad.digest}$", status=404, times=None)
    store = LocalStore(tmp_path / "pulled")
    finished: list[str] = []
    lock = threading.Lock()

    def record(event: ProgressEvent) -> None:
        if event.finished and event.key != TOTAL_PROGRESS_KEY:
            with lock:
                finished.append(event.key)

    expected = DigestMismatchError if fault == "corrupt" else RegistryError
    with pytest.raises(expected, match=str(bad.digest)):
        pull(f"{proxy.host}/{many_layers.repository}:v1", store=store, plain_http=True, retry=FAST,
             concurrency=CONCURRENCY, on_progress=record)
    assert len(finished) >= LAYERS // 2  # these were verified (and parked) before the bad one failed
    blobs, ingest = _store_files(store)
    assert blobs == []
    assert ingest == []
    assert store.list_repositories() == []
