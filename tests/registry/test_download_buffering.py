"""The download hot path (``registry/download.py``): large bodies read from the socket into reused buffers, over plain
HTTP and TLS, through cuts, resets and stalls at arbitrary points, several at once, and the connection pool after.

Every test runs twice: with the blob written through the page cache (the reader thread's buffers, hashed on a
thread of the download's), and with a direct-I/O writer, whose staging buffers the socket is read into and which
hashes them itself (made to apply to these few-MiB blobs by lowering its threshold and buffer size)."""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pymodelkit.errors import DigestMismatchError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.registry import download
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.download import download_blob
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.upload import FileSpan, put_blob, start_upload
from pymodelkit.store import LocalStore, directio, ingest
from tests.support.directio import direct_io_available
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.tlsfront import TestPki, tls_front

FAST = RetryPolicy(attempts=6, base_delay_s=0.01, max_delay_s=0.05, budget_s=20.0)
MEDIA = "application/vnd.kitops.modelkit.model.v1.tar"
MIB = 1 << 20
DIRECT = "from the socket"
ZERO_COPY = "from the socket into the blob writer"


@pytest.fixture(autouse=True, params=["cache", "direct"])
def writer_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the blob is written: through the page cache, or with direct I/O (64 KiB staging buffers, from 1 MiB)."""
    kind: str = request.param
    if kind == "direct":
        if not direct_io_available():
            pytest.skip("O_DIRECT is not available on this file system: the direct-I/O writer is not used here")
        monkeypatch.setattr(ingest, "DIRECT_MIN_BYTES", MIB)
        monkeypatch.setattr(directio, "BUFFER_BYTES", 64 << 10)
    return kind


def _upload(registry: TestRegistry, tmp_path: Path, data: bytes) -> tuple[str, Descriptor]:
    repo = f"buffering/t{secrets.token_hex(4)}"
    path = tmp_path / f"upload-{secrets.token_hex(4)}.bin"
    path.write_bytes(data)
    digest = Digest.from_bytes(data)
    with RegistryClient(registry.host) as client, path.open("rb") as handle:
        put_blob(client, start_upload(client, repo), digest, FileSpan(handle.fileno(), 0, len(data)))
    path.unlink()
    return repo, Descriptor(MEDIA, digest, len(data))


def _leftovers(store: LocalStore) -> list[str]:
    ingest = store.storage / "ingest"
    return sorted(os.listdir(ingest)) if ingest.is_dir() else []


def _direct_reads(caplog: pytest.LogCaptureFixture, text: str = DIRECT) -> int:
    return sum(text in record.getMessage() for record in caplog.records if record.name == download.__name__)


def _zero_copy_reads(caplog: pytest.LogCaptureFixture) -> int:
    return _direct_reads(caplog, ZERO_COPY)


def test_a_large_blob_is_read_from_the_socket_and_verified(
    registry: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture, writer_kind: str
) -> None:
    data = os.urandom(3 * MIB + 12345)  # not a whole number of buffers
    repo, desc = _upload(registry, tmp_path, data)
    store = LocalStore(tmp_path / "home")
    seen: list[int] = []
    caplog.set_level(logging.DEBUG, logger=download.__name__)
    with RegistryClient(registry.host) as client:
        assert download_blob(client, repo, desc, store, on_bytes=seen.append) is True
        client.ping()  # the pool still works after a connection whose body bypassed h11
    assert _direct_reads(caplog) == 1
    assert _zero_copy_reads(caplog) == (writer_kind == "direct")
    assert [t.name for t in threading.enumerate() if t.name.startswith("pymodelkit-")] == []
    assert store.blob_path(desc.digest).read_bytes() == data
    assert seen == sorted(seen) and seen[-1] == len(data)
    assert _leftovers(store) == []


def test_a_small_blob_goes_through_httpx(
    registry: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(download._DIRECT_MIN_BYTES - 1)
    repo, desc = _upload(registry, tmp_path, data)
    store = LocalStore(tmp_path / "home")
    caplog.set_level(logging.DEBUG, logger=download.__name__)
    with RegistryClient(registry.host) as client:
        assert download_blob(client, repo, desc, store) is True
    assert _direct_reads(caplog) == 0
    assert store.blob_path(desc.digest).read_bytes() == data


@pytest.mark.parametrize("abort", [False, True], ids=["fin", "rst"])
def test_cuts_at_random_points_resume_to_the_exact_bytes(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy], abort: bool,
    caplog: pytest.LogCaptureFixture, writer_kind: str,
) -> None:
    data = os.urandom(5 * MIB)
    repo, desc = _upload(registry, tmp_path, data)
    rng = random.Random(f"cuts-{abort}")
    proxy = fault_proxy(registry.url)
    cuts = [rng.randrange(1, 2 * MIB) for _ in range(3)]  # each resumed GET is cut again, from its own start
    for after in cuts:
        proxy.cut("GET", "/blobs/sha256:", after_bytes=after, direction="response", abort=abort)
    store = LocalStore(tmp_path / "home")
    seen: list[int] = []
    caplog.set_level(logging.DEBUG, logger=download.__name__)
    with RegistryClient(proxy.host, plain_http=True) as client:
        assert download_blob(client, repo, desc, store, on_bytes=seen.append, retry=FAST) is True
    assert store.blob_path(desc.digest).read_bytes() == data
    assert proxy.cuts == 3
    socket_reads = _direct_reads(caplog)  # the GETs whose body was big enough to be read from the socket
    assert socket_reads >= 1
    assert _zero_copy_reads(caplog) == (socket_reads if writer_kind == "direct" else 0)
    gets = [r for r in proxy.requests if r.method == "GET"]
    assert gets[-1].status == 206 and len(gets) >= 4
    assert seen == sorted(seen)  # bytes received before each cut were kept
    assert _leftovers(store) == []


def test_a_stalled_body_times_out_and_resumes(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy], caplog: pytest.LogCaptureFixture,
    writer_kind: str,
) -> None:
    data = os.urandom(3 * MIB)
    repo, desc = _upload(registry, tmp_path, data)
    proxy = fault_proxy(registry.url)
    proxy.stall("GET", "/blobs/sha256:", seconds=3.0, after_bytes=int(1.5 * MIB), direction="response")
    store = LocalStore(tmp_path / "home")
    caplog.set_level(logging.DEBUG, logger=download.__name__)
    with RegistryClient(proxy.host, plain_http=True, timeout_s=0.5) as client:
        assert download_blob(client, repo, desc, store, retry=FAST) is True
    assert store.blob_path(desc.digest).read_bytes() == data
    assert _zero_copy_reads(caplog) == (2 if writer_kind == "direct" else 0)  # the stalled GET and the resumed one
    resumed = [r.getMessage() for r in caplog.records if "resuming at byte" in r.getMessage()]
    assert len(resumed) == 1 and "timed out" in resumed[0]
    held = int(resumed[0].split("resuming at byte ")[1].split()[0])
    assert 0 < held <= int(1.5 * MIB)  # what arrived before the stall was kept


def test_a_body_longer_than_the_descriptor_is_refused_before_it_is_read(
    registry: TestRegistry, tmp_path: Path
) -> None:
    data = os.urandom(2 * MIB)
    repo, desc = _upload(registry, tmp_path, data)
    store = LocalStore(tmp_path / "home")
    shorter = Descriptor(MEDIA, desc.digest, len(data) - 1)
    with RegistryClient(registry.host) as client, pytest.raises(DigestMismatchError, match="is longer than the"):
        download_blob(client, repo, shorter, store, retry=FAST)
    assert not store.has_blob(desc.digest)
    assert _leftovers(store) == []


def test_a_wrong_digest_over_the_direct_path_stores_nothing(
    registry: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture, writer_kind: str
) -> None:
    data = os.urandom(2 * MIB)
    repo, desc = _upload(registry, tmp_path, data)
    other = Descriptor(MEDIA, Digest.from_bytes(b"something else"), len(data))
    store = LocalStore(tmp_path / "home")
    # The registry does not have `other`, so fetch the real blob under a descriptor that lies about its digest.
    with RegistryClient(registry.host) as client:
        client_open = client.open_blob

        def open_real(repository: str, digest: Digest, *, offset: int = 0) -> object:
            return client_open(repository, desc.digest, offset=offset)

        client.open_blob = open_real  # type: ignore[assignment, method-assign]
        caplog.set_level(logging.DEBUG, logger=download.__name__)
        with pytest.raises(DigestMismatchError) as info:
            download_blob(client, repo, other, store, retry=FAST)
    assert str(info.value) == f"blob digest mismatch: expected {other.digest}, got {desc.digest}"
    assert _zero_copy_reads(caplog) == (writer_kind == "direct")
    assert not store.has_blob(other.digest) and not store.has_blob(desc.digest)
    assert _leftovers(store) == []


def test_several_large_blobs_at_once_on_one_client(
    registry: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture, writer_kind: str
) -> None:
    blobs = [os.urandom(2 * MIB + n) for n in range(4)]
    uploaded = [_upload(registry, tmp_path, data) for data in blobs]
    store = LocalStore(tmp_path / "home")
    caplog.set_level(logging.DEBUG, logger=download.__name__)
    with RegistryClient(registry.host) as client, ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda item: download_blob(client, item[0], item[1], store), uploaded))
        again = [download_blob(client, repo, desc, LocalStore(tmp_path / "second")) for repo, desc in uploaded]
    assert done == [True] * 4 and again == [True] * 4
    assert _direct_reads(caplog) == 8
    assert _zero_copy_reads(caplog) == (8 if writer_kind == "direct" else 0)
    for data, (_, desc) in zip(blobs, uploaded, strict=True):
        assert store.blob_path(desc.digest).read_bytes() == data


# ----- TLS: the socket is an ssl.SSLSocket -------------------------------------------------------------------------


def test_a_large_blob_over_tls_is_read_from_the_ssl_socket(
    registry: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture, writer_kind: str
) -> None:
    data = os.urandom(4 * MIB + 1)
    repo, desc = _upload(registry, tmp_path, data)
    pki = TestPki(tmp_path / "pki")
    host, port = registry.host.rsplit(":", 1)
    store = LocalStore(tmp_path / "home")
    caplog.set_level(logging.DEBUG, logger=download.__name__)
    with tls_front((host, int(port)), pki.server()) as front, \
            RegistryClient(front, plain_http=False, ca_bundle=str(pki.ca), trust_env=False) as client:
        assert client.base_url == f"https://{front}"
        assert download_blob(client, repo, desc, store, retry=FAST) is True
        client.ping()
    assert _direct_reads(caplog) == 1
    assert _zero_copy_reads(caplog) == (writer_kind == "direct")
    assert store.blob_path(desc.digest).read_bytes() == data
