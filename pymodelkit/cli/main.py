"""The ``pymodelkit`` command: global options, logging, and one-line errors with distinct exit codes.

Each subcommand lives in its own module and is one call of the library. Failures print one line on stderr
(``pymodelkit: error: …``) and exit non-zero; ``-v`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click

from pymodelkit import errors
from pymodelkit._version import __version__
from pymodelkit.cli.auth import login_command, logout_command
from pymodelkit.cli.context import CliState
from pymodelkit.cli.init import init_command
from pymodelkit.cli.mlflow import mlflow_group
from pymodelkit.cli.pack import pack_command
from pymodelkit.cli.remote import pull_command, push_command
from pymodelkit.cli.sign import generate_key_pair_command, sign_command, verify_command
from pymodelkit.cli.storage import (
    diff_command,
    fsck_command,
    gc_command,
    info_command,
    inspect_command,
    list_command,
    remove_command,
    tag_command,
)
from pymodelkit.cli.transport import copy_command, load_command, save_command
from pymodelkit.cli.unpack import unpack_command

__all__ = ["EXIT_CODES", "cli", "main"]

# Most specific first: the first class an error is an instance of gives its exit code.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.RegistryNotFoundError, 5),
    (errors.KitfileError, 3),
    (errors.InvalidReferenceError, 4),
    (errors.NotFoundError, 5),
    (errors.DigestMismatchError, 6),
    (errors.UnsafeArchiveError, 7),
    (errors.PackError, 8),
    (errors.UnpackError, 9),
    (errors.StoreError, 10),
    (errors.AuthError, 12),
    (errors.SigningKeyError, 13),
    (errors.SignatureError, 14),
    (errors.RegistryError, 11),
    (errors.ModelKitError, 1),
)


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"[{record.levelname[:4]}] {text}" if record.levelno == logging.WARNING else f"[ERROR] {text}"
        return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _Interrupted(Exception):
    """A KeyboardInterrupt carried past click, which would print a blank line and turn it into ``Abort``."""


class _Group(click.Group):
    """The top-level group: a Ctrl-C during a command reaches :func:`main` as :class:`_Interrupted`."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output: -v info logs, -vv debug logs and tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no informational output.")
@click.option(
    "--config",
    "home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The kit home directory holding storage/ (default: $KITOPS_HOME, else $XDG_DATA_HOME/kitops, else "
         "~/.local/share/kitops).",
)
@click.version_option(__version__, "--version", prog_name="pymodelkit")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, home: Path | None) -> None:
    """Pack, inspect and unpack KitOps ModelKits, with no kit binary."""
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    if quiet:
        level = logging.ERROR
    handler = _StderrHandler()
    handler.setFormatter(_OneLineFormatter())
    root = logging.getLogger("pymodelkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    ctx.obj = CliState(home=home, verbose=verbose, quiet=quiet)


@cli.command("version")
def version_command() -> None:
    """Print the version."""
    click.echo(f"Version: {__version__}")


for command in (
    init_command,
    pack_command,
    unpack_command,
    list_command,
    inspect_command,
    info_command,
    tag_command,
    remove_command,
    diff_command,
    fsck_command,
    gc_command,
    push_command,
    pull_command,
    login_command,
    logout_command,
    mlflow_group,
    save_command,
    load_command,
    copy_command,
    generate_key_pair_command,
    sign_command,
    verify_command,
):
    cli.add_command(command)


def _exit_code(error: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising (``pymodelkit`` console script)."""
    args = _kit_spellings(list(argv) if argv is not None else sys.argv[1:])
    verbose = any(arg in ("-v", "-vv", "-vvv", "--verbose") for arg in args)
    try:
        cli.main(args=args, prog_name="pymodelkit", standalone_mode=False)
    except (_Interrupted, KeyboardInterrupt):
        click.echo("pymodelkit: error: interrupted", err=True)
        return 130
    except click.exceptions.Abort:  # a prompt answered with Ctrl-C or end of input
        click.echo("pymodelkit: error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except errors.ModelKitError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"pymodelkit: error: {_one_line(str(exc))}", err=True)
        return _exit_code(exc)
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"pymodelkit: error: {exc.strerror or exc}{where}", err=True)
        return 1
    return 0


def _kit_spellings(args: list[str]) -> list[str]:
    """Accept kit's ``--tls-verify=false`` / ``--tls-verify=true`` for our ``--no-tls-verify`` / ``--tls-verify``."""
    out = []
    for arg in args:
        if arg.startswith("--tls-verify="):
            value = arg.split("=", 1)[1].strip().lower()
            if value in ("false", "0", "no", "off"):
                arg = "--no-tls-verify"
            elif value in ("true", "1", "yes", "on"):
                arg = "--tls-verify"
        out.append(arg)
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
