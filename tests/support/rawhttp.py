"""Plain-httpx registry calls for testing the fixtures themselves (no pymodelkit registry code)."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import httpx

__all__ = ["bearer_token", "digest_of", "http_client", "push_blob", "with_digest"]


def http_client(*, timeout_s: float = 10.0) -> httpx.Client:
    """An httpx client that ignores proxy variables and netrc (loopback test traffic only)."""
    return httpx.Client(trust_env=False, timeout=timeout_s)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def with_digest(location: str, digest: str) -> str:
    """Append ``digest=`` to an upload Location, keeping its query (``_state``) as it is."""
    return f"{location}{'&' if '?' in location else '?'}digest={quote(digest, safe=':')}"


def bearer_token(
    client: httpx.Client, realm: str, service: str, scopes: tuple[str, ...], auth: tuple[str, str] | None
) -> str:
    """GET a token from a Docker token realm, each scope as its own ``scope`` parameter."""
    params = httpx.QueryParams([("service", service), *(("scope", s) for s in scopes)])
    response = client.get(realm, params=params, auth=auth)
    response.raise_for_status()
    body = response.json()
    return str(body.get("access_token") or body["token"])


def push_blob(
    client: httpx.Client, base_url: str, repo: str, data: bytes, headers: dict[str, str] | None = None
) -> str:
    """POST an upload session, PUT ``data`` with ``?digest=``; returns the digest. Raises on an unexpected status."""
    headers = dict(headers or {})
    started = client.post(f"{base_url}/v2/{repo}/blobs/uploads/", headers=headers)
    if started.status_code != 202:
        raise AssertionError(f"POST upload: {started.status_code} {started.text}")
    digest = digest_of(data)
    location = str(httpx.URL(f"{base_url}/").join(started.headers["Location"]))
    finished = client.put(
        with_digest(location, digest),
        content=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    if finished.status_code != 201:
        raise AssertionError(f"PUT upload: {finished.status_code} {finished.text}")
    return digest
