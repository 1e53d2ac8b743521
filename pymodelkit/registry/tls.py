"""TLS for registry clients: the verifying ``ssl.SSLContext`` is built once per process and configuration, and only
when an https request needs it (spec ``oci-distribution.md`` §1.1, TLS and plain HTTP); the extra CA certificates and
the client certificate of kit's network flags (``kitops-modelkit.md`` §5.1, TLS; §9, network flags).

Building a verifying context loads the CA bundle, 30-35 ms of CPU on this project's benchmark machine: a tenth of a
second per client went there before any byte moved, also for a plain-HTTP registry (an air-gapped network's mirror,
a CI job's local ``registry:2``) that never does TLS. :func:`ssl_context` memoizes the context per (verify, CA
files, client certificate, ``SSL_CERT_FILE``/``SSL_CERT_DIR``, and the files' size and modification time) — an
``ssl.SSLContext`` is safe to share between connections and threads once configured — and :class:`SchemeTransport`
sends ``http://`` requests through a transport that never builds one, building the verifying transport on the first
``https://`` request (a plain-HTTP registry may still redirect a blob to https storage, which is then verified as
usual).

Extra CA files are trusted besides certifi's bundle (or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), as kit's ``--tls-cert``
adds to the system pool. A client certificate is a PEM certificate (chain) and its unencrypted PEM key, or one file
holding both. Which files a client uses (:func:`resolve_tls_options`): its arguments, else those of the enclosing
:func:`use_tls_options` block (how the CLI's network flags reach every client of a command), else, for the client
certificate, ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY``. Every file is checked readable when the client is made,
before any request; the contents are read by OpenSSL only, never logged.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import httpx

from pymodelkit import settings
from pymodelkit.errors import ModelKitError, NotFoundError

__all__ = [
    "CaBundle",
    "ClientCert",
    "SchemeTransport",
    "TlsOptions",
    "check_tls_file",
    "current_tls_options",
    "plain_transport",
    "resolve_tls_options",
    "ssl_context",
    "use_tls_options",
]

logger = logging.getLogger(__name__)

StrPath: TypeAlias = "str | os.PathLike[str]"
CaBundle: TypeAlias = "StrPath | Sequence[StrPath]"
"""One PEM file of extra trusted CA certificates, or several."""
ClientCert: TypeAlias = "StrPath | tuple[StrPath, StrPath | None]"
"""A client certificate: one PEM file holding the certificate and its key, or ``(certificate file, key file)``."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """The TLS files of registry connections: CA certificate files trusted besides the default ones, and the client
    certificate for mutual TLS as ``(certificate file, key file or None when the key is in the certificate file)``."""

    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str | None] | None = None


_SCOPE: contextvars.ContextVar[TlsOptions | None] = contextvars.ContextVar("pymodelkit_tls_options", default=None)


def current_tls_options() -> TlsOptions:
    """The options of the innermost :func:`use_tls_options` block (empty outside any)."""
    return _SCOPE.get() or TlsOptions()


@contextlib.contextmanager
def use_tls_options(options: TlsOptions) -> Iterator[TlsOptions]:
    """Within the ``with`` block, every :class:`~pymodelkit.registry.client.RegistryClient` made without its own
    ``ca_bundle``/``client_cert`` (by ``pull``, ``list_remote``, ``sign``, …) uses these. A context variable: clients
    made in threads started inside the block do not see it (pass ``contextvars.copy_context()`` along)."""
    token = _SCOPE.set(options)
    try:
        yield options
    finally:
        _SCOPE.reset(token)


def check_tls_file(path: StrPath, *, what: str) -> str:
    """Check that ``path`` is a readable file and return it as ``str``; ``what`` names it in the error (``"client
    certificate"``, ``"--tls-cert"``).

    Raises:
        NotFoundError: there is no such file. ModelKitError: it is a directory or cannot be read.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb"):
            pass
    except FileNotFoundError:
        raise NotFoundError(f"cannot read the {what} file {name}: no such file", path=name) from None
    except OSError as exc:
        raise ModelKitError(f"cannot read the {what} file {name}: {exc.strerror or exc}", path=name) from None
    return name


def resolve_tls_options(*, ca_bundle: CaBundle | None = None, client_cert: ClientCert | None = None) -> TlsOptions:
    """The TLS files a client uses: each argument when given, else the enclosing :func:`use_tls_options` block's,
    else (client certificate only) ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY``; every file checked readable.

    Raises:
        NotFoundError, ModelKitError: a file is missing or unreadable (named with its role), or
            ``KITOPS_CLIENT_KEY`` is set without ``KITOPS_CLIENT_CERT``.
    """
    scope = _SCOPE.get() or TlsOptions()
    ca_files = _ca_files(ca_bundle) if ca_bundle is not None else scope.ca_files
    names = ("client certificate", "client key")
    if client_cert is not None:
        pair: tuple[str, str | None] | None = _client_pair(client_cert)
    elif scope.client_cert is not None:
        pair = scope.client_cert
    else:
        pair, names = _environment_client_cert(), ("KITOPS_CLIENT_CERT", "KITOPS_CLIENT_KEY")
    for name in ca_files:
        check_tls_file(name, what="CA certificate")
    if pair is not None:
        check_tls_file(pair[0], what=names[0])
        if pair[1] is not None:
            check_tls_file(pair[1], what=names[1])
        elif not _holds_private_key(pair[0]):
            raise ModelKitError(f"the client certificate {pair[0]} holds no private key: give its key file too "
                                "(--key, KITOPS_CLIENT_KEY)", path=pair[0])
    return TlsOptions(ca_files=ca_files, client_cert=pair)


def ssl_context(
    *,
    tls_verify: bool,
    ca_bundle: CaBundle | None,
    trust_env: bool,
    client_cert: ClientCert | None = None,
) -> ssl.SSLContext:
    """The context for https connections: httpx's (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when
    ``trust_env``), plus the CA files of ``ca_bundle`` when verifying; no verification at all when ``tls_verify`` is
    false; presenting ``client_cert`` when a server asks for one (verifying or not). The same object for the same
    configuration and unchanged files within a process. Do not modify it.

    Raises:
        NotFoundError, ModelKitError: a file is missing or unreadable, not PEM, or a key that is encrypted or does
            not match its certificate; the message names the file.
    """
    environment = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    ca_files = _ca_files(ca_bundle) if tls_verify and ca_bundle is not None else ()
    pair = _client_pair(client_cert) if client_cert is not None else None
    files = (*ca_files, *((pair[0],) if pair else ()), *((pair[1],) if pair and pair[1] else ()))
    stamps = tuple(_stamp(name) for name in files)
    return _cached_context(tls_verify, ca_files, pair, trust_env, environment, stamps)


@functools.lru_cache(maxsize=16)
def _cached_context(
    tls_verify: bool,
    ca_files: tuple[str, ...],
    client_cert: tuple[str, str | None] | None,
    trust_env: bool,
    environment: tuple[str | None, str | None],
    stamps: tuple[tuple[int, int, int, int, int], ...],
) -> ssl.SSLContext:
    del environment, stamps  # part of the cache key only: httpx reads the variables itself, OpenSSL the files
    context = httpx.create_ssl_context(verify=tls_verify, trust_env=trust_env)
    for name in ca_files:
        try:
            context.load_verify_locations(cafile=name)
        except OSError as exc:  # ssl.SSLError is one
            raise ModelKitError(f"cannot use the CA certificate file {name}: {_reason(exc)}", path=name) from None
    if client_cert is not None:
        cert, key = client_cert

        def refuse_password() -> bytes:
            raise ModelKitError(f"cannot use the client key {key or cert}: it is encrypted; give an unencrypted "
                                "PEM key (as kit needs)", path=key or cert)

        try:
            context.load_cert_chain(cert, key, password=refuse_password)
        except OSError as exc:
            paired = f" with the key {key}" if key else ""
            raise ModelKitError(f"cannot use the client certificate {cert}{paired}: {_reason(exc)}",
                                path=cert) from None
    return context


def _ca_files(ca_bundle: CaBundle) -> tuple[str, ...]:
    if isinstance(ca_bundle, (str, os.PathLike)):
        return (os.fspath(ca_bundle),)
    return tuple(dict.fromkeys(os.fspath(name) for name in ca_bundle))  # in order, once each


def _client_pair(client_cert: ClientCert) -> tuple[str, str | None]:
    if isinstance(client_cert, (str, os.PathLike)):
        return os.fspath(client_cert), None
    cert, key = client_cert
    return os.fspath(cert), (os.fspath(key) if key is not None and os.fspath(key) else None)


def _environment_client_cert() -> tuple[str, str | None] | None:
    cert, key = settings.client_certificate_files()
    if cert is None:
        if key is not None:
            raise ModelKitError("KITOPS_CLIENT_KEY is set but KITOPS_CLIENT_CERT is not: a client key needs its "
                                "certificate")
        return None
    if key is None and not _holds_private_key(cert):
        # kit uses the pair only when both are set: a certificate exported for another tool must not break https
        logger.warning("KITOPS_CLIENT_CERT is set without KITOPS_CLIENT_KEY and %s holds no key: not using it", cert)
        return None
    return cert, key


def _holds_private_key(name: str) -> bool:
    """Whether the PEM file ``name`` holds a private key block (a certificate file given without its key file)."""
    try:
        with open(name, "rb") as handle:
            return b"PRIVATE KEY-----" in handle.read(1 << 20)
    except OSError:
        return True  # let the caller's check name the unreadable file


def _stamp(name: str) -> tuple[int, int, int, int, int]:
    try:
        stat = os.stat(name)
    except OSError:
        check_tls_file(name, what="TLS")  # raises, naming the file
        raise
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns  # ctime: also a same-size edit


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)  # e.g. "PEM lib", "KEY_VALUES_MISMATCH", "NO_CERTIFICATE_OR_CRL_FOUND"
    return exc.strerror or str(exc)


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
