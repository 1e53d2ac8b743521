"""``pymodelkit init DIRECTORY``: one call of :func:`pymodelkit.kitfile.generate.generate_kitfile`, then the write."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pymodelkit._atomic import write_atomic
from pymodelkit.cli.context import get_state
from pymodelkit.errors import KitfileError
from pymodelkit.kitfile.generate import generate_kitfile
from pymodelkit.kitfile.yamldump import dump_kitfile

__all__ = ["init_command"]


@click.command("init")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default="", help="Package name for the ModelKit.")
@click.option("--desc", "description", default="", help="Package description.")
@click.option("--author", default="", help="Package author (one entry of package.authors).")
@click.option("--version", "version", default="", help="Package version.")
@click.option("--license", "license_", default="", help="Package license (an SPDX id).")
@click.option(
    "--depth",
    type=int,
    default=0,
    show_default=True,
    help="0: top-level directories as units; N>0: classify files N levels down one by one; N<0: every file one by one.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing Kitfile.")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Where to write the Kitfile (default DIRECTORY/Kitfile); '-' prints it to stdout only.",
)
def init_command(
    directory: Path,
    name: str,
    description: str,
    author: str,
    version: str,
    license_: str,
    depth: int,
    force: bool,
    output: str | None,
) -> None:
    """Generate a Kitfile for the files in DIRECTORY (never prompts; values missing from the flags stay empty)."""
    state = get_state()
    target = None if output == "-" else Path(output) if output else directory / "Kitfile"
    if target is not None and not force and os.path.lexists(target):
        raise KitfileError(f"Kitfile already exists at {target}; use --force to overwrite", path=str(target))
    kitfile = generate_kitfile(
        directory, name=name, description=description, author=author, version=version, license=license_, depth=depth
    )
    text = dump_kitfile(kitfile)
    if target is None:
        click.echo(text, nl=False)
        return
    write_atomic(target, text.encode("utf-8"), mode=0o644)
    if not state.quiet:
        click.echo(f"Generated Kitfile:\n\n{text}")
        click.echo(f"Saved to path '{target}'")
