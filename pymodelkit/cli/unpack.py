"""``pymodelkit unpack REFERENCE``: one call of :func:`pymodelkit.unpack`."""

from __future__ import annotations

from pathlib import Path

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options
from pymodelkit.cli.sign import manifest_verifier, verify_option
from pymodelkit.unpack.filters import filters_from_flags, parse_filters
from pymodelkit.unpack.unpacker import unpack

__all__ = ["unpack_command"]


@click.command("unpack")
@click.argument("reference")
@click.option("-d", "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to unpack.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="types[:ids], types from kitfile,model,datasets,code,docs,prompts,mcpservers (repeatable).")
@click.option("-o", "--overwrite", is_flag=True, help="Overwrite existing files.")
@click.option("-i", "--ignore-existing", is_flag=True, help="Skip files that already exist.")
@click.option("--kitfile", "only_kitfile", is_flag=True, hidden=True)
@click.option("--model", "only_model", is_flag=True, hidden=True)
@click.option("--code", "only_code", is_flag=True, hidden=True)
@click.option("--datasets", "only_datasets", is_flag=True, hidden=True)
@click.option("--docs", "only_docs", is_flag=True, hidden=True)
@tls_options
@verify_option
def unpack_command(
    reference: str,
    directory: Path,
    filters: tuple[str, ...],
    overwrite: bool,
    ignore_existing: bool,
    only_kitfile: bool,
    only_model: bool,
    only_code: bool,
    only_datasets: bool,
    only_docs: bool,
    plain_http: bool,
    tls_verify: bool,
    verify_keys: tuple[Path, ...],
) -> None:
    """Unpack the ModelKit REFERENCE into a directory: from the local store, else from its registry."""
    state = get_state()
    if overwrite and ignore_existing:
        raise click.UsageError("--overwrite and --ignore-existing cannot be used together")
    chosen = parse_filters(list(filters)) if filters else filters_from_flags(
        only_kitfile, only_model, only_code, only_datasets, only_docs
    )
    result = unpack(
        reference,
        directory,
        filters=chosen,
        overwrite=overwrite,
        ignore_existing=ignore_existing,
        store=state.store(),
        on_progress=state.progress(),
        plain_http=plain_http_setting(plain_http),
        tls_verify=tls_verify,
        verify=manifest_verifier(verify_keys),
    )
    if not state.quiet:
        click.echo(f"Unpacked {len(result.files)} files from {result.digest} to {directory}")
