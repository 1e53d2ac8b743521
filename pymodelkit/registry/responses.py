"""Registry answers turned into errors: one ``check_response`` builds every :class:`RegistryError` (spec
``oci-distribution.md`` §1.13).

The OCI error body (``{"errors":[{"code","message","detail"}]}``) is read only up to 64 KiB and parsed only when the
answer says it is JSON. URLs in messages and attributes are redacted: no user info, no signed or secret query values.
Connection failures become a :class:`RegistryError` with ``status=None`` through :func:`transport_failure`.
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
    "MAX_ERROR_BODY_BYTES",
    "TEMPORARY_CODES",
    "check_response",
    "error_from_response",
    "is_temporary",
    "is_temporary_status",
    "parse_retry_after",
    "redact_url",
    "transport_failure",
]

MAX_ERROR_BODY_BYTES = 64 << 10
# OCI/distribution codes that mean "the registry could not do it now; the same request may work later".
TEMPORARY_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE"})
_MAX_TEXT_IN_MESSAGE = 200
_SECRET_QUERY_RE = re.compile(r"(?i)(sig|signature|token|credential|secret|password|key|auth|_state)")


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
    """Tell whether an HTTP status is worth retrying: 408, 429 and every 5xx."""
    return status in (408, 429) or 500 <= status <= 599


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
    reason = _one_line(str(exc)) or type(exc).__name__
    where = f" [{method} {url}]" if request is not None else ""
    return RegistryError(
        f"cannot reach registry {host}: {reason}{where}",
        method=method,
        url=url,
        status=None,
        detail=type(exc).__name__,
        is_temporary=is_temporary_transport_error(exc),
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
    text = _one_line(body.decode("utf-8", "replace"))
    if text:
        if len(text) > _MAX_TEXT_IN_MESSAGE:
            text = text[:_MAX_TEXT_IN_MESSAGE] + "…"
        return f"{status} {text}"
    return f"{status} {response.reason_phrase}".rstrip()


def _one_line(text: str) -> str:
    return " ".join(text.split())
