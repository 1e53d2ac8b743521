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

Every file is checked when the client is made, before any request (:func:`check_tls_options`): readable, and usable
as OpenSSL will use it — tried on a bare ``ssl.SSLContext`` (no CA bundle loaded), the verdict memoized per file
version. A file OpenSSL refuses is then looked at with ``cryptography`` to say in one line what is wrong (empty, DER
instead of PEM, a key where a certificate belongs or the reverse, encrypted, not matching), naming the flag, variable
or argument it came from and the file. The contents are never logged.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import httpx
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pymodelkit import settings
from pymodelkit.errors import ModelKitError, NotFoundError

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
    if chosen_key is None and env_cert and not _holds_private_key(chosen_cert):
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
    scope = _SCOPE.get() or TlsOptions()
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
        check_tls_file(name, what=ca_name)
        problem = _ca_problem(name, _stamp(name))
        if problem is not None:
            raise ModelKitError(f"cannot use the {ca_name} file {name}: {problem}", path=name)
    if options.client_cert is not None:
        cert, key = options.client_cert
        check_tls_file(cert, what=cert_name)
        if key is not None:
            check_tls_file(key, what=key_name)
        stamps = (_stamp(cert), _stamp(key) if key is not None else None)
        found = _client_problem(cert, key, stamps)
        if found is not None:
            raise _client_error(cert, key, (cert_name, key_name), found)
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
            problem = _ca_problem(name, _stamp(name)) or _reason(exc)
            raise ModelKitError(f"cannot use the {_LIBRARY_NAMES[0]} file {name}: {problem}", path=name) from None
    if client_cert is not None:
        cert, key = client_cert
        try:
            context.load_cert_chain(cert, key, password=_refuse_password)
        except (OSError, _EncryptedKey) as exc:
            found = _diagnose_client(cert, key) if isinstance(exc, OSError) else ("key", _ENCRYPTED)
            raise _client_error(cert, key, _LIBRARY_NAMES[1:], found or ("pair", _reason(exc))) from None
    return context


# ----- what is wrong with a file: OpenSSL's verdict, cryptography's words ----------------------------------------

_ENCRYPTED = "it is encrypted; give an unencrypted PEM key (as kit needs)"
_NO_KEY = "it holds no private key; give its key file too (--key, KITOPS_CLIENT_KEY)"
_DER_CERT = "it is a DER certificate, not PEM (convert it with: openssl x509 -inform der)"
_DER_KEY = "it is a DER key, not PEM (convert it with: openssl pkey -inform der)"
_MISMATCH = "the key does not match the certificate"


class _EncryptedKey(Exception):
    """Raised by the password callback: the key is encrypted (kit takes unencrypted keys only)."""


def _refuse_password() -> bytes:
    raise _EncryptedKey


@functools.lru_cache(maxsize=64)
def _ca_problem(name: str, stamp: tuple[int, int, int, int, int]) -> str | None:
    """What is wrong with the CA file ``name`` (at version ``stamp``), or None if OpenSSL loads it."""
    del stamp  # part of the cache key only
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=name)
        return None
    except OSError as exc:
        reason = _reason(exc)
    data = _read(name)
    if not data.strip():
        return "it is empty"
    if not _pem_certificates(data):
        if _der_certificate(data):
            return _DER_CERT
        return "it holds a private key but no CA certificate" if _holds_key_block(data) else "no CA certificate in it"
    return f"OpenSSL refuses it ({reason})"


_ClientProblem: TypeAlias = "tuple[str, str]"
"""Which file of a client certificate is wrong (``"cert"``, ``"key"`` or ``"pair"``) and how, in words."""


@functools.lru_cache(maxsize=64)
def _client_problem(
    cert: str, key: str | None, stamps: tuple[tuple[int, int, int, int, int], tuple[int, int, int, int, int] | None]
) -> _ClientProblem | None:
    """What is wrong with the client certificate ``cert`` and its ``key`` (None: in ``cert``), or None if OpenSSL
    loads them."""
    del stamps  # part of the cache key only
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password=_refuse_password)
        return None
    except _EncryptedKey:
        return "key", _ENCRYPTED
    except OSError as exc:
        return _diagnose_client(cert, key) or ("pair", f"OpenSSL refuses them ({_reason(exc)})")


def _diagnose_client(cert: str, key: str | None) -> _ClientProblem | None:
    """Why OpenSSL refused ``cert``/``key``, found with cryptography (None: no reason found)."""
    data = _read(cert)
    if not data.strip():
        return "cert", "it is empty"
    certificates = _pem_certificates(data)
    if not certificates:
        if _der_certificate(data):
            return "cert", _DER_CERT
        if _holds_key_block(data):
            swapped = " (are the certificate and the key swapped?)" if key is not None else ""
            return "cert", f"it holds a private key but no certificate{swapped}"
        return "cert", "no PEM certificate in it"
    key_data = _read(key) if key is not None else data
    if key is not None and not key_data.strip():
        return "key", "it is empty"
    try:
        private_key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:  # a password is needed
        return "key", _ENCRYPTED
    except (ValueError, UnsupportedAlgorithm):
        if _holds_key_block(key_data):
            return "key", "its private key cannot be read (damaged, or of a kind OpenSSL does not take)"
        if key is None:
            return "cert", _NO_KEY
        if _der_key(key_data):
            return "key", _DER_KEY
        if _pem_certificates(key_data):
            return "key", "it holds a certificate but no private key (are the certificate and the key swapped?)"
        return "key", "no PEM private key in it"
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography's deprecation warnings about odd certificates: not ours
        if certificates[0].public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
            return "pair", _MISMATCH
    return None


def _client_error(cert: str, key: str | None, names: tuple[str, str], found: _ClientProblem) -> ModelKitError:
    which, problem = found
    cert_name, key_name = names
    if which == "cert" or (which == "key" and key is None):
        return ModelKitError(f"cannot use the {cert_name} file {cert}: {problem}", path=cert)
    if which == "key":
        return ModelKitError(f"cannot use the {key_name} file {key}: {problem}", path=key)
    if key is None:
        problem = "its key does not match its certificate" if problem == _MISMATCH else problem
        return ModelKitError(f"cannot use the {cert_name} file {cert}: {problem}", path=cert)
    return ModelKitError(f"cannot use the {cert_name} file {cert} with the {key_name} file {key}: {problem}",
                         path=cert)


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            return []


def _der_certificate(data: bytes) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            return False
    return True


def _der_key(data: bytes) -> bool:
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:  # an encrypted DER key is a DER key too
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _holds_key_block(data: bytes) -> bool:
    """Whether PEM ``data`` has a private key block (``PRIVATE KEY``, ``RSA PRIVATE KEY``, ``EC PRIVATE KEY``…)."""
    return b"PRIVATE KEY-----" in data


def _read(name: str) -> bytes:
    try:
        with open(name, "rb") as handle:
            return handle.read(1 << 22)
    except OSError:
        check_tls_file(name, what="TLS")  # raises, naming the file
        raise


def _ca_files(ca_bundle: CaBundle) -> tuple[str, ...]:
    if isinstance(ca_bundle, (str, os.PathLike)):
        return (os.fspath(ca_bundle),)
    return tuple(dict.fromkeys(os.fspath(name) for name in ca_bundle))  # in order, once each


def _client_pair(client_cert: ClientCert) -> tuple[str, str | None]:
    if isinstance(client_cert, (str, os.PathLike)):
        return os.fspath(client_cert), None
    cert, key = client_cert
    return os.fspath(cert), (os.fspath(key) if key is not None and os.fspath(key) else None)


def _holds_private_key(name: str) -> bool:
    """Whether the PEM file ``name`` holds a private key block (a certificate file given without its key file)."""
    try:
        with open(name, "rb") as handle:
            return _holds_key_block(handle.read(1 << 22))
    except OSError:
        return True  # let the caller's check name the unreadable file


def _stamp(name: str) -> tuple[int, int, int, int, int]:
    try:
        stat = os.stat(name)
    except OSError:
        check_tls_file(name, what="TLS")  # raises, naming the file
        raise
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns  # ctime: also a same-size edit


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)  # e.g. "PEM lib", "KEY_VALUES_MISMATCH", "NO_CERTIFICATE_OR_CRL_FOUND"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


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
