"""``VerifiedBlobSource``: a blob's digest checked across the reads a registry upload makes (one PUT, chunked PATCHes,
replays after a 401, resumes from an acknowledged offset), failing before the blob's last byte is handed over (P16)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Generator

import pytest

from pymodelkit.errors import DigestMismatchError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.ocilayout.local import VerifiedBlobSource

GOOD = bytes(range(256)) * 40  # 10,240 bytes
PIECE = 700


class _Bytes:
    """A blob source serving ``data`` in pieces of ``PIECE`` bytes from any offset; counts the bytes it served."""

    description = "oci-archive:/media/usb/kit.tar"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.served = 0

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        end = len(self.data) if length is None else min(len(self.data), offset + length)
        for start in range(offset, end, PIECE):
            piece = self.data[start:min(end, start + PIECE)]
            self.served += len(piece)
            yield piece


def _descriptor(data: bytes = GOOD) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.parse("sha256:" + hashlib.sha256(data).hexdigest()),
                      len(data))


def _corrupt() -> bytes:
    data = bytearray(GOOD)
    data[5000] ^= 0x01
    return bytes(data)


def _read(source: VerifiedBlobSource, descriptor: Descriptor, offset: int = 0, length: int | None = None,
          *, stop_after: int | None = None) -> bytes:
    """What a consumer receives from one read (it closes the stream after ``stop_after`` pieces, as a cut does)."""
    out = bytearray()
    with contextlib.closing(source.open_blob(descriptor, offset, length)) as chunks:
        for count, chunk in enumerate(chunks, 1):
            out += chunk
            if stop_after is not None and count >= stop_after:
                break
    return bytes(out)


def _mismatch(descriptor: Descriptor) -> str:
    return (f"oci-archive:/media/usb/kit.tar: blob digest mismatch: expected {descriptor.digest}, got sha256:"
            f"{hashlib.sha256(_corrupt()).hexdigest()}")


def test_a_whole_read_passes_good_bytes_and_stops_a_corrupt_blob_before_its_last_piece() -> None:
    descriptor = _descriptor()
    assert _read(VerifiedBlobSource(_Bytes(GOOD)), descriptor) == GOOD
    received = bytearray()
    with pytest.raises(DigestMismatchError) as caught:
        for chunk in VerifiedBlobSource(_Bytes(_corrupt())).open_blob(descriptor):
            received += chunk
    assert str(caught.value) == _mismatch(descriptor)
    assert len(received) == len(GOOD) - len(GOOD) % PIECE  # everything but the last piece


def _chunked_upload(source: VerifiedBlobSource, descriptor: Descriptor, chunk: int) -> bytes:
    """The reads of a chunked upload with a replayed first chunk (an auth retry) and a resumed cut third chunk."""
    sent = bytearray(_read(source, descriptor, 0, chunk))
    sent = bytearray(_read(source, descriptor, 0, chunk))  # the same body again after a 401
    sent += _read(source, descriptor, chunk, chunk)
    partial = _read(source, descriptor, 2 * chunk, chunk, stop_after=1)  # cut after one piece...
    acknowledged = 2 * chunk + len(partial) // 2  # ...the registry kept half of it
    sent = sent[:2 * chunk] + partial[:len(partial) // 2]
    while acknowledged < len(GOOD):
        body = _read(source, descriptor, acknowledged, chunk)
        sent += body
        acknowledged += len(body)
    return bytes(sent)


def test_chunked_reads_with_replays_and_resumes_are_checked_as_one_stream() -> None:
    descriptor = _descriptor()
    source = _Bytes(GOOD)
    assert _chunked_upload(VerifiedBlobSource(source), descriptor, 3000) == GOOD
    with pytest.raises(DigestMismatchError) as caught:
        _chunked_upload(VerifiedBlobSource(_Bytes(_corrupt())), descriptor, 3000)
    assert str(caught.value) == _mismatch(descriptor)


def test_a_read_that_skips_ahead_hashes_the_gap_first() -> None:
    descriptor = _descriptor()
    for data, fails in ((GOOD, False), (_corrupt(), True)):
        source = _Bytes(data)
        verified = VerifiedBlobSource(source)
        _read(verified, descriptor, 0, 1000)
        if fails:
            with pytest.raises(DigestMismatchError):
                _read(verified, descriptor, 8000)
        else:
            assert _read(verified, descriptor, 8000) == GOOD[8000:]
        assert source.served == len(GOOD)  # 0-1000, the gap 1000-8000, 8000-end: each byte read once


def test_a_restart_from_zero_after_a_lost_session_passes_and_a_verified_blob_is_not_hashed_again() -> None:
    descriptor = _descriptor()
    verified = VerifiedBlobSource(_Bytes(GOOD))
    _read(verified, descriptor, 0, 4000)
    assert _read(verified, descriptor) == GOOD
    assert _read(verified, descriptor, 100, 50) == GOOD[100:150]


def test_once_a_blob_failed_every_read_of_it_fails() -> None:
    descriptor = _descriptor()
    verified = VerifiedBlobSource(_Bytes(_corrupt()))
    with pytest.raises(DigestMismatchError):
        _read(verified, descriptor)
    with pytest.raises(DigestMismatchError, match="blob digest mismatch"):
        _read(verified, descriptor, 0, 10)


def test_more_bytes_than_the_descriptor_says_fail() -> None:
    short = _descriptor(GOOD[:5000])
    with pytest.raises(DigestMismatchError, match="got more than 5000 bytes"):
        _read(VerifiedBlobSource(_Bytes(GOOD)), short)
