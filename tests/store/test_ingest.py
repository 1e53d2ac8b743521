"""The blob writer: hashing while writing, verified atomic commit, abort, and reading blobs back."""

from __future__ import annotations

import os
import stat

import pytest

from pymodelkit.errors import DigestMismatchError, NotFoundError, StoreError
from pymodelkit.oci import Digest
from pymodelkit.store import LocalStore

HELLO = Digest.parse("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")  # b"hello"


def _blob_names(store: LocalStore) -> list[str]:
    return sorted(p.name for p in (store.storage / "blobs" / "sha256").iterdir())


def _ingest_names(store: LocalStore) -> list[str]:
    return sorted(p.name for p in (store.storage / "ingest").iterdir())


def test_commit_moves_verified_blob_into_blobs(store: LocalStore) -> None:
    with store.ingest() as writer:
        assert writer.path.parent == store.storage / "ingest"
        writer.write(b"he")
        writer.write(memoryview(b"ll"))
        writer.write(bytearray(b"o"))
        assert writer.size == 5
        digest, size = writer.commit(expected_digest=HELLO, expected_size=5)
    assert (digest, size) == (HELLO, 5)
    assert store.blob_path(HELLO) == store.storage / "blobs" / "sha256" / HELLO.hex
    assert store.blob_path(HELLO).read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(store.blob_path(HELLO)).st_mode) == 0o600
    assert not writer.was_present
    assert _ingest_names(store) == []


def test_commit_rejects_wrong_digest(store: LocalStore) -> None:
    wrong = Digest.from_bytes(b"something else")
    with store.ingest() as writer:
        writer.write(b"hello")
        with pytest.raises(DigestMismatchError) as info:
            writer.commit(expected_digest=wrong)
    assert str(info.value) == f"blob digest mismatch: expected {wrong}, got {HELLO}"
    assert info.value.details == {"expected": str(wrong), "actual": str(HELLO)}
    assert _blob_names(store) == []
    assert _ingest_names(store) == []


def test_commit_rejects_wrong_size(store: LocalStore) -> None:
    with store.ingest() as writer:
        writer.write(b"hello")
        with pytest.raises(DigestMismatchError, match=r"^blob size mismatch: expected 6 bytes, wrote 5$"):
            writer.commit(expected_digest=HELLO, expected_size=6)
    assert _blob_names(store) == []
    assert _ingest_names(store) == []


def test_exception_inside_block_aborts(store: LocalStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.ingest() as writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    assert _ingest_names(store) == []
    assert _blob_names(store) == []
    with pytest.raises(StoreError, match=r"^blob writer is closed: it was committed or aborted$"):
        writer.write(b"more")


def test_commit_of_present_blob_keeps_existing_file(store: LocalStore) -> None:
    assert store.write_blob(b"hello") == HELLO
    inode = os.stat(store.blob_path(HELLO)).st_ino
    with store.ingest() as writer:
        writer.write(b"hello")
        assert writer.commit(mode=0o600) == (HELLO, 5)
    assert writer.was_present
    assert os.stat(store.blob_path(HELLO)).st_ino == inode
    assert stat.S_IMODE(os.stat(store.blob_path(HELLO)).st_mode) == 0o444
    assert _ingest_names(store) == []


def test_write_after_commit_is_refused(store: LocalStore) -> None:
    writer = store.ingest()
    writer.write(b"hello")
    writer.commit()
    with pytest.raises(StoreError):
        writer.commit()
    writer.abort()  # after commit: nothing to do, the blob stays
    assert store.has_blob(HELLO)


def test_write_blob_defaults_to_read_only(store: LocalStore) -> None:
    digest = store.write_blob(b"hello")
    assert digest == HELLO
    assert stat.S_IMODE(os.stat(store.blob_path(digest)).st_mode) == 0o444
    assert store.write_blob(b"hello", mode=0o600) == HELLO  # present: left alone
    assert stat.S_IMODE(os.stat(store.blob_path(digest)).st_mode) == 0o444


def test_read_blob_verifies_digest(store: LocalStore) -> None:
    store.write_blob(b"hello")
    assert store.read_blob(HELLO) == b"hello"
    path = store.blob_path(HELLO)
    path.chmod(0o600)
    path.write_bytes(b"jello")
    with pytest.raises(DigestMismatchError) as info:
        store.read_blob(HELLO)
    jello = "sha256:187c9bceeb919e1b3e6d20fa50ecabf7d9d50b5343e8f9a3d912abb13929102e"
    assert str(info.value) == f"blob {HELLO} is corrupt: its content hashes to {jello}"


def test_read_blob_limits_size(store: LocalStore) -> None:
    store.write_blob(b"hello")
    with pytest.raises(StoreError, match=rf"^blob {HELLO} is larger than 4 bytes$"):
        store.read_blob(HELLO, max_bytes=4)


def test_open_blob_missing_is_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFoundError, match=rf"^blob {HELLO} not found in local storage$"):
        store.open_blob(HELLO)
    store.write_blob(b"hello")
    with store.open_blob(HELLO) as handle:
        assert handle.read() == b"hello"
