"""``pymodelkit push SOURCE [DESTINATION]`` and ``pymodelkit pull REFERENCE``: one call of the library each."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options
from pymodelkit.cli.sign import manifest_verifier, verify_option
from pymodelkit.registry.transfer import DEFAULT_CHUNK_BYTES, DEFAULT_CONCURRENCY, pull, push

__all__ = ["pull_command", "push_command"]

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class _ByteSize(click.ParamType[int]):
    """A size in bytes: ``1048576``, ``512KiB``, ``16MiB``, ``1G`` (binary units)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE_RE.match(str(value))
        if match is None or int(match.group(1)) < 1:
            self.fail(f"{value!r} is not a size such as 33554432, 512KiB or 32MiB", param, ctx)
        unit = (match.group(2) or "").lower()[:1]
        return int(match.group(1)) * _UNITS[unit]


def _network_options(command: _F) -> _F:
    command = click.option("--concurrency", type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY,
                           show_default=True, help="Blobs transferred at once.")(command)
    return tls_options(command)


@click.command("push")
@click.argument("source")
@click.argument("destination", required=False)
@_network_options
@click.option("--chunk-size", "chunk_bytes", type=_ByteSize(), default=DEFAULT_CHUNK_BYTES, show_default=True,
              help="Blobs of at least this size go in chunks of this size (e.g. 16MiB); smaller ones in one PUT.")
@click.option("--with-signatures", is_flag=True,
              help="With an oci:DIR or oci-archive:FILE end: carry the ModelKit's signatures too.")
def push_command(
    source: str, destination: str | None, plain_http: bool, tls_verify: bool, concurrency: int, chunk_bytes: int,
    with_signatures: bool = False,
) -> None:
    """Upload the ModelKit SOURCE from local storage to a registry (to DESTINATION if given). Either end may be
    oci:DIR[:TAG] or oci-archive:FILE[:TAG] (an OCI layout or archive: a disk as the registry)."""
    from pymodelkit.cli.transport import push_with_layout  # oci:/oci-archive: ends (docs/airgap.md)

    if push_with_layout(source, destination, with_signatures=with_signatures, plain_http=plain_http,
                        tls_verify=tls_verify, concurrency=concurrency, chunk_bytes=chunk_bytes):
        return
    state = get_state()
    if destination:
        logger.info("Pushing %s to %s", source, destination)
    else:
        logger.info("Pushing %s", source)
    result = push(
        source,
        destination,
        store=state.store(),
        plain_http=plain_http_setting(plain_http),
        tls_verify=tls_verify,
        concurrency=concurrency,
        chunk_bytes=chunk_bytes,
        on_progress=state.progress(),
    )
    if not state.quiet:
        click.echo(f"Pushed {result.digest}")


@click.command("pull")
@click.argument("reference")
@_network_options
@verify_option
def pull_command(
    reference: str, plain_http: bool, tls_verify: bool, concurrency: int, verify_keys: tuple[Path, ...]
) -> None:
    """Download the ModelKit REFERENCE (and the ModelKits it builds on) from a registry into local storage.
    REFERENCE may be oci:DIR[:NAME] or oci-archive:FILE[:NAME] (as pymodelkit load)."""
    from pymodelkit.cli.transport import pull_from_layout  # oci:/oci-archive: sources (docs/airgap.md)

    if pull_from_layout(reference, verify_keys=verify_keys, concurrency=concurrency):
        return
    state = get_state()
    logger.info("Pulling %s", reference)
    result = pull(
        reference,
        store=state.store(),
        plain_http=plain_http_setting(plain_http),
        tls_verify=tls_verify,
        concurrency=concurrency,
        on_progress=state.progress(),
        verify=manifest_verifier(verify_keys),
    )
    if not state.quiet:
        click.echo(f"Pulled {result.digest}")
