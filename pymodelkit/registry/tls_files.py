"""Whether a TLS file can serve its role, and if not, what is wrong with it, in one line (spec ``registry.md`` §1,
item 3: every file is checked before the first request, readable and usable).

A CA file must hold at least one PEM certificate; a client certificate must be a PEM certificate (chain) with its
unencrypted PEM key, in the same file or another, and the two must match. Each file is first tried as OpenSSL will use
it, on a bare ``ssl.SSLContext`` (no CA bundle loaded: cheap), the verdict memoized per file version (device, inode,
size, mtime and ctime: a file fixed or rewritten in place is checked again). Only a file OpenSSL refuses is looked at
with ``cryptography`` to say what is wrong: empty, DER instead of PEM, a key where a certificate belongs or the
reverse, encrypted, not matching. Every message names where the file came from (``what``/``names``: a flag, a variable,
an argument) and the file; the contents are never logged nor put in a message.

:mod:`pymodelkit.registry.tls` decides which files a client uses and builds the contexts; it calls these checks (and
re-exports :func:`check_tls_file`). This module imports nothing of it.
"""

from __future__ import annotations

import functools
import os
import ssl
import warnings
from typing import TYPE_CHECKING, TypeAlias

from pymodelkit.errors import ModelKitError, NotFoundError

if TYPE_CHECKING:  # cryptography is imported only to explain a file OpenSSL refused (it costs ~9 MiB of RSS)
    from cryptography import x509

__all__ = [
    "FileStamp",
    "check_ca_file",
    "check_client_cert",
    "check_tls_file",
    "file_stamp",
    "holds_private_key",
    "load_ca_file",
    "load_client_cert",
]

StrPath: TypeAlias = "str | os.PathLike[str]"
FileStamp: TypeAlias = "tuple[int, int, int, int, int]"
"""One version of a file: device, inode, size, mtime and ctime (ns); ctime also changes on a same-size edit."""

_ENCRYPTED = "it is encrypted; give an unencrypted PEM key (as kit needs)"
_NO_KEY = "it holds no private key; give its key file too (--key, KITOPS_CLIENT_KEY)"
_DER_CERT = "it is a DER certificate, not PEM (convert it with: openssl x509 -inform der)"
_DER_KEY = "it is a DER key, not PEM (convert it with: openssl pkey -inform der)"
_MISMATCH = "the key does not match the certificate"

_ClientProblem: TypeAlias = "tuple[str, str]"
"""Which file of a client certificate is wrong (``"cert"``, ``"key"`` or ``"pair"``) and how, in words."""


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


def check_ca_file(name: str, *, what: str) -> str:
    """Check that the file ``name`` is readable and holds a PEM certificate OpenSSL loads as a CA; return ``name``.

    Raises:
        NotFoundError, ModelKitError: one line naming ``what`` (where it came from) and the file, e.g. ``cannot use
            the --tls-cert file /x/ca.der: it is a DER certificate, not PEM (…)``.
    """
    check_tls_file(name, what=what)
    problem = _ca_problem(name, file_stamp(name))
    if problem is not None:
        raise ModelKitError(f"cannot use the {what} file {name}: {problem}", path=name)
    return name


def check_client_cert(cert: str, key: str | None, *, names: tuple[str, str]) -> tuple[str, str | None]:
    """Check that ``cert`` (with ``key``, or holding its key when ``key`` is None) is a client certificate OpenSSL
    loads: readable, PEM, the key unencrypted and matching. ``names`` say where the certificate and the key came from.
    Returns ``(cert, key)``.

    Raises:
        NotFoundError, ModelKitError: one line naming the file that is wrong (or both, when they do not match), e.g.
            ``cannot use the --cert file /x/me.pem: no PEM certificate in it``.
    """
    check_tls_file(cert, what=names[0])
    if key is not None:
        check_tls_file(key, what=names[1])
    found = _client_problem(cert, key, (file_stamp(cert), file_stamp(key) if key is not None else None))
    if found is not None:
        raise _client_error(cert, key, names, found)
    return cert, key


def load_ca_file(context: ssl.SSLContext, name: str, *, what: str) -> None:
    """Add the CA certificates of ``name`` to ``context``.

    Raises:
        ModelKitError: OpenSSL refused the file; one line saying why, as :func:`check_ca_file`.
    """
    try:
        context.load_verify_locations(cafile=name)
    except OSError as exc:  # ssl.SSLError is one
        problem = _ca_problem(name, file_stamp(name)) or _reason(exc)
        raise ModelKitError(f"cannot use the {what} file {name}: {problem}", path=name) from None


def load_client_cert(context: ssl.SSLContext, cert: str, key: str | None, *, names: tuple[str, str]) -> None:
    """Make ``context`` present the client certificate ``cert`` with ``key`` (None: the key is in ``cert``).

    Raises:
        ModelKitError: OpenSSL refused them (an encrypted key included); one line, as :func:`check_client_cert`.
    """
    try:
        context.load_cert_chain(cert, key, password=_refuse_password)
    except (OSError, _EncryptedKey) as exc:
        found = _diagnose_client(cert, key) if isinstance(exc, OSError) else ("key", _ENCRYPTED)
        raise _client_error(cert, key, names, found or ("pair", _reason(exc))) from None


def file_stamp(name: str) -> FileStamp:
    """The version of the file ``name`` (:data:`FileStamp`), for memoizing what is built from it.

    Raises:
        NotFoundError, ModelKitError: it cannot be read (naming the file).
    """
    try:
        stat = os.stat(name)
    except OSError:
        check_tls_file(name, what="TLS")  # raises, naming the file
        raise
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def holds_private_key(name: str) -> bool:
    """Whether the PEM file ``name`` holds a private key block (a certificate file given without its key file);
    ``True`` when it cannot be read, so that the caller's check names the unreadable file."""
    try:
        with open(name, "rb") as handle:
            return _holds_key_block(handle.read(1 << 22))
    except OSError:
        return True


# ----- what is wrong with a file: OpenSSL's verdict, cryptography's words ----------------------------------------


class _EncryptedKey(Exception):
    """Raised by the password callback: the key is encrypted (kit takes unencrypted keys only)."""


def _refuse_password() -> bytes:
    raise _EncryptedKey


@functools.lru_cache(maxsize=64)
def _ca_problem(name: str, stamp: FileStamp) -> str | None:
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


@functools.lru_cache(maxsize=64)
def _client_problem(cert: str, key: str | None, stamps: tuple[FileStamp, FileStamp | None]) -> _ClientProblem | None:
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
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

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
    from cryptography import x509

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            return []


def _der_certificate(data: bytes) -> bool:
    from cryptography import x509

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            return False
    return True


def _der_key(data: bytes) -> bool:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)  # e.g. "PEM lib", "KEY_VALUES_MISMATCH", "NO_CERTIFICATE_OR_CRL_FOUND"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__
