"""One blob into a registry as an upload session: POST (or mount), PATCH chunks, PUT ``?digest=``, status, cancel
(spec ``oci-distribution.md`` §1.2–§1.8, traps 1–8 and 24); and kit's per-registry choice between one PUT and
chunks, and its ``:443`` Location fix-up (``kitops-modelkit.md`` §5.2, trap 20).

Each function is one HTTP exchange, checked with ``check_response``, returning a new :class:`UploadSession`; none
retries. Every upload request is marked ``pymodelkit.no_retry``: the loop that feeds chunks, resumes after a fault
and reports progress lives in ``registry/transfer.py``. Auth is the client's; bodies stream from the file. Two
exceptions: :func:`run_upload` (that loop, for one blob) and :func:`push_bytes` (a small blob from memory: HEAD,
POST, and a PUT retried alone).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from pymodelkit.errors import RegistryError
from pymodelkit.oci.digest import Digest
from pymodelkit.registry.client import RegistryClient, pull_scope, push_scope
from pymodelkit.registry.responses import check_response, error_from_response, redact_url
from pymodelkit.registry.retry import RetryPolicy

__all__ = [
    "LOST_SESSION_CODES",
    "PIECE_BYTES",
    "RANGE_MISMATCH_CODE",
    "FileSpan",
    "UploadFormat",
    "UploadOutcome",
    "UploadSession",
    "UploadStopped",
    "always_monolithic",
    "cancel_upload",
    "fetch_upload_status",
    "finish_upload",
    "mount_blob",
    "put_blob",
    "restore_port_443",
    "run_upload",
    "send_chunk",
    "start_upload",
    "try_mount",
    "upload_format",
]

logger = logging.getLogger(__name__)

PIECE_BYTES = 1 << 20  # one read from the file, one write to the socket
OCTET_STREAM = "application/octet-stream"
# A blob's closing PUT may be answered only once the registry has read the whole blob again (distribution does when it
# lost the session's hash state, e.g. after a restart or on another replica) or copied it in object storage: the wait
# for that answer is allowed to grow with the blob, at this rate, beyond the client's timeout.
COMMIT_BYTES_PER_S = 50_000_000
# The code of the error raised when the registry acknowledges another range than the one sent (v3 uses it for 416).
RANGE_MISMATCH_CODE = "RANGE_INVALID"
# 404 codes meaning the registry no longer knows the session (stale Location, restart, purge, finished).
LOST_SESSION_CODES = frozenset({"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"})
_RANGE_RE = re.compile(r"^\s*(?:bytes=)?(\d+)-(\d+)\s*$")
# Registries whose chunked uploads misbehave, so kit sends them every blob in one PUT (kit's upload-format.go): ghcr.io
# answers 416 to a PATCH over about 4 MiB, Google Artifact/Container Registry require monolithic uploads, ECR answers
# 201 after the first chunk. kit's regexes `.*\.pkg\.dev$`, `.*\.?gcr\.io$`, `.*\.?amazonaws\.com(\.cn)?$` are
# suffix tests: "pkg.dev" itself is not matched, "notgcr.io" is.
_MONOLITHIC_HOST = "ghcr.io"
_MONOLITHIC_SUFFIXES = (".pkg.dev", "gcr.io", "amazonaws.com", "amazonaws.com.cn")

UploadFormat = Literal["monolithic", "chunked"]
UploadOutcome = Literal["uploaded", "mounted", "present"]


@dataclass(frozen=True, slots=True)
class UploadSession:
    """An open upload: the absolute URL from the latest ``Location``, and the bytes the registry acknowledged."""

    repository: str
    location: str
    offset: int = 0


class FileSpan:
    """A request body: ``length`` bytes of the open file ``fd`` from ``offset``, read 1 MiB at a time.

    It can be iterated again (``replayable``: the auth layer resends a request after a 401), each pass from the
    start.
    ``on_sent(position)`` is called with the absolute file position after each piece is handed to the socket.
    """

    replayable = True

    def __init__(
        self, fd: int, offset: int, length: int, *, on_sent: Callable[[int], None] | None = None
    ) -> None:
        if offset < 0 or length < 0:
            raise ValueError("FileSpan offset and length must not be negative")
        self.fd = fd
        self.offset = offset
        self.length = length
        self._on_sent = on_sent

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        position, end = self.offset, self.offset + self.length
        while position < end:
            data = _pread(self.fd, min(PIECE_BYTES, end - position), position)
            if not data:
                raise OSError(f"file ended at byte {position} while uploading (expected {end} bytes)")
            position += len(data)
            yield data
            if self._on_sent is not None:
                self._on_sent(position)


class BufferSpan:
    """A request body over a caller's reused buffer, handed to the socket 1 MiB at a time.

    httpx's responses are reference cycles that keep their request, and so its body, until Python's cycle
    collector runs, which counts objects, not bytes: a fresh ``bytes`` body per chunk would pile up chunks. This
    holds a view of the caller's buffer instead (which the caller reuses), so nothing piles up. ``replayable`` as
    :class:`FileSpan`; the caller must not change the buffer until the request is answered.
    """

    replayable = True

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")

    def __len__(self) -> int:
        return len(self._view)

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._view), PIECE_BYTES):
            yield bytes(self._view[start:start + PIECE_BYTES])


class UploadStopped(Exception):
    """:func:`run_upload` stopped at a chunk boundary because its ``stop`` event was set (another blob failed)."""


def try_mount(
    client: RegistryClient, repository: str, digest: Digest, source: str
) -> tuple[bool, UploadSession | None]:
    """Mount ``digest`` from ``source``: (True, None) when mounted; else (False, the session to upload with, if any).
    A refused mount (no pull access to the source) falls back to a normal upload; a temporary failure raises."""
    try:
        session = mount_blob(client, repository, digest, source)
    except RegistryError as exc:
        if exc.is_temporary:
            raise
        logger.info("mounting blob %s from %s failed (%s): uploading it", digest.short(), source, exc)
        return False, None
    return session is None, session


def run_upload(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    size: int,
    *,
    span: Callable[[int, int], FileSpan],
    chunk_bytes: int,
    retry: RetryPolicy,
    failed: Callable[[RegistryError, int], RegistryError],
    on_offset: Callable[[int], None] | None = None,
    mount_from: str | None = None,
    stop: threading.Event | None = None,
) -> UploadOutcome:
    """Upload one blob as a whole session, retried: mount it from ``mount_from`` first if given; then one PUT or
    PATCHes of ``chunk_bytes`` (as the registry's host calls for), each body ``span(offset, length)``. After a
    dropped connection or a 5xx it asks where the upload stands and continues from the acknowledged offset; when the
    registry lost the session (or appended something else) it checks whether the blob arrived and else starts again.

    ``on_offset(n)`` is told the acknowledged offset (it goes back on a retry). ``failed(error, attempts)`` makes the
    error raised when the error is final or the retries are spent. Returns ``present`` when the registry turned out
    to have the blob already. Raises :class:`UploadStopped` when ``stop`` is set.

    However it fails once a session is open (stopped, retries spent, a final registry error, or anything else the
    body raises: a digest mismatch of a verified source, an ``OSError`` reading the file), the session is cancelled
    first (:func:`cancel_upload`, best effort) and the original error is raised. (A registry that kept bytes of the
    cut request may refuse the cancel: distribution 2.8 answers ``BLOB_UPLOAD_INVALID`` to a session URL whose offset
    is behind, and keeps the session until it purges stale uploads.)
    """
    report = on_offset if on_offset is not None else (lambda _offset: None)
    session: UploadSession | None = None
    need_status = check_present = False
    attempt, last_progress = 0, time.monotonic()
    while True:
        before = session.offset if session is not None else 0
        try:
            if need_status and session is not None:
                session = fetch_upload_status(client, session)
                need_status = False
                check_present = session is None
            if session is None and check_present:
                check_present = False
                if client.has_blob(repository, digest, size):
                    return "present"
            if session is None and mount_from is not None:
                source, mount_from = mount_from, None
                mounted, session = try_mount(client, repository, digest, source)
                if mounted:
                    return "mounted"
            if session is None:
                session = start_upload(client, repository)
            host = urlsplit(session.location).hostname or ""  # kit decides by the upload Location's host
            if session.offset and always_monolithic(host):  # a cut PUT left bytes: these take no PATCH
                cancel_upload(client, session)
                session = None  # (cancelled already, should the POST fail)
                session = start_upload(client, repository)
            report(session.offset)
            if session.offset == 0 and upload_format(host, size, chunk_bytes) == "monolithic":
                put_blob(client, session, digest, span(0, size))
            else:
                while session.offset < size:
                    if stop is not None and stop.is_set():
                        raise UploadStopped  # (cancelled below)
                    session = send_chunk(client, session, span(session.offset, min(chunk_bytes, size - session.offset)))
                    report(session.offset)
                finish_upload(client, session, digest)
            return "uploaded"
        except RegistryError as exc:
            error = exc
        except Exception:
            if session is not None:
                cancel_upload(client, session)
            raise
        if session is not None and session.offset > before:
            attempt, last_progress = 0, time.monotonic()
        attempt += 1
        delay = retry.delay_s(attempt)
        if error.code == RANGE_MISMATCH_CODE:
            if session is not None:
                cancel_upload(client, session)
            session, check_present = None, True
        elif error.status == 404 and error.code in LOST_SESSION_CODES:
            session, check_present = None, True
        elif error.status == 416 or error.is_temporary:
            need_status = session is not None
        else:
            if session is not None:
                cancel_upload(client, session)
            raise failed(error, attempt) from error
        if (stop is not None and stop.is_set()) or not retry.allows(attempt, time.monotonic() - last_progress, delay):
            if session is not None:
                cancel_upload(client, session)
            raise failed(error, attempt) from error
        report(session.offset if session is not None else 0)  # roll back to what is acknowledged
        logger.info("blob %s: %s; retry %d in %.1fs", digest.short(), error, attempt, delay)
        time.sleep(delay)


def always_monolithic(host: str) -> bool:
    """Tell whether blobs for ``host`` (``host[:port]``, any case) always go in one PUT, whatever their size:
    ``ghcr.io``, ``*.pkg.dev``, ``*gcr.io``, ``*amazonaws.com`` and ``*amazonaws.com.cn``, as kit decides."""
    name = _hostname(host).lower()
    return name == _MONOLITHIC_HOST or name.endswith(_MONOLITHIC_SUFFIXES)


def upload_format(host: str, size: int, chunk_bytes: int) -> UploadFormat:
    """How kit uploads a blob of ``size`` bytes to ``host``: ``monolithic`` (one PUT) for the registries of
    :func:`always_monolithic` and for blobs under ``chunk_bytes``, else ``chunked`` (PATCHes of ``chunk_bytes``)."""
    return "monolithic" if always_monolithic(host) or size < chunk_bytes else "chunked"


def restore_port_443(location: str, registry: str) -> str:
    """kit's Location fix-up (oras-go#177): when ``registry`` is named with port 443 and ``location`` is on that host
    with no port, add ``:443``, so the session URL names the registry as the reference does (over https httpx sends
    it the same either way; over plain http it keeps the upload on port 443). Any other ``location`` is returned as
    is."""
    if _port(registry) != "443":
        return location
    parts = urlsplit(location)
    try:
        port = parts.port
    except ValueError:  # not a number: not ours to mend
        return location
    if port is not None or not parts.hostname or parts.hostname != _hostname(registry).lower():
        return location
    return urlunsplit(parts._replace(netloc=parts.netloc.rstrip(":") + ":443"))


def start_upload(client: RegistryClient, repository: str) -> UploadSession:
    """``POST /v2/<repository>/blobs/uploads/`` (no body): open a session. Raises RegistryError/AuthError."""
    response = _send(client, "POST", client.url(f"{repository}/blobs/uploads/"), (push_scope(repository),),
                     headers={"Content-Length": "0"})
    check_response(response, 202, subject=f"repository {client.registry}/{repository}")
    return UploadSession(repository, _location(client, response), 0)


def mount_blob(client: RegistryClient, repository: str, digest: Digest, source: str) -> UploadSession | None:
    """``POST …/uploads/?mount=<digest>&from=<source>``: ``None`` when mounted (201), else the session the registry
    opened instead (202), ready for a normal upload. Needs pull on ``source`` too (both scopes are requested)."""
    url = client.url(f"{repository}/blobs/uploads/") + f"?mount={_quote_digest(digest)}&from={quote(source, safe='/')}"
    response = _send(client, "POST", url, (push_scope(repository), pull_scope(source)),
                     headers={"Content-Length": "0"})
    check_response(response, 201, 202, subject=f"blob {digest} mounted from {source}")
    if response.status_code == 201:
        logger.debug("mounted %s into %s from %s", digest, repository, source)
        return None
    return UploadSession(repository, _location(client, response), 0)


def send_chunk(client: RegistryClient, session: UploadSession, body: FileSpan) -> UploadSession:
    """PATCH the next chunk (``Content-Range: start-end``, inclusive) and check the acknowledged ``Range``.

    ``body.offset`` must equal ``session.offset``. Returns the session at the new Location and offset.

    Raises:
        RegistryError: an error status; or, with ``code`` ``RANGE_INVALID``, a ``Range`` answer whose end is not the
            end just sent (the registry appended something else: abandon the session and restart the blob).
    """
    if body.offset != session.offset or len(body) == 0:
        raise ValueError(f"chunk at {body.offset} ({len(body)} bytes) does not continue the upload at {session.offset}")
    return _patch(client, session, body)


def _patch(client: RegistryClient, session: UploadSession, body: FileSpan | BufferSpan) -> UploadSession:
    """PATCH ``body`` at ``session.offset`` and check the acknowledged ``Range`` (see :func:`send_chunk`)."""
    end = session.offset + len(body) - 1
    response = _send(client, "PATCH", session.location, (push_scope(session.repository),), content=body, headers={
        "Content-Type": OCTET_STREAM,
        "Content-Range": f"{session.offset}-{end}",
        "Content-Length": str(len(body)),
    })
    check_response(response, 202, subject=f"upload to {client.registry}/{session.repository}")
    acknowledged = _range_end(response.headers.get("range"))
    if acknowledged != end:
        raise RegistryError(
            f"upload to {client.registry}/{session.repository}: registry acknowledged bytes up to {acknowledged}, "
            f"expected {end}",
            method="PATCH", url=redact_url(response.request.url), status=response.status_code,
            code=RANGE_MISMATCH_CODE, is_temporary=True,
        )
    return replace(session, location=_location(client, response), offset=end + 1)


def fetch_upload_status(client: RegistryClient, session: UploadSession) -> UploadSession | None:
    """GET the upload URL: the session at the registry's acknowledged offset, or ``None`` if it lost the session.

    An ambiguous ``Range: 0-0`` (no bytes, or one byte) counts as offset 0; an unexpected extra byte is then caught
    by the next chunk's range check.
    """
    response = _send(client, "GET", session.location, (push_scope(session.repository),), headers={}, retry=True)
    if response.status_code == 404:
        error = error_from_response(response)
        if error.code in LOST_SESSION_CODES or error.code is None:
            logger.debug("registry lost the upload session to %s (%s)", session.repository, error.code)
            return None
        raise error
    check_response(response, 204, 200, subject=f"upload to {client.registry}/{session.repository}")
    end = _range_end(response.headers.get("range"))
    offset = 0 if end is None or end == 0 else end + 1
    location = _location(client, response) if response.headers.get("location") else session.location
    return replace(session, location=location, offset=offset)


def finish_upload(
    client: RegistryClient, session: UploadSession, digest: Digest, *, body: FileSpan | None = None
) -> None:
    """PUT ``<location>?digest=<digest>`` to close the session: empty, or carrying the final chunk with its
    ``Content-Range``. Raises RegistryError (e.g. 400 DIGEST_INVALID when the stored bytes do not match)."""
    if body is not None and len(body):
        _put_digest(client, session, digest, body, start=body.offset)
    else:
        _put_digest(client, session, digest, None)


def put_blob(client: RegistryClient, session: UploadSession, digest: Digest, body: FileSpan) -> None:
    """Monolithic upload: PUT the whole blob to a fresh session with ``?digest=``. Raises RegistryError."""
    _put_digest(client, session, digest, body)


def _put_digest(
    client: RegistryClient,
    session: UploadSession,
    digest: Digest,
    body: FileSpan | BufferSpan | bytes | None,
    *,
    start: int | None = None,
    retry: bool = False,
) -> None:
    """PUT ``<location>?digest=`` with ``body`` (the whole blob, or from ``start`` with its ``Content-Range``) or
    with none, expecting 201. ``retry``: the request may be retried alone (a body in memory only)."""
    headers = {"Content-Length": "0"}
    if body is not None:
        headers = {"Content-Type": OCTET_STREAM, "Content-Length": str(len(body))}
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(body) - 1}"
    size = session.offset if body is None else (start or 0) + len(body)
    response = _send(client, "PUT", _with_digest(session.location, digest), (push_scope(session.repository),),
                     content=body, headers=headers, retry=retry, answer_wait_s=size / COMMIT_BYTES_PER_S)
    check_response(response, 201, subject=f"blob {digest} in {client.registry}/{session.repository}")
    response.close()


def cancel_upload(client: RegistryClient, session: UploadSession) -> None:
    """Best-effort DELETE of the session; failures (no ``delete`` scope, already gone) are logged, not raised."""
    try:
        response = _send(client, "DELETE", session.location, (f"repository:{session.repository}:delete",),
                         headers={"Content-Length": "0"})
        response.close()
        logger.debug("cancelled upload to %s: %d", session.repository, response.status_code)
    except Exception as exc:  # best effort: never in place of the error that made the upload stop
        logger.debug("cancelling upload to %s failed: %s", session.repository, exc)


def _send(
    client: RegistryClient,
    method: str,
    url: str,
    scopes: tuple[str, ...],
    *,
    headers: dict[str, str],
    content: FileSpan | BufferSpan | bytes | None = None,
    retry: bool = False,
    answer_wait_s: float | None = None,
) -> httpx.Response:
    return client.send(method, url, scopes=scopes, headers=headers, content=content, retry=retry,
                       answer_wait_s=answer_wait_s)


def _location(client: RegistryClient, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise RegistryError(
            f"{response.request.method} {redact_url(response.request.url)}: {response.status_code} without Location",
            method=response.request.method, url=redact_url(response.request.url), status=response.status_code,
        )
    # Resolve against the URL that answered (RFC 3986); keep the query exactly as sent.
    resolved: str = urljoin(str(response.url), location)
    return restore_port_443(resolved, client.host)


def _hostname(host: str) -> str:
    """``host[:port]`` or ``[v6]:port`` → the host name (IPv6 without brackets)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def _port(host: str) -> str | None:
    if host.startswith("["):
        tail = host[host.find("]") + 1 :] if "]" in host else ""
        return tail[1:] if tail.startswith(":") else None
    return host.split(":", 1)[1] if host.count(":") == 1 else None


def _with_digest(location: str, digest: Digest) -> str:
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}digest={_quote_digest(digest)}"


def _quote_digest(digest: Digest) -> str:
    return quote(str(digest), safe=":")


def _range_end(value: str | None) -> int | None:
    if value is None:
        return None
    match = _RANGE_RE.match(value)
    return int(match.group(2)) if match else None


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows; one file descriptor per blob and thread
    return os.read(fd, size)  # pragma: no cover


# ----- bytes bodies (the streaming pack-and-push: the blob is produced as it is sent, there is no file) -----------


def send_bytes_chunk(
    client: RegistryClient, session: UploadSession, data: bytes | bytearray | memoryview
) -> UploadSession:
    """PATCH ``data`` as the next chunk (as :func:`send_chunk`, the body in memory instead of a file span; sent
    through a :class:`BufferSpan`, so the caller may reuse the buffer once this returns)."""
    if not data:
        raise ValueError("an upload chunk cannot be empty")
    return _patch(client, session, BufferSpan(data))


def finish_bytes_upload(
    client: RegistryClient, session: UploadSession, digest: Digest, data: bytes | bytearray | memoryview = b""
) -> None:
    """PUT ``<location>?digest=`` with the last bytes of the blob (possibly none); on a fresh session (offset 0)
    this is a monolithic upload of ``data``. Raises RegistryError (400 DIGEST_INVALID on a digest mismatch)."""
    _put_digest(client, session, digest, BufferSpan(data), start=session.offset if data and session.offset else None)


def push_bytes(client: RegistryClient, repository: str, data: bytes) -> UploadOutcome:
    """Upload a small blob held in memory (a config, a signature payload or bundle) in one PUT, unless the
    repository has it already: ``present`` then (HEAD, :meth:`RegistryClient.has_blob`), else ``uploaded``.

    The POST is sent once; the PUT, its body in memory, is retried alone on a dropped connection or 408/429/5xx
    (``registry/retry.py``), as the signing modules have always pushed their blobs. A PUT that fails for good
    cancels the session (:func:`cancel_upload`, best effort), unless it got no answer (the registry may still be
    committing it).

    Raises:
        RegistryError, AuthError: the registry refused (e.g. 400 DIGEST_INVALID) or could not be reached.
    """
    digest = Digest.from_bytes(data)
    if client.has_blob(repository, digest, len(data)):
        return "present"
    session: UploadSession | None = None
    try:
        session = start_upload(client, repository)
        _put_digest(client, session, digest, data, retry=True)
    except RegistryError as error:
        # A retried PUT whose first try the registry committed (its answer lost) finds the session gone, and another
        # push may have committed the blob between our HEAD and POST: the blob being there is what counts.
        with contextlib.suppress(RegistryError):  # a failed check must not hide why the upload failed
            if client.has_blob(repository, digest, len(data)):
                return "uploaded"
        if session is not None and error.status is not None:  # no answer: the registry may still be committing
            cancel_upload(client, session)
        raise
    return "uploaded"


__all__ += ["BufferSpan", "finish_bytes_upload", "push_bytes", "send_bytes_chunk"]
