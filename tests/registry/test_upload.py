"""Upload sessions against the real registry: POST, PATCH with the Range check, status, PUT, mount, cancel."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pymodelkit.errors import RegistryError
from pymodelkit.oci.digest import Digest
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.upload import (
    RANGE_MISMATCH_CODE,
    FileSpan,
    cancel_upload,
    fetch_upload_status,
    finish_upload,
    mount_blob,
    push_bytes,
    put_blob,
    send_chunk,
    start_upload,
)
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

DATA = bytes(range(256)) * 40  # 10240 bytes
DATA_DIGEST = Digest("sha256", hashlib.sha256(DATA).hexdigest())


@pytest.fixture
def client(registry: TestRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.host) as c:
        yield c


@pytest.fixture
def blob_fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


def _repo(prefix: str) -> str:
    return f"upload/{prefix}-{secrets.token_hex(4)}"


def test_file_span_streams_exactly_its_range_and_can_be_replayed(blob_fd: int) -> None:
    positions: list[int] = []
    span = FileSpan(blob_fd, 100, 5000, on_sent=positions.append)
    assert len(span) == 5000
    assert b"".join(span) == DATA[100:5100]
    assert b"".join(span) == DATA[100:5100]
    assert positions == [5100, 5100]


def test_file_span_reports_a_file_that_is_too_short(blob_fd: int) -> None:
    with pytest.raises(OSError, match="file ended at byte 10240 while uploading"):
        b"".join(FileSpan(blob_fd, 10000, 500))


def test_start_upload_gives_an_absolute_location_at_offset_zero(client: RegistryClient, registry: TestRegistry) -> None:
    repo = _repo("start")
    session = start_upload(client, repo)
    assert session.repository == repo
    assert session.offset == 0
    assert session.location.startswith(f"{registry.url}/v2/{repo}/blobs/uploads/")
    assert "_state=" in session.location


def test_chunked_upload_follows_locations_and_acknowledged_ranges(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("chunked")
    session = start_upload(client, repo)
    first = send_chunk(client, session, FileSpan(blob_fd, 0, 4096))
    assert first.offset == 4096
    assert first.location != session.location
    second = send_chunk(client, first, FileSpan(blob_fd, 4096, 4096))
    status = fetch_upload_status(client, second)
    assert status is not None and status.offset == 8192
    finish_upload(client, status, DATA_DIGEST, body=FileSpan(blob_fd, 8192, len(DATA) - 8192))
    assert client.head_blob(repo, DATA_DIGEST) == len(DATA)


def test_empty_closing_put_after_the_last_patch(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("close")
    session = send_chunk(client, start_upload(client, repo), FileSpan(blob_fd, 0, len(DATA)))
    finish_upload(client, session, DATA_DIGEST)
    assert client.head_blob(repo, DATA_DIGEST) == len(DATA)


def test_monolithic_put(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("mono")
    put_blob(client, start_upload(client, repo), DATA_DIGEST, FileSpan(blob_fd, 0, len(DATA)))
    assert client.head_blob(repo, DATA_DIGEST) == len(DATA)


def test_a_stale_location_means_the_session_is_lost(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("stale")
    session = start_upload(client, repo)
    send_chunk(client, session, FileSpan(blob_fd, 0, 4096))
    assert fetch_upload_status(client, session) is None  # the POST's Location says offset 0, the registry holds 4096


def test_a_duplicated_chunk_is_caught_by_the_range_check(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("dup")
    session = send_chunk(client, start_upload(client, repo), FileSpan(blob_fd, 0, 4096))
    with pytest.raises(RegistryError) as info:
        # registry:2 ignores Content-Range and appends: it acknowledges 0-8191 where we expect 0-4095.
        send_chunk(client, replace(session, offset=0), FileSpan(blob_fd, 0, 4096))
    assert info.value.code == RANGE_MISMATCH_CODE
    assert "acknowledged bytes up to 8191, expected 4095" in str(info.value)


def test_wrong_digest_is_refused_with_digest_invalid(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("baddigest")
    wrong = Digest.from_bytes(b"something else")
    with pytest.raises(RegistryError) as info:
        put_blob(client, start_upload(client, repo), wrong, FileSpan(blob_fd, 0, len(DATA)))
    assert (info.value.status, info.value.code) == (400, "DIGEST_INVALID")
    assert str(info.value).startswith(f"blob {wrong} in {client.registry}/{repo}: registry answered 400 DIGEST_INVALID")
    assert client.head_blob(repo, wrong) is None


def test_cancel_ends_the_session(client: RegistryClient, blob_fd: int) -> None:
    repo = _repo("cancel")
    session = send_chunk(client, start_upload(client, repo), FileSpan(blob_fd, 0, 4096))
    cancel_upload(client, session)
    assert fetch_upload_status(client, session) is None


def test_mount_from_a_repository_that_has_the_blob(client: RegistryClient, blob_fd: int) -> None:
    source, target = _repo("mount-src"), _repo("mount-dst")
    put_blob(client, start_upload(client, source), DATA_DIGEST, FileSpan(blob_fd, 0, len(DATA)))
    assert client.head_blob(target, DATA_DIGEST) is None
    assert mount_blob(client, target, DATA_DIGEST, source) is None
    assert client.head_blob(target, DATA_DIGEST) == len(DATA)


def test_mount_from_a_repository_without_the_blob_opens_a_session(client: RegistryClient, blob_fd: int) -> None:
    target = _repo("mount-miss")
    session = mount_blob(client, target, DATA_DIGEST, _repo("nowhere"))
    assert session is not None and session.offset == 0
    put_blob(client, session, DATA_DIGEST, FileSpan(blob_fd, 0, len(DATA)))
    assert client.head_blob(target, DATA_DIGEST) == len(DATA)


def test_push_bytes_whose_put_answer_is_lost_counts_the_committed_blob(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy]
) -> None:
    """The registry commits the PUT but its answer is cut (a retried PUT would find the session gone): the blob being
    there makes it "uploaded", not an error."""
    proxy = fault_proxy(registry.url)
    proxy.cut("PUT", r"/blobs/uploads/.*digest=", after_bytes=0, direction="response")
    repository = _repo("lost-answer")
    with RegistryClient(proxy.host, plain_http=True) as client:
        assert push_bytes(client, repository, DATA) == "uploaded"
        assert client.has_blob(repository, DATA_DIGEST, len(DATA))
        assert push_bytes(client, repository, DATA) == "present"
    puts = [r for r in proxy.requests if r.method == "PUT"]
    assert proxy.cuts == 1 and puts[0].status is None  # the answer never came
    assert all(put.status == 404 for put in puts[1:])  # any retry found the session closed


def test_push_bytes_refused_by_the_registry_is_an_error(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy]
) -> None:
    """A PUT the registry refuses (400: not retried) stays an error, since the blob is not there."""
    proxy = fault_proxy(registry.url)
    proxy.fail("PUT", r"/blobs/uploads/.*digest=", status=400)
    repository = _repo("refused")
    with RegistryClient(proxy.host, plain_http=True) as client:
        with pytest.raises(RegistryError) as info:
            push_bytes(client, repository, DATA)
        assert info.value.status == 400
        assert not client.has_blob(repository, DATA_DIGEST, len(DATA))
    assert len([r for r in proxy.requests if r.method == "PUT"]) == 1
