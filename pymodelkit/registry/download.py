"""One blob from a registry into the local store: streamed through ``LocalStore.ingest()``, resumed with ``Range``,
verified by size and digest at commit (spec ``oci-distribution.md`` §2, traps 15 and 16; STYLE rule 10).

After a connection drop or a temporary error the download continues with ``Range: bytes=<held>-``; a ``200`` instead
of ``206`` means the registry sends everything again, so the partial ingest is dropped and the blob starts over.
Memory stays at one read buffer. Retries reset whenever bytes arrive, so a slow, flaky link still finishes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pymodelkit.errors import DigestMismatchError, RegistryError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.responses import redact_url, transport_failure
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.store import LocalStore
from pymodelkit.store.ingest import BlobWriter

__all__ = ["download_blob"]

logger = logging.getLogger(__name__)

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


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
    if store.has_blob(descriptor.digest):
        return False
    subject = f"blob {descriptor.digest} from {client.registry}/{repository}"
    held = _Held(store.ingest())
    attempt = 0
    last_progress = time.monotonic()
    try:
        while True:
            held_before = held.writer.size
            try:
                _fetch_into(client, repository, descriptor, store, held, on_bytes)
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
            sleep(delay)
        held.writer.commit(expected_digest=descriptor.digest, expected_size=descriptor.size, mode=0o600)
    finally:
        held.writer.abort()
    return True


@dataclass
class _Held:
    """The ingest writer of one download; replaced when the registry starts the blob over."""

    writer: BlobWriter


def _fetch_into(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    store: LocalStore,
    held: _Held,
    on_bytes: Callable[[int], None] | None,
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
            held.writer = store.ingest()
            if on_bytes is not None:
                on_bytes(0)
        elif response.status_code == 206:
            _check_content_range(response, offset)
        writer = held.writer
        for chunk in response.iter_bytes():  # as received: a chunk buffer would be lost on a cut
            writer.write(chunk)
            if writer.size > descriptor.size:
                raise DigestMismatchError(
                    f"blob {descriptor.digest} from {client.registry}/{repository} is longer than the "
                    f"{descriptor.size} bytes its descriptor says",
                    expected=descriptor.size, actual=writer.size,
                )
            if on_bytes is not None:
                on_bytes(writer.size)
    finally:
        response.close()
    if held.writer.size < descriptor.size:
        raise RegistryError(
            f"blob {descriptor.digest}: the body ended at byte {held.writer.size} of {descriptor.size}",
            method="GET", url=redact_url(response.request.url), status=response.status_code, is_temporary=True,
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
