"""``pymodelkit unpack REFERENCE``: one call of :func:`pymodelkit.unpack`; a filter that does not parse is a usage
error (exit 2), as kit refuses it before unpacking (``Invalid filter``), and one that selects nothing is warned about
(kit says nothing)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options
from pymodelkit.cli.sign import manifest_verifier, verify_option
from pymodelkit.errors import UnpackError
from pymodelkit.unpack.filters import UnpackFilter, filters_from_flags, parse_filter
from pymodelkit.unpack.unpacker import unpack

__all__ = ["unpack_command"]

logger = logging.getLogger(__name__)


@click.command("unpack")
@click.argument("reference")
@click.option("-d", "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to unpack.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="TYPES[:IDS]",
              help="What to unpack (repeatable): TYPES from kitfile, model, datasets, code, docs, prompts, "
                   "mcpservers, comma-separated; IDS are names or paths, comma-separated.")
@click.option("-o", "--overwrite", is_flag=True, help="Overwrite existing files (and a different Kitfile).")
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
    chosen = _parse_filters(filters) if filters else filters_from_flags(
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
    for unmatched in result.unmatched_filters:
        logger.warning("filter %s matches nothing in %s: nothing is unpacked for it", unmatched, reference)
    if not state.quiet:
        click.echo(f"Unpacked {len(result.files)} files from {result.digest} to {directory}")


def _parse_filters(values: tuple[str, ...]) -> list[UnpackFilter]:
    """Each ``-f`` value parsed; one that does not parse is a usage error naming it."""
    parsed = []
    for value in values:
        try:
            parsed.append(parse_filter(value))
        except UnpackError as exc:
            raise click.BadParameter(f"{value!r}: {exc}", param_hint="'-f' / '--filter'") from None
    return parsed
