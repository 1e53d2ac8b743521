"""TLS for registry clients: the verifying ``ssl.SSLContext`` is built once per process and configuration, and only
when an https request needs it (spec ``oci-distribution.md`` §1.1, TLS and plain HTTP).

Building a verifying context loads the CA bundle, 30-35 ms of CPU on this project's benchmark machine: a tenth of a
second per client went there before any byte moved, also for a plain-HTTP registry (an air-gapped network's mirror,
a CI job's local ``registry:2``) that never does TLS. :func:`ssl_context` memoizes the context per (verify, CA
bundle, ``SSL_CERT_FILE``/``SSL_CERT_DIR``) — an ``ssl.SSLContext`` is safe to share between connections and
threads once configured — and :class:`SchemeTransport` sends ``http://`` requests through a transport that never
builds one, building the verifying transport on the first ``https://`` request (a plain-HTTP registry may still
redirect a blob to https storage, which is then verified as usual).
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from collections.abc import Callable

import httpx

__all__ = ["SchemeTransport", "plain_transport", "ssl_context"]


def ssl_context(*, tls_verify: bool, ca_bundle: str | None, trust_env: bool) -> ssl.SSLContext:
    """The context for https connections: httpx's (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when
    ``trust_env``), plus ``ca_bundle`` when verifying; no verification at all when ``tls_verify`` is false. The
    same object for the same configuration within a process. Do not modify it."""
    environment = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    return _cached_context(tls_verify, ca_bundle if tls_verify else None, trust_env, environment)


@functools.lru_cache(maxsize=16)
def _cached_context(
    tls_verify: bool, ca_bundle: str | None, trust_env: bool, environment: tuple[str | None, str | None]
) -> ssl.SSLContext:
    del environment  # part of the cache key only: httpx reads the variables itself
    context = httpx.create_ssl_context(verify=tls_verify, trust_env=trust_env)
    if ca_bundle is not None:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class SchemeTransport(httpx.BaseTransport):
    """``http://`` requests through ``plain`` (which must never be asked for TLS); ``https://`` ones through the
    transport ``make_secure`` returns, built on the first https request. Thread-safe."""

    def __init__(self, plain: httpx.BaseTransport, make_secure: Callable[[], httpx.BaseTransport]) -> None:
        self._plain = plain
        self._make_secure = make_secure
        self._secure: httpx.BaseTransport | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def secure_built(self) -> bool:
        """Whether the https transport has been built (a request needed it)."""
        return self._secure is not None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return self._plain.handle_request(request)
        return self._secure_transport().handle_request(request)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            secure, self._secure = self._secure, None
        self._plain.close()
        if secure is not None:
            secure.close()

    def _secure_transport(self) -> httpx.BaseTransport:
        secure = self._secure
        if secure is not None:
            return secure
        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            if self._secure is None:
                self._secure = self._make_secure()
            return self._secure


def plain_transport(limits: httpx.Limits, proxy: str | None = None) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` for plain-HTTP requests only (through ``proxy`` if given): its TLS context is httpx's
    unverified one (cheap: no CA bundle loaded), which :class:`SchemeTransport` never lets it use for a request."""
    return httpx.HTTPTransport(verify=False, limits=limits, proxy=proxy)
