"""``pymodelkit pack DIRECTORY``: one call of :func:`pymodelkit.pack` (``no_store`` with ``--no-store``), or of
:func:`pymodelkit.pack_and_push` with ``--push``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pymodelkit import settings
from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options, warn_host_port
from pymodelkit.kitfile import Kitfile, load_kitfile
from pymodelkit.pack.compression import COMPRESSION_CHOICES
from pymodelkit.pack.pipeline import LAYER_FORMATS, PACK_FORMATS, pack

__all__ = ["pack_command"]

logger = logging.getLogger(__name__)


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
@click.option("--format", "model_format", type=click.Choice(PACK_FORMATS), default="kitops", show_default=True,
              help="kitops, or modelpack: a CNCF ModelPack artifact, as kit's --use-model-pack.")
@click.option("--use-model-pack", is_flag=True, help="kit's spelling of --format modelpack.")
@click.option("--link", is_flag=True,
              help="Hard-link uncompressed raw layer files into the store instead of copying them (the blob then "
                   "shares the file: do not edit it in place afterwards).")
@click.option("--no-digest-cache", is_flag=True,
              help="Hash every layer again even if its files are unchanged since the last pack.")
@click.option("--push", "push_after", is_flag=True, help="Push the ModelKit to the registry of --tag once packed.")
@click.option("--no-store", is_flag=True,
              help="Store nothing: print the digest this pack would have ('Model digest: sha256:...'; with -q the "
                   "digest alone), reading each file once and writing no blob. The manifest digest depends on the "
                   "time unless SOURCE_DATE_EPOCH is set; layer digests do not. With --push: stream the layers to "
                   "the registry as they are produced.")
@tls_options
def pack_command(
    directory: Path, kitfile: str | None, tag: str | None, compression: str, layer_format: str, model_format: str,
    use_model_pack: bool, link: bool, no_digest_cache: bool, push_after: bool, no_store: bool, plain_http: bool,
    tls_verify: bool,
) -> None:
    """Pack DIRECTORY into a ModelKit in the local store (with --no-store: only compute its digest)."""
    state = get_state()
    spec: str | Kitfile | None = kitfile
    if kitfile == "-":
        if sys.stdin.isatty():
            raise click.UsageError("-f - reads the Kitfile from stdin, but stdin is a terminal")
        spec = load_kitfile(sys.stdin.read(), source="<stdin>")
    if use_model_pack:
        model_format = "modelpack"
    warn_host_port(tag)
    if push_after:
        if not tag:
            raise click.UsageError("--push needs --tag with a registry (registry/repository[:tag])")
        from pymodelkit.pack.streampush import pack_and_push

        result = pack_and_push(
            directory,
            tag,
            kitfile=spec,
            compression=compression,
            layer_format=layer_format,
            store=state.store(),
            no_store=no_store,
            plain_http=plain_http_setting(plain_http),
            tls_verify=tls_verify,
            on_progress=state.progress(),
            link=link,
            digest_cache=not no_digest_cache,
            format=model_format,
        )
        if not state.quiet:
            if result.stored:
                click.echo(f"Model saved: {result.pack.digest}")
            click.echo(f"Pushed {result.push.digest}")
        return
    packed = pack(
        directory,
        kitfile=spec,
        tag=tag,
        compression=compression,
        layer_format=layer_format,
        store=state.store(),
        on_progress=state.progress(),
        link=link,
        digest_cache=not no_digest_cache,
        format=model_format,
        no_store=no_store,
    )
    if no_store:  # the digest is the whole result: printed even with -q, alone (as `docker build -q` prints the ID)
        if state.quiet:
            click.echo(str(packed.digest))
            return
        click.echo(f"Model digest: {packed.digest}")
        note = "Nothing stored (--no-store)"
        if settings.source_date_epoch() is None:
            note += "; SOURCE_DATE_EPOCH is not set, so the manifest digest includes the current time"
        click.echo(note, err=True)
    elif not state.quiet:
        click.echo(f"Model saved: {packed.digest}")
