"""Blob downloads into the store against the real registry: verified at commit, resumed with Range after cuts; and
the socket's read-ahead stopped while its reader waits for a buffer."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pymodelkit.errors import DigestMismatchError, RegistryError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.registry import download
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.download import download_blob
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.upload import FileSpan, put_blob, start_upload
from pymodelkit.store import LocalStore
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

FAST = RetryPolicy(attempts=5, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
MEDIA = "application/vnd.kitops.modelkit.model.v1.tar"


def _upload(registry: TestRegistry, tmp_path: Path, data: bytes) -> tuple[str, Descriptor]:
    repo = f"download/t{secrets.token_hex(4)}"
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    digest = Digest.from_bytes(data)
    with RegistryClient(registry.host) as client, path.open("rb") as handle:
        put_blob(client, start_upload(client, repo), digest, FileSpan(handle.fileno(), 0, len(data)))
    return repo, Descriptor(MEDIA, digest, len(data))


def _ingest_leftovers(store: LocalStore) -> list[str]:
    ingest = store.storage / "ingest"
    return sorted(os.listdir(ingest)) if ingest.is_dir() else []


def test_download_stores_the_verified_blob_once(registry: TestRegistry, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    repo, desc = _upload(registry, tmp_path, data)
    store = LocalStore(tmp_path / "home")
    seen: list[int] = []
    with RegistryClient(registry.host) as client:
        assert download_blob(client, repo, desc, store, on_bytes=seen.append) is True
        assert download_blob(client, repo, desc, store) is False
    assert store.blob_path(desc.digest).read_bytes() == data
    assert seen[-1] == len(data)
    assert _ingest_leftovers(store) == []


def test_a_cut_download_resumes_with_range(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    data = os.urandom(2_000_000)
    repo, desc = _upload(registry, tmp_path, data)
    proxy = fault_proxy(registry.url)
    proxy.cut("GET", "/blobs/sha256:", after_bytes=700_000, direction="response", times=2)
    store = LocalStore(tmp_path / "home")
    with RegistryClient(proxy.host, plain_http=True) as client:
        assert download_blob(client, repo, desc, store, retry=FAST) is True
    assert store.blob_path(desc.digest).read_bytes() == data
    gets = [r for r in proxy.requests if r.method == "GET"]
    assert [r.status for r in gets] == [None, None, 206]
    assert proxy.cuts == 2
    assert _ingest_leftovers(store) == []


def test_a_download_that_keeps_failing_ends_in_a_clean_error(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    data = os.urandom(10_000)
    repo, desc = _upload(registry, tmp_path, data)
    proxy = fault_proxy(registry.url)
    proxy.fail("GET", "/blobs/", status=503, times=None)
    store = LocalStore(tmp_path / "home")
    with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(RegistryError) as info:
        download_blob(client, repo, desc, store, retry=FAST)
    assert str(info.value).startswith(f"downloading blob {desc.digest} from {proxy.host}/{repo} failed after 5 "
                                      "attempts: ")
    assert (info.value.status, info.value.code) == (503, "UNAVAILABLE")
    assert not store.has_blob(desc.digest)
    assert _ingest_leftovers(store) == []


def test_bytes_not_matching_the_digest_are_not_stored(registry: TestRegistry, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    repo, desc = _upload(registry, tmp_path, data)
    store = LocalStore(tmp_path / "home")
    shorter = Descriptor(MEDIA, desc.digest, len(data) - 1)
    with RegistryClient(registry.host) as client, pytest.raises(DigestMismatchError, match="is longer than the"):
        download_blob(client, repo, shorter, store, retry=FAST)
    assert not store.has_blob(desc.digest)
    assert _ingest_leftovers(store) == []


def test_a_missing_blob_is_a_404_naming_the_digest(registry: TestRegistry, tmp_path: Path) -> None:
    digest = Digest.from_bytes(b"never uploaded")
    store = LocalStore(tmp_path / "home")
    with RegistryClient(registry.host) as client, pytest.raises(RegistryError) as info:
        download_blob(client, "download/none", Descriptor(MEDIA, digest, 14), store, retry=FAST)
    assert str(info.value).startswith(
        f"downloading blob {digest} from {registry.host}/download/none failed: blob {digest} in "
        f"{registry.host}/download/none not found (registry answered 404 BLOB_UNKNOWN: blob unknown to registry)"
    )
    assert info.value.status == 404
    assert _ingest_leftovers(store) == []


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_a_digest_other_than_sha256_is_refused_before_any_request(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy], algorithm: str
) -> None:
    digest = Digest.parse(f"{algorithm}:" + "ab" * (48 if algorithm == "sha384" else 64))
    proxy = fault_proxy(registry.url)
    store = LocalStore(tmp_path / "home")
    with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(StoreError) as info:
        download_blob(client, "download/other", Descriptor(MEDIA, digest, 10), store, retry=FAST)
    assert str(info.value) == f"blob {digest}: the local store holds sha256 blobs only"
    assert proxy.requests == []
    assert _ingest_leftovers(store) == []


def test_stopping_the_read_ahead_wakes_its_reader_waiting_for_a_buffer() -> None:
    ours, theirs = socket.socketpair()
    size = download.READ_BUFFER_BYTES
    sent = (download.READ_AHEAD_BUFFERS + 1) * size
    sender = threading.Thread(target=_send_until_shut, args=(theirs, os.urandom(sent)), daemon=True)
    sender.start()
    request = httpx.Request("GET", "http://registry.invalid/v2/r/blobs/sha256:00", extensions={"timeout": {"read": 5}})
    with ours, theirs:
        reader = download._ReadAhead(download._SocketReader(ours, request), 2 * sent)
        pieces = iter(reader)
        held = [next(pieces) for _ in range(download.READ_AHEAD_BUFFERS)]  # every buffer out, none given back
        assert [len(piece.view) for piece in held] == [size] * download.READ_AHEAD_BUFFERS
        closer = threading.Thread(target=reader.close, daemon=True)
        closer.start()
        closer.join(5)
        assert not closer.is_alive()
        assert [t.name for t in threading.enumerate() if t.name == "pymodelkit-download"] == []
    sender.join(5)


def _send_until_shut(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the reader shut the connection down
        sock.sendall(data)
