"""Option decorators shared by the commands that talk to a registry: kit's network flags (spec ``kitops-modelkit.md``
§5.1, TLS; §9, network flags)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from pymodelkit import settings
from pymodelkit.registry.tls import TlsOptions, check_tls_file, use_tls_options

__all__ = [
    "client_tls_options",
    "network_tls_options",
    "plain_http_setting",
    "tls_options",
    "tls_options_without_client_cert",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# The parameters tls_options takes for itself; the command's function never sees them.
_OWN = ("tls_certs", "client_cert", "client_key")


def tls_options(command: _F) -> _F:
    """Add ``--plain-http``, ``--tls-verify/--no-tls-verify`` (default on) and :func:`client_tls_options`'s
    ``--tls-cert``, ``--cert`` and ``--key`` to ``command``. The function receives ``plain_http`` and ``tls_verify``."""
    return _with_flags(command, client_cert_flags=True)


def tls_options_without_client_cert(command: _F) -> _F:
    """:func:`tls_options` without ``--cert``/``--key``, for a command whose ``--key`` is another key (``sign``,
    ``verify``: cosign's signing and public keys); its client certificate can come from
    ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY``."""
    return _with_flags(command, client_cert_flags=False)


def client_tls_options(command: _F) -> _F:
    """Add ``--tls-cert PATH`` (repeatable), ``--cert PATH`` and ``--key PATH`` to ``command`` (``login``, whose
    ``--plain-http``/``--tls-verify`` are its own). They are handled here: resolved with
    ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY`` (which, when set, replace ``--cert``/``--key``, as kit's do), checked
    (:func:`network_tls_options`), and given to every registry client the command makes
    (``pymodelkit.registry.tls.use_tls_options``); the function never sees them."""
    return _with_client_files(command, client_cert_flags=True)


def _with_flags(command: _F, *, client_cert_flags: bool) -> _F:
    wrapped: Any = _with_client_files(command, client_cert_flags=client_cert_flags)
    for option in reversed([
        click.option("--plain-http", is_flag=True, default=False,
                     help="Use plain HTTP (loopback registries fall back to it without this flag)."),
        click.option("--tls-verify/--no-tls-verify", default=True, show_default=True,
                     help="Verify the registry's TLS certificate."),
    ]):
        wrapped = option(wrapped)
    return cast(_F, wrapped)


def _with_client_files(command: _F, *, client_cert_flags: bool) -> _F:
    options = [
        click.option("--tls-cert", "tls_certs", multiple=True, metavar="PATH",
                     type=click.Path(exists=True, dir_okay=False),
                     help="A PEM file of CA certificates to trust for the registry, besides the system ones "
                          "(repeatable)."),
    ]
    if client_cert_flags:
        options += [
            click.option("--cert", "client_cert", metavar="PATH", type=click.Path(dir_okay=False), default=None,
                         help="Client certificate (PEM) for registries that require one; KITOPS_CLIENT_CERT "
                              "overrides it."),
            click.option("--key", "client_key", metavar="PATH", type=click.Path(dir_okay=False), default=None,
                         help="The client certificate's private key (unencrypted PEM), unless it is in the --cert "
                              "file; KITOPS_CLIENT_KEY overrides it."),
        ]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        tls_certs, client_cert, client_key = (kwargs.pop(name, None) for name in _OWN)
        with use_tls_options(network_tls_options(tls_certs or (), client_cert, client_key)):
            return command(*args, **kwargs)

    wrapped: Any = run
    for option in reversed(options):
        wrapped = option(wrapped)
    return cast(_F, wrapped)


def network_tls_options(tls_certs: tuple[str, ...], cert: str | None, key: str | None) -> TlsOptions:
    """The TLS files of kit's network flags: the ``--tls-cert`` files, and the client certificate of ``--cert`` and
    ``--key``, each replaced by ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY`` when that is set (spec §5.1: "overridden
    by env ... when set"). The files given as flags are checked readable here, the error naming the flag and the
    file; the variables' files when a command makes its first registry client (the error naming the variable), so
    that a variable set for every shell breaks no local command.

    Raises:
        click.UsageError: ``--key`` without a certificate. NotFoundError, ModelKitError: a flag's file cannot be read.
    """
    env_cert, env_key = settings.client_certificate_files()
    if key and not (cert or env_cert):
        raise click.UsageError("--key needs a client certificate: give --cert (or set KITOPS_CLIENT_CERT)")
    ca_files = tuple(check_tls_file(path, what="--tls-cert") for path in tls_certs)
    cert_flag = None if env_cert else cert or None  # overridden by the variable when it is set
    key_flag = None if env_key else key or None
    if cert_flag is None and key_flag is None:
        return TlsOptions(ca_files=ca_files)  # the library reads KITOPS_CLIENT_CERT/_KEY itself, if they are set
    chosen_cert = check_tls_file(cert_flag, what="--cert") if cert_flag else env_cert
    chosen_key = check_tls_file(key_flag, what="--key") if key_flag else env_key
    assert chosen_cert is not None  # a --key alone was refused above
    return TlsOptions(ca_files=ca_files, client_cert=(chosen_cert, chosen_key))


def plain_http_setting(flag: bool) -> bool | None:
    """The library's ``plain_http`` for the ``--plain-http`` flag: ``True``, or ``None`` (https, loopback falls back
    to http, ``PYMODELKIT_PLAIN_HTTP`` applies)."""
    return True if flag else None
