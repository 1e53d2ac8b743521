"""Option decorators shared by the commands that talk to a registry (kit's "network flags")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["plain_http_setting", "tls_options"]

_F = TypeVar("_F", bound=Callable[..., Any])


def tls_options(command: _F) -> _F:
    """Add ``--plain-http`` (flag) and ``--tls-verify/--no-tls-verify`` (default on) to ``command``."""
    options = [
        click.option("--plain-http", is_flag=True, default=False,
                     help="Use plain HTTP (loopback registries fall back to it without this flag)."),
        click.option("--tls-verify/--no-tls-verify", default=True, show_default=True,
                     help="Verify the registry's TLS certificate."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def plain_http_setting(flag: bool) -> bool | None:
    """The library's ``plain_http`` for the ``--plain-http`` flag: ``True``, or ``None`` (https, loopback falls back
    to http, ``PYMODELKIT_PLAIN_HTTP`` applies)."""
    return True if flag else None
