"""``login`` and ``logout``: one call of ``pymodelkit.registry.login`` each, with kit's flags and messages.

REGISTRY is read as docker reads it (``registry.login.registry_host``): ``http://host:port`` and ``host:port/path``
mean ``host:port``. ``logout`` says ``Not logged in to <host>``, as docker does, when nothing was stored for it.
"""

from __future__ import annotations

import sys

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import client_tls_options
from pymodelkit.errors import AuthError
from pymodelkit.registry.login import login, logout, registry_host

__all__ = ["login_command", "logout_command"]


@click.command("login")
@click.argument("registry")
@click.option("-u", "--username", default="", help="Registry username (none: the password is a token).")
@click.option("-p", "--password", default="", help="Registry password or token (insecure: prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password or token from stdin.")
@click.option("--plain-http", is_flag=True, default=None,
              help="Use plain HTTP (loopback registries fall back to it without this flag).")
@click.option("--tls-verify/--no-tls-verify", default=True, show_default=True,
              help="Verify the registry's TLS certificate (kit's --tls-verify=false is --no-tls-verify).")
@client_tls_options
def login_command(
    registry: str, username: str, password: str, password_stdin: bool, plain_http: bool | None, tls_verify: bool
) -> None:
    """Log in to REGISTRY (host[:port]): check the credentials against it, then save them in kit's credentials.json."""
    host = registry_host(registry)
    if password and username:
        click.echo("Warning: Using --password via CLI is insecure. Consider using --password-stdin instead", err=True)
    if password_stdin:
        if password:
            raise click.UsageError("cannot use both --password and --password-stdin")
        password = sys.stdin.read().strip()
        if not password:
            raise click.UsageError("failed to read password from stdin: got empty string")
    if not password:
        if not sys.stdin.isatty():
            raise click.UsageError("attempting to read input from non-terminal: use -p or --password-stdin")
        if not username:
            username = click.prompt("Username", default="", show_default=False)
        password = click.prompt("Password", hide_input=True)
    try:
        # plain HTTP does no TLS: nothing to verify, and no CA bundle to load (client_tls_options gave no TLS files)
        login(host, username, password, home=get_state().home, plain_http=plain_http,
              tls_verify=tls_verify and not plain_http)
    except AuthError as exc:
        if username or exc.status not in (401, 403):
            raise
        raise AuthError(_without_username(host, exc), **exc.details) from None
    click.echo("Log in successful")


@click.command("logout")
@click.argument("registry")
def logout_command(registry: str) -> None:
    """Log out from REGISTRY (host[:port]): remove its saved credentials."""
    host = registry_host(registry)
    if logout(host, home=get_state().home):
        click.echo(f"Successfully logged out from {host}")
    else:
        click.echo(f"Not logged in to {host}")


def _without_username(host: str, error: AuthError) -> str:
    """The message for a login without ``-u`` that the registry refused: the missing username is the likely cause."""
    said = " ".join(str(part) for part in (error.status, error.code) if part)
    return (f"cannot log in to {host} without a username: give -u/--username (a password alone is sent as an "
            f"identity token, and the registry refused it: {said})")
