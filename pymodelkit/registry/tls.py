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
certificate, ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY``. How those variables and kit's ``--cert``/``--key`` combine
is decided in one place, :func:`choose_client_cert`, which the CLI and the pykitops layer call too.

Every file is checked before any request (:func:`check_tls_options`; how, in :mod:`pymodelkit.registry.tls_files`):
readable, and usable as OpenSSL will use it, or one line naming the flag, variable or argument it came from, the file
and what is wrong. A client that can make https requests to its registry checks them when it is made. A plain-HTTP
client (``plain_http=True``) reads no TLS file unless it makes an https request after all (a redirect to https
storage, an https token server): :func:`deferred_tls_options` resolves and checks them then.
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
from dataclasses import dataclass, field
from typing import TypeAlias

import httpx

from pymodelkit import settings
from pymodelkit.errors import ModelKitError
from pymodelkit.registry.tls_files import (
    FileStamp,
    check_ca_file,
    check_client_cert,
    check_tls_file,
    file_stamp,
    holds_private_key,
    load_ca_file,
    load_client_cert,
)

__all__ = [
    "CaBundle",
    "ClientCert",
    "ClientCertChoice",
    "SchemeTransport",
    "TlsOptions",
    "check_tls_file",
    "check_tls_options",
    "choose_client_cert",
    "current_tls_options",
    "deferred_tls_options",
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


_CERT_VARIABLE, _KEY_VARIABLE = "KITOPS_CLIENT_CERT", "KITOPS_CLIENT_KEY"
_LIBRARY_NAMES = ("CA certificate", "client certificate", "client key")


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """The TLS files of registry connections: CA certificate files trusted besides the default ones, and the client
    certificate for mutual TLS as ``(certificate file, key file or None when the key is in the certificate file)``.

    In a :func:`use_tls_options` block, ``environment`` says what a ``client_cert`` of ``None`` means: use
    ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY`` if set (``True``), or no client certificate (``False``: the block's
    maker already applied them with :func:`choose_client_cert`, or uses no TLS at all). ``names`` say where the CA
    files, the certificate and the key came from, for error messages (``"--tls-cert"``, ``"KITOPS_CLIENT_KEY"``, …);
    equality ignores them.
    """

    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str | None] | None = None
    environment: bool = True
    names: tuple[str, str, str] = field(default=_LIBRARY_NAMES, compare=False)


@dataclass(frozen=True, slots=True)
class ClientCertChoice:
    """What :func:`choose_client_cert` decided: ``files``, the client certificate (``None``: none); ``names``, where
    its certificate and key came from (a flag or a variable); ``unpaired_key``, the name of a key given with no
    certificate anywhere (not used: the caller refuses it or warns)."""

    files: tuple[str, str | None] | None
    names: tuple[str, str]
    unpaired_key: str | None = None


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


def choose_client_cert(
    cert: StrPath | None = None, key: StrPath | None = None, *, names: tuple[str, str] = ("--cert", "--key")
) -> ClientCertChoice:
    """kit's client certificate for the ``--cert``/``--key`` values ``cert`` and ``key`` (``names`` name them): the
    one place that decides it. ``KITOPS_CLIENT_CERT`` and ``KITOPS_CLIENT_KEY``, when set and not empty, replace
    ``cert`` and ``key`` each on its own (kit's ``NetworkOptions.Complete``). A certificate without a key file is one
    PEM file holding the key too — except that ``KITOPS_CLIENT_CERT`` with no key anywhere is not used (a warning is
    logged), as kit uses the pair only when both are set: a certificate exported for another tool must not break
    every https request. A key from a flag with no certificate anywhere comes back as ``unpaired_key``.

    Raises:
        ModelKitError: ``KITOPS_CLIENT_KEY`` is set and there is no certificate anywhere.
    """
    env_cert, env_key = settings.client_certificate_files()
    cert_name, key_name = (_CERT_VARIABLE if env_cert else names[0]), (_KEY_VARIABLE if env_key else names[1])
    chosen_cert = env_cert or (os.fspath(cert) if cert is not None and os.fspath(cert) else None)
    chosen_key = env_key or (os.fspath(key) if key is not None and os.fspath(key) else None)
    if chosen_cert is None:
        if env_key is not None:
            raise ModelKitError(f"{_KEY_VARIABLE} is set but {_CERT_VARIABLE} is not: a client key needs its "
                                "certificate")
        return ClientCertChoice(None, (cert_name, key_name), unpaired_key=key_name if chosen_key else None)
    if chosen_key is None and env_cert and not holds_private_key(chosen_cert):
        logger.warning("%s is set without %s and %s holds no key: not using it", _CERT_VARIABLE, _KEY_VARIABLE,
                       chosen_cert)
        return ClientCertChoice(None, (cert_name, key_name))
    return ClientCertChoice((chosen_cert, chosen_key), (cert_name, key_name))


def resolve_tls_options(*, ca_bundle: CaBundle | None = None, client_cert: ClientCert | None = None) -> TlsOptions:
    """The TLS files a client uses: each argument when given, else the enclosing :func:`use_tls_options` block's,
    else (client certificate only, unless the block says otherwise) ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY``
    (:func:`choose_client_cert`); every file checked (:func:`check_tls_options`).

    Raises:
        NotFoundError, ModelKitError: a file is missing, unreadable or unusable (named with where it came from), or
            ``KITOPS_CLIENT_KEY`` is set without ``KITOPS_CLIENT_CERT``.
    """
    return _resolve(_SCOPE.get() or TlsOptions(), ca_bundle, client_cert)


def deferred_tls_options(
    *, ca_bundle: CaBundle | None = None, client_cert: ClientCert | None = None
) -> Callable[[], TlsOptions]:
    """:func:`resolve_tls_options`, put off until it is first needed: the returned function resolves and checks the
    files on its first call and returns the same options on every later one (thread-safe; after a failure the next
    call tries again). The enclosing :func:`use_tls_options` block is taken now, so the function may be called from
    any thread or after the block. A plain-HTTP client calls it only when it makes an https request, so a TLS file
    it never needs is never read."""
    scope = _SCOPE.get() or TlsOptions()
    lock = threading.Lock()
    resolved: list[TlsOptions] = []

    def options() -> TlsOptions:
        with lock:
            if not resolved:
                resolved.append(_resolve(scope, ca_bundle, client_cert))
            return resolved[0]

    return options


def _resolve(scope: TlsOptions, ca_bundle: CaBundle | None, client_cert: ClientCert | None) -> TlsOptions:
    if ca_bundle is not None:
        ca_files, ca_name = _ca_files(ca_bundle), _LIBRARY_NAMES[0]
    else:
        ca_files, ca_name = scope.ca_files, scope.names[0]
    if client_cert is not None:
        pair: tuple[str, str | None] | None = _client_pair(client_cert)
        names = _LIBRARY_NAMES[1:]
    elif scope.client_cert is not None or not scope.environment:
        pair, names = scope.client_cert, scope.names[1:]
    else:
        choice = choose_client_cert(names=(_LIBRARY_NAMES[1], _LIBRARY_NAMES[2]))
        pair, names = choice.files, choice.names
    return check_tls_options(TlsOptions(ca_files=ca_files, client_cert=pair, names=(ca_name, names[0], names[1])))


def check_tls_options(options: TlsOptions) -> TlsOptions:
    """Check every file of ``options`` readable and usable as OpenSSL will use it (CA files: at least one PEM
    certificate; the client certificate: a PEM certificate and its unencrypted PEM key, matching), and return
    ``options``. Cheap: a bare ``ssl.SSLContext`` per file version, no CA bundle.

    Raises:
        NotFoundError, ModelKitError: one line naming the file, where it came from (``options.names``) and what is
            wrong with it, e.g. ``cannot use the --cert file /x/me.pem: no PEM certificate in it``.
    """
    ca_name, cert_name, key_name = options.names
    for name in options.ca_files:
        check_ca_file(name, what=ca_name)
    if options.client_cert is not None:
        check_client_cert(*options.client_cert, names=(cert_name, key_name))
    return options


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
    stamps = tuple(file_stamp(name) for name in files)
    return _cached_context(tls_verify, ca_files, pair, trust_env, environment, stamps)


@functools.lru_cache(maxsize=16)
def _cached_context(
    tls_verify: bool,
    ca_files: tuple[str, ...],
    client_cert: tuple[str, str | None] | None,
    trust_env: bool,
    environment: tuple[str | None, str | None],
    stamps: tuple[FileStamp, ...],
) -> ssl.SSLContext:
    del environment, stamps  # part of the cache key only: httpx reads the variables itself, OpenSSL the files
    context = httpx.create_ssl_context(verify=tls_verify, trust_env=trust_env)
    for name in ca_files:
        load_ca_file(context, name, what=_LIBRARY_NAMES[0])
    if client_cert is not None:
        load_client_cert(context, *client_cert, names=(_LIBRARY_NAMES[1], _LIBRARY_NAMES[2]))
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
