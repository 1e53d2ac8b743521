"""State shared by the CLI's commands: the chosen kit home and output settings."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from pymodelkit.progress import ProgressCallback
from pymodelkit.store import LocalStore

__all__ = ["CliState", "get_state"]


@dataclass(frozen=True, slots=True)
class CliState:
    """Global options of one CLI invocation."""

    home: Path | None
    verbose: int
    quiet: bool

    def store(self) -> LocalStore:
        """The local store the command works on (``--config`` or the default kit home)."""
        return LocalStore(self.home)

    def progress(self) -> ProgressCallback | None:
        """A tqdm progress callback when stderr is a terminal and not quiet, else ``None``."""
        if self.quiet or not sys.stderr.isatty():
            return None
        from pymodelkit.cli.progressbar import TqdmProgress

        return TqdmProgress()


def get_state() -> CliState:
    """The current invocation's :class:`CliState`."""
    state = click.get_current_context().find_object(CliState)
    if state is None:  # a command invoked on its own, outside the group
        return CliState(home=None, verbose=0, quiet=False)
    return state
