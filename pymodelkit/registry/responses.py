"""Registry answers turned into errors: one ``check_response`` builds every :class:`RegistryError` (spec
``oci-distribution.md`` §1.13).

The OCI error body (``{"errors":[{"code","message","detail"}]}``) is read only up to 64 KiB and parsed only when the
answer says it is JSON; an HTML page is never quoted. URLs in messages and attributes are redacted: no user info, no
signed or secret query values. Connection failures become a :class:`RegistryError` with ``status=None`` through
:func:`transport_failure` (a timeout says which wait ran out, and for how long). :func:`not_a_registry` reads a
server's answer to ``GET /v2/``: a web server that is no registry is named as such, not taken for a registry that lacks
the thing asked for.
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import ssl
import time
from collections.abc import Sequence

import httpx

from pymodelkit.errors import AuthError, RegistryError, RegistryNotFoundError

__all__ = [
    "API_VERSION_HEADER",
    "MAX_ERROR_BODY_BYTES",
    "TEMPORARY_CODES",
    "check_response",
    "error_from_response",
    "is_temporary",
    "is_temporary_status",
    "not_a_registry",
    "parse_retry_after",
    "redact_url",
    "transport_failure",
]

MAX_ERROR_BODY_BYTES = 64 << 10
# distribution sets it on every answer (registry/2.0); most registries send it, a plain web server never does.
API_VERSION_HEADER = "Docker-Distribution-API-Version"
# OCI/distribution codes that mean "the registry could not do it now; the same request may work later".
TEMPORARY_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE"})
_MAX_TEXT_IN_MESSAGE = 200
_SECRET_QUERY_RE = re.compile(r"(?i)(sig|signature|token|credential|secret|password|key|auth|_state)")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# 4xx answers to GET /v2/ that a registry may give (auth, proxy auth, timeout, rate limit): no verdict on what it is.
_REGISTRY_4XX = frozenset({401, 403, 407, 408, 429})
_TIMEOUT_WAITS: tuple[tuple[type[httpx.TimeoutException], str, str], ...] = (
    (httpx.ConnectTimeout, "connect", "not connected after"),
    (httpx.ReadTimeout, "read", "nothing received for"),
    (httpx.WriteTimeout, "write", "could not send for"),
    (httpx.PoolTimeout, "pool", "no free connection after"),
)


def check_response(response: httpx.Response, *expected: int, subject: str | None = None) -> httpx.Response:
    """Return ``response`` if its status is one of ``expected``, else raise the error it carries.

    Args:
        response: an answer, streamed or read; an error body is read (at most 64 KiB) and the response closed.
        expected: the statuses that mean success.
        subject: what was asked for, for the message (``"manifest team/model:v1"``); a 404 says it is not found.

    Raises:
        AuthError: 401 or 403.
        RegistryError: any other unexpected status; ``status``, ``code`` and ``oci_message`` tell what it was.
    """
    if response.status_code in expected:
        return response
    raise error_from_response(response, subject=subject)


def error_from_response(response: httpx.Response, *, subject: str | None = None) -> RegistryError:
    """Build the :class:`RegistryError` (or :class:`AuthError`) for an unsuccessful answer."""
    body = _read_limited(response)
    errors, detail = _parse_oci_errors(response, body)
    status = response.status_code
    code, oci_message = errors[0] if errors else ("", "")
    method = response.request.method
    url = redact_url(response.request.url)
    said = _describe(status, errors, body, response)
    what = subject or f"{method} {url}"
    if status == 404 and subject:
        message = f"{subject} not found (registry answered {said})"
    elif status == 401:
        message = f"{what}: authentication required or refused ({said}); check the credentials for this registry"
    elif status == 403:
        message = f"{what}: access denied ({said})"
    else:
        message = f"{what}: registry answered {said}"
    if subject:
        message += f" [{method} {url}]"
    cls: type[RegistryError] = RegistryError
    if status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = RegistryNotFoundError
    return cls(
        message,
        method=method,
        url=url,
        status=status,
        code=code or None,
        oci_message=oci_message or None,
        detail=detail,
        errors=tuple(errors),
        is_temporary=is_temporary(status, [c for c, _ in errors]),
    )


def is_temporary_status(status: int) -> bool:
    """Tell whether an HTTP status is worth retrying: 408, 429 and every 5xx but 501 (Not Implemented: the server does
    not support the request, and will not on the next try)."""
    return status in (408, 429) or (500 <= status <= 599 and status != 501)


def is_temporary(status: int | None, codes: Sequence[str] = ()) -> bool:
    """Tell whether a failure may go away when retried: no answer, a temporary status, or a temporary OCI code."""
    return status is None or is_temporary_status(status) or any(code in TEMPORARY_CODES for code in codes)


def transport_failure(exc: httpx.TransportError, *, registry: str | None = None) -> RegistryError:
    """The :class:`RegistryError` for a request that got no answer (refused, reset, timed out, unknown host, TLS).

    Name-resolution and TLS-verification failures are not temporary; the rest are.
    """
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:
        request = None
    method = request.method if request is not None else None
    url = redact_url(request.url) if request is not None else None
    host = registry or (request.url.netloc.decode("ascii", "replace") if request is not None else "the registry")
    reason = _timeout_reason(exc, request) or _one_line(str(exc)) or type(exc).__name__
    where = f" [{method} {url}]" if request is not None else ""
    return RegistryError(
        f"cannot reach registry {host}: {reason}{where}",
        method=method,
        url=url,
        status=None,
        detail=type(exc).__name__,
        is_temporary=is_temporary_transport_error(exc),
    )


def not_a_registry(registry: str, response: httpx.Response) -> RegistryError | None:
    """The error naming ``registry`` as no OCI registry if ``response``, its server's answer to ``GET /v2/``, says so;
    else ``None`` (a registry, or no verdict).

    A registry answers ``GET /v2/`` with 200 or 401 (a 404 means it does not implement the API, OCI distribution spec
    end-1), and distribution adds :data:`API_VERSION_HEADER` to every answer. Without that header these say "no
    registry": a 4xx other than 401, 403, 407, 408 and 429; a 501; a 2xx that is an HTML page. A 5xx (a registry
    behind a proxy may be down) or a redirect gives no verdict. The body is not read.
    """
    if API_VERSION_HEADER in response.headers:
        return None
    status = response.status_code
    content_type = _content_type(response)
    refused = (400 <= status <= 499 and status not in _REGISTRY_4XX) or status == 501
    if not refused and not (200 <= status <= 299 and content_type in _HTML_TYPES):
        return None
    url = redact_url(response.request.url)
    said = f"{status} {content_type}" if content_type else f"{status} with no content type"
    return RegistryError(
        f"{registry} is not an OCI registry (GET {url} answered {said})",
        method="GET", url=url, status=status, is_temporary=False,
    )


def is_temporary_transport_error(exc: BaseException) -> bool:
    """Tell whether a connection-level failure may go away when retried (not an unknown host or a TLS failure)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return False
        if isinstance(current, socket.gaierror) and current.errno != socket.EAI_AGAIN:
            return False
        text = str(current)
        if "Name or service not known" in text or "nodename nor servname" in text:
            return False
        if "CERTIFICATE_VERIFY_FAILED" in text or "WRONG_VERSION_NUMBER" in text:
            return False
        current = current.__cause__ or current.__context__
    return True


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); ``None`` when absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def redact_url(url: httpx.URL | str) -> str:
    """``url`` without user info and with the values of signed or secret query parameters replaced by ``REDACTED``."""
    parsed = httpx.URL(str(url)) if isinstance(url, str) else url
    host = parsed.host
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port}" if parsed.port is not None else ""
    text = f"{parsed.scheme}://{host}{port}{parsed.raw_path.decode('ascii', 'replace').split('?', 1)[0]}"
    query = parsed.query.decode("ascii", "replace")
    if not query:
        return text
    parts = []
    for item in query.split("&"):
        key, sep, _ = item.partition("=")
        parts.append(f"{key}=REDACTED" if sep and _SECRET_QUERY_RE.search(key) else item)
    return f"{text}?{'&'.join(parts)}"


def _read_limited(response: httpx.Response) -> bytes:
    if response.request.method == "HEAD":
        response.close()
        return b""
    try:
        return response.content[:MAX_ERROR_BODY_BYTES]
    except httpx.ResponseNotRead:
        pass
    body = bytearray()
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= MAX_ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    finally:
        response.close()
    return bytes(body[:MAX_ERROR_BODY_BYTES])


def _parse_oci_errors(response: httpx.Response, body: bytes) -> tuple[list[tuple[str, str]], object]:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not body or not (content_type == "application/json" or content_type.endswith("+json")):
        return [], None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return [], None
    entries = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return [], None
    errors: list[tuple[str, str]] = []
    detail: object = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        errors.append((str(entry.get("code") or ""), _one_line(str(entry.get("message") or ""))))
        if detail is None:
            detail = entry.get("detail")
    return errors, detail


def _describe(status: int, errors: list[tuple[str, str]], body: bytes, response: httpx.Response) -> str:
    if errors:
        said = "; ".join(f"{code}: {message}" if message else code for code, message in errors if code or message)
        return f"{status} {said}" if said else str(status)
    if _content_type(response) in _HTML_TYPES or body.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html")):
        return " ".join(part for part in (str(status), response.reason_phrase, "(an HTML page)") if part)
    text = _one_line(body.decode("utf-8", "replace"))
    if text:
        if len(text) > _MAX_TEXT_IN_MESSAGE:
            text = text[:_MAX_TEXT_IN_MESSAGE] + "…"
        return f"{status} {text}"
    return f"{status} {response.reason_phrase}".rstrip()


def _content_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _timeout_reason(exc: httpx.TransportError, request: httpx.Request | None) -> str | None:
    """``timed out: nothing received for 30 s (…)``: which wait of a timed-out request ran out, and its limit."""
    for cls, key, what in _TIMEOUT_WAITS:
        if isinstance(exc, cls):
            timeouts = request.extensions.get("timeout") if request is not None else None
            seconds = timeouts.get(key) if isinstance(timeouts, dict) else None
            if not isinstance(seconds, (int, float)):
                return None
            return f"timed out: {what} {seconds:g} s (PYMODELKIT_TIMEOUT sets the limit)"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
