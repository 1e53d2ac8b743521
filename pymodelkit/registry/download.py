"""One blob from a registry into the local store: streamed through ``LocalStore.ingest()``, resumed with ``Range``,
verified by size and digest at commit (spec ``oci-distribution.md`` §2, traps 15 and 16; STYLE rule 10).

After a connection drop or a temporary error the download continues with ``Range: bytes=<held>-``; a ``200`` instead
of ``206`` means the registry sends everything again, so the partial ingest is dropped and the blob starts over.
Retries reset whenever bytes arrive, so a slow, flaky link still finishes.

The hot path (issue #6). A body of at least 1 MiB with a ``Content-Length`` over HTTP/1.1 is read straight from the
connection's socket (httpx's documented ``network_stream`` response extension, ``get_extra_info("socket")``) with
``recv_into`` into a few reused 1 MiB buffers on a reader thread. That replaces httpcore/h11's 64 KiB reads, each
copied three times and parsed in Python, which held pulls to a third of ``curl -o``. The first piece still comes
through httpx's iterator, which empties h11's receive buffer, so every byte after it is on the socket; reads stop at
the ``Content-Length``. The connection is not reused afterwards (h11 never saw the end of the body, so httpcore closes
it): one new connection per large blob. Anything else (a proxy's TLS-in-TLS stream, a test transport, a
``Content-Encoding``, chunked framing, a small blob) goes through ``iter_raw``.

For a blob written through the page cache, the calling thread writes each buffer to the ingest file (the writer
does not hash) and hands it to a hashing thread, which hashes it, in order, and gives it back to the reader's pool
(both from ``pymodelkit._buffers``, as pack's stages), while the next one is written and the one after is read: the
SHA-256, the page-cache copy and the socket copy overlap (all three release the GIL on buffers this size). The digest
is compared with the descriptor's before the commit, which fsyncs (the writer started writeback as it went). Memory:
``READ_AHEAD_BUFFERS`` buffers per download.

A blob of at least ``ingest.DIRECT_MIN_BYTES`` (the writer is given the descriptor's size as ``size_hint``) bypasses
the page cache through a direct sink, and the writer hashes it (``hash_when_direct``), over the sink's page-aligned
staging buffers on a thread of the sink's while another writes them with ``O_DIRECT``; a buffer is refilled once
both are done. When its body comes from the socket, there is no reader thread either: the calling thread reads the
socket straight into the staging buffers (``BlobWriter.write_from``), so the kernel's copy out of the socket is the
only one (h11's first piece excepted). Otherwise (a proxy tunnel, chunked framing, a resume with less than 1 MiB
left) the pieces are copied into the staging buffers as above, without the download's hashing thread. Measured on the
2-vCPU VM (1 GiB from a local ``registry:2``): 895-1082 MB/s against 833-933 with the copy into the staging buffer,
and against ``curl -o`` at 1347-1470; the hashing thread is busy about 0.85 s of the 1.0-1.1 s pull, so SHA-256 is
the limit. Memory: ``directio.BUFFER_COUNT`` staging buffers per download.

``fetch_blob(stop=...)`` (a pull whose other blob failed, or that was interrupted) ends the download with
:class:`DownloadStopped` soon after the event is set: before each attempt, at each piece, within
:data:`STOP_POLL_S` of a read from the socket (which waits in slices of that length), and during a retry's pause.
A request still waiting for its response headers, or a body read through httpx, ends at its read timeout.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import queue
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from pymodelkit._buffers import BufferPool, ChunkFanout, PoolClosedError
from pymodelkit.errors import DigestMismatchError, RegistryError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import SHA256, Digest
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.responses import redact_url, transport_failure
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.store import LocalStore
from pymodelkit.store.ingest import BlobWriter

__all__ = ["READ_AHEAD_BUFFERS", "READ_BUFFER_BYTES", "STOP_POLL_S", "DownloadStopped", "download_blob", "fetch_blob"]

logger = logging.getLogger(__name__)

# Chosen by measurement (benchmarks/README.md, "pull"): 1 MiB is past the point where per-read Python costs matter
# (1024 reads per GiB), and small enough that 5 concurrent downloads hold 20 MiB; 4 buffers: one being read, one
# written, one hashed, one spare.
READ_BUFFER_BYTES = 1 << 20
READ_AHEAD_BUFFERS = 4
_HASH_QUEUE = 64  # pieces waiting for the hashing thread (httpx's pieces are 64 KiB: 4 MiB at most)
_DIRECT_MIN_BYTES = 1 << 20  # smaller bodies go through httpx (and keep their connection for the next request)
STOP_POLL_S = 0.2  # a socket read with a stop event waits in slices of this length

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class DownloadStopped(Exception):
    """:func:`fetch_blob` stopped because its ``stop`` event was set (another blob failed, or the pull was
    interrupted); nothing is left in the ingest area."""


def download_blob(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    store: LocalStore,
    *,
    on_bytes: Callable[[int], None] | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Download the blob ``descriptor`` names from ``repository`` into ``store``. Returns ``False`` when the store
    had it already (nothing fetched), ``True`` when it was fetched and committed.

    ``on_bytes(done)`` is called with the bytes held so far (it goes back to 0 when a download starts over).

    Raises:
        RegistryError: not found, or still failing when the retry policy is spent (naming the blob).
        DigestMismatchError: the bytes received differ in size or digest; nothing is stored.
    """
    writer = fetch_blob(client, repository, descriptor, store, on_bytes=on_bytes, retry=retry, sleep=sleep)
    if writer is None:
        return False
    with writer:
        writer.commit(expected_digest=descriptor.digest, expected_size=descriptor.size, mode=0o600)
    return True


def fetch_blob(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    store: LocalStore,
    *,
    on_bytes: Callable[[int], None] | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> BlobWriter | None:
    """Download the blob into the store's ingest area and verify it, without committing it: the caller commits the
    returned writer (``commit(mode=0o600)``) or aborts it. ``None`` when the store has the blob already.

    ``stop``: when it is set, the download ends soon (see the module docstring) with :class:`DownloadStopped`; a
    retry then pauses on it rather than with ``sleep``.

    Raises as :func:`download_blob`, and StoreError for a digest other than sha256 (before any request: the store
    holds sha256 blobs only); on any failure nothing is left in the ingest area.
    """
    if descriptor.digest.algorithm != SHA256:
        raise StoreError(f"blob {descriptor.digest}: the local store holds sha256 blobs only")
    if store.has_blob(descriptor.digest):
        return None
    subject = f"blob {descriptor.digest} from {client.registry}/{repository}"
    held = _Held.start(store, descriptor)
    attempt = 0
    last_progress = time.monotonic()
    try:
        while True:
            _check_stop(stop, subject)
            held_before = held.writer.size
            try:
                _fetch_into(client, repository, descriptor, store, held, on_bytes, stop)
                break
            except RegistryError as exc:
                error = exc
            except httpx.TransportError as exc:
                error = transport_failure(exc, registry=client.registry)
            if held.writer.size > held_before:
                attempt, last_progress = 0, time.monotonic()
            attempt += 1
            delay = retry.delay_s(attempt)
            if not error.is_temporary or not retry.allows(attempt, time.monotonic() - last_progress, delay):
                raise _final_error(subject, error, attempt) from error
            logger.info("%s: %s; resuming at byte %d in %.1fs", subject, error, held.writer.size, delay)
            if stop is None:
                sleep(delay)
            elif stop.wait(delay):
                _check_stop(stop, subject)
        held.check_digest(descriptor)
        held.writer.verify(expected_digest=descriptor.digest, expected_size=descriptor.size)
    except BaseException:
        held.writer.abort()
        raise
    return held.writer


def _check_stop(stop: threading.Event | None, subject: str) -> None:
    if stop is not None and stop.is_set():
        raise DownloadStopped(f"{subject}: stopped")


@dataclass
class _Held:
    """The ingest writer of one download and our hash of what it holds (``None``: the writer hashes, on its direct
    sink's thread); both replaced when the registry starts the blob over."""

    writer: BlobWriter
    hasher: Any | None  # hashlib's hash object (a private type)

    @classmethod
    def start(cls, store: LocalStore, descriptor: Descriptor) -> _Held:
        writer = store.ingest(hashing=False, size_hint=descriptor.size, hash_when_direct=True)
        return cls(writer, None if writer.hashing else hashlib.sha256())

    def check_digest(self, descriptor: Descriptor) -> None:
        """Raise DigestMismatchError (dropping the ingest) when our hash of the bytes is not the descriptor's."""
        if self.hasher is None:
            return  # the writer's commit checks it
        actual = Digest(SHA256, self.hasher.hexdigest())
        if actual != descriptor.digest:
            self.writer.abort()
            raise DigestMismatchError(
                f"blob digest mismatch: expected {descriptor.digest}, got {actual}",
                expected=str(descriptor.digest), actual=str(actual),
            )


def _fetch_into(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    store: LocalStore,
    held: _Held,
    on_bytes: Callable[[int], None] | None,
    stop: threading.Event | None = None,
) -> None:
    """One GET from the held size to the end of the blob."""
    offset = held.writer.size
    if offset >= descriptor.size:  # never ask for a range at or past the end (v2.8 answers a broken 416)
        return
    response = client.open_blob(repository, descriptor.digest, offset=offset)
    try:
        if offset and response.status_code == 200:
            logger.debug("registry ignored Range for %s: starting over", descriptor.digest)
            held.writer.abort()
            fresh = _Held.start(store, descriptor)
            held.writer, held.hasher = fresh.writer, fresh.hasher
            if on_bytes is not None:
                on_bytes(0)
        elif response.status_code == 206:
            _check_content_range(response, offset)
        writer = held.writer
        start = writer.size
        declared = _content_length(response)
        if declared is not None and start + declared > descriptor.size:
            raise _too_long(client, repository, descriptor, start + declared)
        if held.hasher is None and writer.staged and _read_into_writer(response, declared, writer, on_bytes, stop):
            _check_complete(writer, descriptor, response)
            return
        pieces = _body(response, declared, stop)
        # Each piece is hashed, in order, on a thread of its own, which then gives the buffer back; without a hasher
        # of ours (the writer hashes) the buffer goes back as soon as it is written.
        hashing = ChunkFanout([] if held.hasher is None else [held.hasher.update], depth=_HASH_QUEUE,
                              name="pymodelkit-hash")
        try:
            for piece in pieces:
                _check_stop(stop, f"blob {descriptor.digest} from {client.registry}/{repository}")
                writer.write(piece.view)  # every piece as it arrives: on a cut, what was received is kept
                hashing.put(piece.view, piece.release)
                if writer.size > descriptor.size:
                    raise _too_long(client, repository, descriptor, writer.size)
                if on_bytes is not None:
                    on_bytes(writer.size)
        finally:
            try:
                hashing.close()  # the hash now covers every byte the writer holds
            finally:
                pieces.close()
    finally:
        response.close()
    _check_complete(held.writer, descriptor, response)


def _check_complete(writer: BlobWriter, descriptor: Descriptor, response: httpx.Response) -> None:
    if writer.size < descriptor.size:
        raise RegistryError(
            f"blob {descriptor.digest}: the body ended at byte {writer.size} of {descriptor.size}",
            method="GET", url=redact_url(response.request.url), status=response.status_code, is_temporary=True,
        )


def _read_into_writer(
    response: httpx.Response,
    declared: int | None,
    writer: BlobWriter,
    on_bytes: Callable[[int], None] | None,
    stop: threading.Event | None,
) -> bool:
    """Read the body of ``response`` from its socket straight into the direct writer's staging buffers (which hashes
    them on its sink's thread): the one copy is the kernel's. ``False`` (nothing read) when the body cannot be read
    from the socket; else every byte the socket gave is in the writer, also when a read error is raised."""
    sock = _body_socket(response, declared)
    if sock is None or declared is None:
        return False
    raw = response.iter_raw()
    try:
        first = next(raw, b"")  # empties h11's buffer: the rest of the body is unread on the socket
        writer.write(first)
        if on_bytes is not None:
            on_bytes(writer.size)
        remaining = declared - len(first)
        logger.debug("reading %d bytes of GET %s from the socket into the blob writer", remaining,
                     redact_url(response.request.url))
        recv = _SocketReader(sock, response.request, stop)
        while remaining > 0:
            want = min(remaining, READ_BUFFER_BYTES)
            taken = writer.write_from(recv, want)
            remaining -= taken
            if on_bytes is not None:
                on_bytes(writer.size)
            if taken < want:
                break  # the peer closed the connection early: the caller sees a short body
    finally:
        _close_iterator(raw)
    return True


class _SocketReader:
    """``recv_into`` on ``sock`` with the read timeout of ``request``, its errors raised as httpx's. With a ``stop``
    event, each read waits in slices of :data:`STOP_POLL_S` and raises :class:`DownloadStopped` once it is set."""

    def __init__(self, sock: socket.socket, request: httpx.Request, stop: threading.Event | None = None) -> None:
        self._timeout = _read_timeout(request)
        sock.settimeout(self._timeout if stop is None else min(self._timeout or STOP_POLL_S, STOP_POLL_S))
        self.sock = sock
        self._request = request
        self._stop = stop

    def __call__(self, view: memoryview) -> int:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            try:
                return self.sock.recv_into(view)
            except TimeoutError as exc:  # socket.timeout
                if self._stop is None or (deadline is not None and time.monotonic() >= deadline):
                    raise _mapped(httpx.ReadTimeout, exc, self._request) from exc
                if self._stop.is_set():
                    raise DownloadStopped(f"GET {redact_url(self._request.url)}: stopped") from None
            except OSError as exc:
                raise _mapped(httpx.ReadError, exc, self._request) from exc


def _close_iterator(raw: Iterator[bytes]) -> None:
    """Close httpx's body iterator (a generator): httpcore then drops the connection whose body we read."""
    close = getattr(raw, "close", None)
    if close is not None:
        close()


def _body_socket(response: httpx.Response, declared: int | None) -> socket.socket | None:
    """The socket to read the body of ``response`` from (see the module docstring), or ``None``."""
    if not _unencoded(response) or declared is None or declared < _DIRECT_MIN_BYTES:
        return None
    return _direct_socket(response)


def _unencoded(response: httpx.Response) -> bool:
    """Whether the body is the blob's bytes as stored (no ``Content-Encoding``, or ``identity``)."""
    return response.headers.get("content-encoding", "identity").strip().lower() in ("", "identity")


def _body(
    response: httpx.Response, declared: int | None, stop: threading.Event | None = None
) -> Generator[_Piece, None, None]:
    """The body of ``response`` in pieces: from the socket (see the module docstring) when it can be, else from
    httpx's iterator."""
    if not _unencoded(response):  # a proxy compressed it despite Accept-Encoding: identity
        for data in response.iter_bytes():
            yield _Piece(data)
        return
    raw = response.iter_raw()
    sock = _body_socket(response, declared)
    if sock is None or declared is None:
        for data in raw:
            yield _Piece(data)
        return
    first = next(raw, b"")  # empties h11's buffer: the rest of the body is unread on the socket
    if first:
        yield _Piece(first)
    remaining = declared - len(first)
    if remaining <= 0:
        for data in raw:
            yield _Piece(data)
        return
    logger.debug("reading %d bytes of GET %s from the socket", remaining, redact_url(response.request.url))
    reader = _ReadAhead(_SocketReader(sock, response.request, stop), remaining)
    try:
        yield from reader
    finally:
        reader.close()
        _close_iterator(raw)


class _Piece:
    """A piece of the body: ``view`` over its bytes, and :meth:`release` to give a reused buffer back."""

    __slots__ = ("_release", "view")

    def __init__(self, data: bytes | memoryview, release: Callable[[], None] | None = None) -> None:
        self.view = data if isinstance(data, memoryview) else memoryview(data)
        self._release = release

    def release(self) -> None:
        """The bytes are no longer needed (the reader may fill the buffer again). Idempotent."""
        release, self._release = self._release, None
        if release is not None:
            release()


def _direct_socket(response: httpx.Response) -> socket.socket | None:
    """The socket the body of an HTTP/1.1 ``response`` arrives on, when reading it directly yields the body bytes
    (plain TCP, or TLS on the socket itself; not a TLS-in-TLS proxy tunnel); else ``None``."""
    if response.http_version != "HTTP/1.1" or "chunked" in response.headers.get("transfer-encoding", "").lower():
        return None
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    if get_extra_info is None:
        return None
    try:
        sock = get_extra_info("socket")
        ssl_object = get_extra_info("ssl_object")
    except Exception:  # an unknown stream type: use httpx's reads
        return None
    if not isinstance(sock, socket.socket):
        return None
    if ssl_object is not None and not isinstance(sock, ssl.SSLSocket):
        return None
    return sock


class _ReadAhead:
    """Reads ``remaining`` bytes with ``recv`` on a thread into ``READ_AHEAD_BUFFERS`` reused buffers; iterating
    gives them in order, each to be released when done with. A socket error or timeout is raised, as
    ``httpx.ReadError``/``ReadTimeout``, after the bytes that came before it; the end of the stream just ends."""

    def __init__(self, recv: _SocketReader, remaining: int) -> None:
        self._recv = recv
        self._remaining = remaining
        self._pool = BufferPool(max(1, READ_AHEAD_BUFFERS), READ_BUFFER_BYTES)
        self._full: queue.SimpleQueue[tuple[bytearray, int] | BaseException | None] = queue.SimpleQueue()
        self._ended = False  # the consumer took the reader's last item
        self._thread = threading.Thread(target=self._run, name="pymodelkit-download", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[_Piece]:
        while True:
            item = self._full.get()
            if item is None or isinstance(item, BaseException):
                self._ended = True
                if item is None:
                    return
                raise item
            buffer, count = item
            yield _Piece(memoryview(buffer)[:count], functools.partial(self._pool.release, buffer))

    def close(self) -> None:
        """Stop the reader (it may be waiting for a buffer, or on the socket: shut that down) and wait for it."""
        if not self._ended:
            self._pool.close()
            with contextlib.suppress(OSError):  # the plain socket's shutdown, also under TLS: wakes a blocked read
                socket.socket.shutdown(self._recv.sock, socket.SHUT_RDWR)
        self._thread.join()

    def _run(self) -> None:
        try:
            while self._remaining > 0:
                try:
                    buffer = self._pool.acquire()
                except PoolClosedError:
                    break  # the consumer stopped
                want = min(len(buffer), self._remaining)
                count, error = _fill(self._recv, buffer, want)
                if count:
                    self._remaining -= count
                    self._full.put((buffer, count))
                if error is not None:
                    self._full.put(error)
                    return
                if count < want:
                    break  # the peer closed the connection early: the caller sees a short body
        except BaseException as exc:  # handed to the consumer, raised there
            self._full.put(exc)
            return
        self._full.put(None)


def _fill(
    recv: _SocketReader, buffer: bytearray, want: int
) -> tuple[int, httpx.TransportError | DownloadStopped | None]:
    """Read up to ``want`` bytes into ``buffer``; stop early at the end of the stream or at an error (returned)."""
    count = 0
    with memoryview(buffer) as view:
        while count < want:
            try:
                got = recv(view[count:want])
            except (httpx.TransportError, DownloadStopped) as exc:
                exc.__traceback__ = None  # its frames hold a view of the buffer, which the exception would keep alive
                return count, exc
            if not got:
                break
            count += got
    return count, None


def _mapped(kind: type[httpx.TransportError], exc: OSError, request: httpx.Request) -> httpx.TransportError:
    mapped = kind(str(exc) or type(exc).__name__, request=request)
    mapped.__cause__ = exc
    return mapped


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def _read_timeout(request: httpx.Request) -> float | None:
    timeouts = request.extensions.get("timeout")
    value = timeouts.get("read") if isinstance(timeouts, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _too_long(client: RegistryClient, repository: str, descriptor: Descriptor, size: int) -> DigestMismatchError:
    return DigestMismatchError(
        f"blob {descriptor.digest} from {client.registry}/{repository} is longer than the "
        f"{descriptor.size} bytes its descriptor says",
        expected=descriptor.size, actual=size,
    )


def _check_content_range(response: httpx.Response, offset: int) -> None:
    match = _CONTENT_RANGE_RE.match(response.headers.get("content-range", ""))
    if match is None or int(match.group(1)) != offset:
        raise RegistryError(
            f"GET {redact_url(response.request.url)}: 206 with Content-Range "
            f"{response.headers.get('content-range')!r}, expected bytes from {offset}",
            method="GET", url=redact_url(response.request.url), status=206, is_temporary=True,
        )


def _final_error(subject: str, error: RegistryError, attempts: int) -> RegistryError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return type(error)(
        f"downloading {subject} failed{tries}: {error.message}",
        method=error.method, url=error.url, status=error.status, code=error.code, oci_message=error.oci_message,
        detail=error.detail, errors=error.errors, is_temporary=error.is_temporary,
    )
