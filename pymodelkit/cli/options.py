"""Option decorators shared by the commands that talk to a registry: kit's network flags (spec ``kitops-modelkit.md``
§5.1, TLS; §9, network flags)."""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from pymodelkit import settings
from pymodelkit.errors import ModelKitError
from pymodelkit.oci.reference import host_port_hint
from pymodelkit.registry.tls import TlsOptions, check_tls_options, choose_client_cert, use_tls_options

__all__ = [
    "client_tls_options",
    "network_tls_options",
    "plain_http_setting",
    "tls_options",
    "tls_options_without_client_cert",
]

logger = logging.getLogger(__name__)

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
    """Add ``--tls-cert PATH`` (repeatable, or comma-separated, as kit's), ``--cert PATH`` and ``--key PATH`` to
    ``command`` (``login``, whose ``--plain-http``/``--tls-verify`` are its own). They are handled here: resolved with
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


def _split_tls_certs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """kit's ``--tls-cert`` is a cobra string slice: repeatable, and each value a comma-separated list (read as CSV:
    a path holding a comma is quoted, ``'"a,b.pem"'``). Each path must be an existing file."""
    existing = click.Path(exists=True, dir_okay=False)
    return tuple(str(existing.convert(path, param, ctx)) for value in values for path in next(csv.reader([value]), []))


def _with_client_files(command: _F, *, client_cert_flags: bool) -> _F:
    options = [
        click.option("--tls-cert", "tls_certs", multiple=True, metavar="PATH", callback=_split_tls_certs,
                     help="A PEM file of CA certificates to trust for the registry, besides the system ones "
                          "(repeatable, or comma-separated)."),
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
        # peeked, not taken: the command's own --plain-http/--tls-verify (login's default plain_http is None)
        plain_http = bool(kwargs.get("plain_http")) or _plain_http_environment()
        tls_verify = kwargs.get("tls_verify", True) is not False
        options = network_tls_options(tls_certs or (), client_cert, client_key, plain_http=plain_http,
                                      tls_verify=tls_verify)
        with use_tls_options(options):
            return command(*args, **kwargs)

    wrapped: Any = run
    for option in reversed(options):
        wrapped = option(wrapped)
    return cast(_F, wrapped)


def network_tls_options(
    tls_certs: tuple[str, ...], cert: str | None, key: str | None, *, plain_http: bool = False, tls_verify: bool = True
) -> TlsOptions:
    """The TLS files of kit's network flags: the ``--tls-cert`` files, and the client certificate of ``--cert`` and
    ``--key`` with ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY`` (``pymodelkit.registry.tls.choose_client_cert``,
    kit's rule). The files are checked here (readable and usable), the error naming the flag or variable and the
    file. Without any ``--cert``/``--key`` the variables are left to the registry clients, which check their files
    when the command makes its first one, so that a variable set for every shell breaks no local command.

    With ``plain_http`` no TLS file is used, read or checked: the options say "no client certificate", and a flag
    given gets a warning (kit's "has no effect"). Without ``tls_verify`` the ``--tls-cert`` files are dropped
    likewise (nothing is verified against them).

    Raises:
        click.UsageError: ``--key`` without a certificate. NotFoundError, ModelKitError: a file cannot be read or used.
    """
    if plain_http:
        given = [flag for flag, value in (("--tls-cert", tls_certs), ("--cert", cert), ("--key", key)) if value]
        if given:
            logger.warning("%s %s no effect with --plain-http", ", ".join(given), "has" if len(given) == 1 else "have")
        return TlsOptions(environment=False)
    if tls_certs and not tls_verify:
        logger.warning("--tls-cert has no effect with --no-tls-verify")
        tls_certs = ()
    names = ("--tls-cert", "client certificate", "client key")
    if not cert and not key:
        return check_tls_options(TlsOptions(ca_files=tuple(dict.fromkeys(tls_certs)), names=names))
    choice = choose_client_cert(cert, key)
    if choice.unpaired_key is not None:
        raise click.UsageError(f"{choice.unpaired_key} needs a client certificate: give --cert (or set "
                               "KITOPS_CLIENT_CERT)")
    return check_tls_options(TlsOptions(ca_files=tuple(dict.fromkeys(tls_certs)), client_cert=choice.files,
                                        environment=False, names=(names[0], *choice.names)))


def _plain_http_environment() -> bool:
    """``PYMODELKIT_PLAIN_HTTP``, which makes the library use plain HTTP too; a bad value is the library's to report."""
    try:
        return settings.plain_http()
    except ModelKitError:
        return False


def plain_http_setting(flag: bool) -> bool | None:
    """The library's ``plain_http`` for the ``--plain-http`` flag: ``True``, or ``None`` (https, loopback falls back
    to http, ``PYMODELKIT_PLAIN_HTTP`` applies)."""
    return True if flag else None


def warn_host_port(*references: str | None) -> None:
    """Warn about a reference that reads as a registry ``host:port`` with no repository (a local repository then:
    ``-t 127.0.0.1:5000`` is repository ``127.0.0.1`` with tag ``5000``, valid but rarely meant)."""
    for reference in references:
        hint = host_port_hint(reference) if reference else None
        if hint:
            logger.warning("%s", hint)
