"""The ``pymodelkit`` command: global options, logging, and one-line errors with distinct exit codes.

Each subcommand lives in its own module and is one call of the library. Failures print one line on stderr
(``pymodelkit: error: …``) and exit non-zero; ``-v`` adds the traceback (``docs/cli.md``, "Errors and exit codes").
A usage error is click's message on that line, followed by where the help is: ``pymodelkit: error: Missing argument
'REFERENCE'. (see 'pymodelkit pull --help')`` (exit 2). Ctrl-C is ``interrupted`` (exit 130); SIGTERM, which
:func:`main` turns into an interrupt for the duration of the command so that the same clean-ups run, is
``terminated`` (exit 143).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

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
    """The top-level group: a Ctrl-C (or SIGTERM) while the arguments are parsed or a command runs reaches
    :func:`main` as :class:`_Interrupted`."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: object
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc
        finally:  # the command is over: a SIGTERM in click's teardown after it must not raise where click prints
            termination = getattr(_RUNNING, "termination", None)
            if termination is not None:
                termination.close()


_RUNNING = threading.local()  # .termination: the _SigtermAsInterrupt of the main() running in this thread


class _Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM: a KeyboardInterrupt, so every clean-up that Ctrl-C runs runs for it."""


class _SigtermAsInterrupt:
    """SIGTERM as Ctrl-C while a command runs in the main thread: the first one raises :class:`_Terminated` there.

    Later ones are ignored, so that the clean-up the first one started (an unpack's rollback, a pull stopping its
    workers, a writer removing its temp file) finishes instead of being cut short; ``SIGKILL`` (what ``docker stop``
    and systemd send when their grace period is over) still ends the process, and Ctrl-C still interrupts it.
    :meth:`close` ends the command's part: a SIGTERM after it, when none came before, is only recorded, and
    :meth:`restore` (which puts back the handler in place before) passes it on to that handler; so does it with the
    SIGTERM that stopped the command when that handler is a Python function (a program embedding :func:`main` that
    has its own shutdown), not when it is the default action (the console script: it exits 143 with its line). Off
    the main thread, or when the handler in place was not set from Python (it could not be put back), nothing is
    installed.
    """

    def __init__(self) -> None:
        self.fired = False  # a SIGTERM was raised as _Terminated
        self._closed = False
        self._late = False  # a SIGTERM came after close(), none before
        self._previous: object = None
        self._installed = False

    def install(self) -> None:
        """Handle SIGTERM from now on, if this is the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:
            return
        self._previous, self._installed = previous, True  # before the handler: a SIGTERM at once is restored too
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main interpreter's main thread
            self._installed = False

    def close(self) -> None:
        """The command is over: no SIGTERM raises any more."""
        self._closed = True

    def restore(self) -> None:
        """Put back the handler in place before, and hand it a SIGTERM that came after :meth:`close`."""
        if not self._installed:
            return
        self._installed = False
        signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]
        if self._late or (self.fired and callable(self._previous)):
            signal.raise_signal(signal.SIGTERM)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.fired:
            return  # a second SIGTERM during the clean-up: ignored
        if self._closed:
            self._late = True
            return
        self.fired = True
        raise _Terminated()


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


@dataclass(frozen=True)
class _Outcome:
    """How a run ended: its exit code, the line to print on stderr (if any), the error whose traceback ``-v`` adds."""

    code: int
    line: str | None = None
    error: BaseException | None = None


_INTERRUPTED = _Outcome(130, "pymodelkit: error: interrupted")
_TERMINATED = _Outcome(128 + int(signal.SIGTERM), "pymodelkit: error: terminated")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising (``pymodelkit`` console script).

    In the main thread a SIGTERM during the command is handled as Ctrl-C is (the command's clean-ups run), then
    reported as ``pymodelkit: error: terminated`` with exit code 143; the SIGTERM handler in place before is restored
    (and, when it is a Python function, handed that SIGTERM).
    """
    args = _kit_spellings(list(argv) if argv is not None else sys.argv[1:])
    verbose = any(arg in ("-v", "-vv", "-vvv", "--verbose") for arg in args)
    termination = _SigtermAsInterrupt()
    outer, _RUNNING.termination = getattr(_RUNNING, "termination", None), termination
    try:
        outcome = _outcome(args, termination)
        # still under the handler, which raises no more: a SIGTERM cannot cut the line short nor add a second one
        if outcome.error is not None and verbose:
            traceback.print_exception(outcome.error)
        if outcome.line is not None:
            click.echo(outcome.line, err=True)
        return outcome.code
    finally:
        _RUNNING.termination = outer
        termination.restore()


def _outcome(args: list[str], termination: _SigtermAsInterrupt) -> _Outcome:
    """Run the command with SIGTERM raising in the main thread; how it ended."""
    outcome = _TERMINATED
    try:
        termination.install()
        try:
            outcome = _run(args)
        except (_Interrupted, KeyboardInterrupt):
            outcome = _INTERRUPTED
        termination.close()
    except _Terminated:  # the SIGTERM landed in the lines above, out of the command: it is raised only once
        pass
    termination.close()
    return _TERMINATED if termination.fired else outcome


def _run(args: list[str]) -> _Outcome:
    """Run the command; how it failed, if it did. An interrupt is raised, as :class:`_Interrupted` or as itself."""
    try:
        cli.main(args=args, prog_name="pymodelkit", standalone_mode=False)
    except click.exceptions.Abort:  # a prompt answered with Ctrl-C (or SIGTERM) or end of input
        return _Outcome(130, "pymodelkit: error: aborted")
    except click.UsageError as exc:
        if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):  # a bare group: its help, as before
            return _Outcome(exc.exit_code, exc.format_message())
        return _Outcome(exc.exit_code, f"pymodelkit: error: {_usage_line(exc)}")
    except click.ClickException as exc:  # click.FileError and the like
        return _Outcome(exc.exit_code, f"pymodelkit: error: {_one_line(exc.format_message())}")
    except click.exceptions.Exit as exc:
        return _Outcome(int(exc.exit_code))
    except errors.ModelKitError as exc:
        return _Outcome(_exit_code(exc), f"pymodelkit: error: {_one_line(str(exc))}", exc)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _Outcome(1, f"pymodelkit: error: {exc.strerror or exc}{where}", exc)
    return _Outcome(0)


# click 8.2+: a group run with no arguments raises this usage error, whose message is the group's help
_NO_ARGS_IS_HELP: type[click.UsageError] | None = getattr(click.exceptions, "NoArgsIsHelpError", None)


def _usage_line(error: click.UsageError) -> str:
    """Click's message, then the help of the command that was used wrongly: ``… (see 'pymodelkit pull --help')``."""
    message = _one_line(error.format_message())
    ctx = error.ctx
    if ctx is None:
        return f"{message} (see 'pymodelkit --help')"
    if ctx.command.get_help_option(ctx) is None:
        return message
    names = ctx.help_option_names
    option = next((name for name in names if name.startswith("--")), names[0])
    return f"{message} (see '{ctx.command_path} {option}')"


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
