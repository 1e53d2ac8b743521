"""``pymodelkit pack DIRECTORY``: one call of :func:`pymodelkit.pack`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pymodelkit.cli.context import get_state
from pymodelkit.kitfile import Kitfile, load_kitfile
from pymodelkit.pack.compression import COMPRESSION_CHOICES
from pymodelkit.pack.pipeline import LAYER_FORMATS, pack

__all__ = ["pack_command"]


@click.command("pack")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-f", "--file", "kitfile", default=None,
              help="The Kitfile, relative to DIRECTORY as in kit ('-' reads it from stdin). "
                   "Default: Kitfile, kitfile or .kitfile in DIRECTORY.")
@click.option("-t", "--tag", default=None, help="[registry/]repository[:tag][,tag2...]; no tag means 'latest'.")
@click.option("--compression", type=click.Choice(COMPRESSION_CHOICES), default="none", show_default=True,
              help="Layer compression; only 'none' is byte-identical to kit.")
@click.option("--layer-format", type=click.Choice(LAYER_FORMATS), default="tar", show_default=True,
              help="tar layers, or raw (each layer path must be one regular file).")
def pack_command(directory: Path, kitfile: str | None, tag: str | None, compression: str, layer_format: str) -> None:
    """Pack DIRECTORY into a ModelKit in the local store."""
    state = get_state()
    spec: str | Kitfile | None = kitfile
    if kitfile == "-":
        if sys.stdin.isatty():
            raise click.UsageError("-f - reads the Kitfile from stdin, but stdin is a terminal")
        spec = load_kitfile(sys.stdin.read(), source="<stdin>")
    result = pack(
        directory,
        kitfile=spec,
        tag=tag,
        compression=compression,
        layer_format=layer_format,
        store=state.store(),
        on_progress=state.progress(),
    )
    if not state.quiet:
        click.echo(f"Model saved: {result.digest}")
