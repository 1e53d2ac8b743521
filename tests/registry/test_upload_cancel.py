"""A blob upload that fails after its session opened cancels that session (``DELETE`` of the session URL), whatever
failed: a corrupt archive's digest mismatch raised by the body, a source file that ends early, a final registry error
(in a chunked upload, or the one PUT of a small blob from memory).

The session URL (with its ``_state``) is read from a loopback proxy that records every request target on its way to
the real registry (``registry_deletes``); after the failure a ``GET`` of it must answer ``404 BLOB_UPLOAD_UNKNOWN``
(distribution answers an open session with 204, or ``BLOB_UPLOAD_INVALID`` when the state is stale, never UNKNOWN).
The failing requests send no byte of their body before they fail, but for one test: distribution cannot cancel a
session whose cut request left bytes (see that test).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

import pymodelkit
from pymodelkit.errors import DigestMismatchError, RegistryError
from pymodelkit.oci.digest import Digest
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.upload import FileSpan, push_bytes, run_upload
from tests.support.faultproxy import FaultProxy, ProxiedRequest
from tests.support.registry import TestRegistry
from tests.support.trees import flip_blob_byte, unique_repo, write_source_tree

FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: cancel\nmodel:\n  name: m\n  path: model\n"
_UPLOAD_PATH = "/blobs/uploads/"


def _corrupt_archive(tmp_path: Path) -> tuple[Path, Digest]:
    """An OCI archive of a packed ModelKit with one byte of its largest layer flipped, and that layer's digest."""
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(write_source_tree(tmp_path, KITFILE, weights=300_000), tag="cancel:v1", store=store)
    archive = tmp_path / "corrupt.tar"
    pymodelkit.save("cancel:v1", archive, store=store)
    layer = max(packed.manifest.layers or (), key=lambda d: d.size)
    flip_blob_byte(archive, layer.digest.hex, archive)
    return archive, layer.digest


def _session_path(target: str) -> str:
    """``/v2/<repo>/blobs/uploads/<uuid>`` of a request target."""
    return urlsplit(target).path


def _failed_session(requests: list[ProxiedRequest]) -> tuple[str, list[ProxiedRequest]]:
    """The upload session no PUT closed (201): the URL its last PATCH or PUT was sent to (``_state`` kept,
    ``digest`` dropped), and every request to that session."""
    by_session: dict[str, list[ProxiedRequest]] = {}
    for request in requests:
        path = _session_path(request.target)
        if _UPLOAD_PATH in path and not path.endswith(_UPLOAD_PATH):
            by_session.setdefault(path, []).append(request)
    open_ones = [path for path, seen in by_session.items()
                 if not any(r.method == "PUT" and r.status == 201 for r in seen)]
    assert len(open_ones) == 1, by_session
    seen = by_session[open_ones[0]]
    last = [r for r in seen if r.method in ("PATCH", "PUT")][-1]
    parts = urlsplit(last.target)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "digest"])
    return urlunsplit(("", "", parts.path, query, "")), seen


def _assert_cancelled(proxy: FaultProxy, registry: TestRegistry) -> None:
    url, seen = _failed_session(proxy.requests_since(0))
    assert [r.status for r in seen if r.method == "DELETE"] == [204]  # cancelled once, and the registry took it
    answer = httpx.get(f"{registry.url}{url}")
    assert answer.status_code == 404
    assert [e["code"] for e in answer.json()["errors"]] == ["BLOB_UPLOAD_UNKNOWN"]


@pytest.mark.parametrize("chunk_bytes", [16 << 20, 64 << 10], ids=["one-put", "chunked"])
def test_a_corrupt_archive_copied_to_a_registry_cancels_its_upload_session(
    registry_deletes: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path, chunk_bytes: int
) -> None:
    archive, layer = _corrupt_archive(tmp_path)
    proxy = fault_proxy(registry_deletes.url)
    repo = unique_repo("upload", "cancel-corrupt")
    with pytest.raises(DigestMismatchError) as caught:
        pymodelkit.copy(f"oci-archive:{archive}", f"{proxy.host}/{repo}:v1", chunk_bytes=chunk_bytes, concurrency=1)
    assert str(caught.value).startswith(f"oci-archive:{archive}: blob digest mismatch: expected {layer}, got sha256:")
    _assert_cancelled(proxy, registry_deletes)
    assert httpx.head(f"{registry_deletes.url}/v2/{repo}/blobs/{layer}").status_code == 404


def _upload_short_file(proxy: FaultProxy, path: Path, *, size: int, chunk_bytes: int) -> OSError:
    """``run_upload`` of ``path`` as a blob of ``size`` bytes (more than the file holds): the OSError it raised."""
    digest = Digest("sha256", hashlib.sha256(b"\0" * size).hexdigest())
    fd = os.open(path, os.O_RDONLY)
    try:
        with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(OSError) as caught:
            run_upload(client, unique_repo("upload", "cancel-short"), digest, size,
                       span=lambda offset, length: FileSpan(fd, offset, length), chunk_bytes=chunk_bytes, retry=FAST,
                       failed=lambda error, attempts: error)
    finally:
        os.close(fd)
    return caught.value


@pytest.mark.parametrize(("chunk_bytes", "file_bytes", "message"), [
    (1 << 20, 0, "file ended at byte 0 while uploading (expected 10000 bytes)"),
    (4096, 4096, "file ended at byte 4096 while uploading (expected 8192 bytes)"),
], ids=["one-put", "chunked"])
def test_a_source_file_that_ends_early_cancels_the_session_and_its_error_stands(
    registry_deletes: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path, chunk_bytes: int,
    file_bytes: int, message: str,
) -> None:
    (tmp_path / "blob").write_bytes(b"\0" * file_bytes)  # cut short after the plan said 10000 bytes
    proxy = fault_proxy(registry_deletes.url)
    error = _upload_short_file(proxy, tmp_path / "blob", size=10_000, chunk_bytes=chunk_bytes)
    assert str(error) == message
    _assert_cancelled(proxy, registry_deletes)


def test_a_body_cut_after_some_bytes_still_sends_the_cancel(
    registry_deletes: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    # The registry keeps the 6000 bytes that went out, which the session's _state does not count: distribution 2.8
    # answers the DELETE 404 BLOB_UPLOAD_INVALID and, through a bug of its own, keeps the session until it purges old
    # uploads. The DELETE is all a client can do.
    (tmp_path / "blob").write_bytes(b"\0" * 6000)
    proxy = fault_proxy(registry_deletes.url)
    error = _upload_short_file(proxy, tmp_path / "blob", size=10_000, chunk_bytes=1 << 20)
    assert str(error) == "file ended at byte 6000 while uploading (expected 10000 bytes)"
    _, seen = _failed_session(proxy.requests_since(0))
    assert sorted(r.method for r in seen) == ["DELETE", "PUT"]


def test_a_final_registry_error_mid_upload_cancels_the_session(
    registry_deletes: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    data = os.urandom(10_000)
    (tmp_path / "blob").write_bytes(data)
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    proxy = fault_proxy(registry_deletes.url)
    proxy.fail("PATCH", _UPLOAD_PATH, status=400)  # not temporary: the upload gives up at once
    fd = os.open(tmp_path / "blob", os.O_RDONLY)
    try:
        with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(RegistryError) as caught:
            run_upload(client, unique_repo("upload", "cancel-final"), digest, len(data),
                       span=lambda offset, length: FileSpan(fd, offset, length), chunk_bytes=4096, retry=FAST,
                       failed=lambda error, attempts: error)
    finally:
        os.close(fd)
    assert (caught.value.status, caught.value.code) == (400, "UNKNOWN")
    _assert_cancelled(proxy, registry_deletes)


def test_a_small_blob_whose_put_is_refused_cancels_its_session(
    registry_deletes: TestRegistry, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry_deletes.url)
    proxy.fail("PUT", _UPLOAD_PATH, status=400)
    with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(RegistryError) as caught:
        push_bytes(client, unique_repo("upload", "cancel-bytes"), b'{"payload": 1}')
    assert (caught.value.status, caught.value.code) == (400, "UNKNOWN")
    _assert_cancelled(proxy, registry_deletes)
