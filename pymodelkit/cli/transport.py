"""``pymodelkit save``, ``pymodelkit load`` and ``pymodelkit copy``: one library call each (``docs/airgap.md``)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options
from pymodelkit.cli.remote import _ByteSize  # the --chunk-size type push uses
from pymodelkit.ocilayout.layout import check_archive_path, is_layout_location
from pymodelkit.registry.copy import copy
from pymodelkit.registry.transfer import DEFAULT_CHUNK_BYTES, DEFAULT_CONCURRENCY
from pymodelkit.transports import load, save

__all__ = ["copy_command", "load_command", "pull_from_layout", "push_with_layout", "save_command"]


@click.command("save")
@click.argument("reference")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="The archive to write (FILE.tar), or oci-archive:FILE[:TAG] / oci:DIR[:TAG].")
@click.option("--with-signatures", is_flag=True,
              help="Also save the ModelKit's signatures, read from the registry REFERENCE names.")
@click.option("--with-parents", is_flag=True, help="Also save the parent ModelKits its Kitfile builds on.")
@tls_options
def save_command(reference: str, output: str, with_signatures: bool, with_parents: bool, plain_http: bool,
                 tls_verify: bool) -> None:
    """Write the ModelKit REFERENCE from local storage into an OCI archive (a tar file), for air-gapped transfer."""
    state = get_state()
    target = output if is_layout_location(output) else _archive_path(output, "-o")
    result = save(reference, target, with_signatures=with_signatures, with_parents=with_parents,
                  store=state.store(), plain_http=plain_http_setting(plain_http), tls_verify=tls_verify,
                  on_progress=state.progress())
    if not state.quiet:
        extra = f" with {len(result.signatures)} signature manifest(s)" if with_signatures else ""
        click.echo(f"Saved {result.digest} to {result.destination}{extra}")


@click.command("load")
@click.argument("archive")
@click.option("-t", "--tag", "reference", default=None, metavar="REF",
              help="Store the (first) ModelKit as this reference instead of the name the archive gives it.")
@click.option("--concurrency", type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY, show_default=True,
              help="Blobs copied at once.")
def load_command(archive: str, reference: str | None, concurrency: int) -> None:
    """Load the ModelKits of an OCI archive (FILE.tar, oci-archive:FILE[:NAME] or oci:DIR[:NAME]) into local
    storage, verifying every blob."""
    state = get_state()
    source = archive if is_layout_location(archive) else _archive_path(archive, "ARCHIVE")
    result = load(source, reference=reference, store=state.store(), concurrency=concurrency,
                  on_progress=state.progress())
    if state.quiet:
        return
    for kit in result.modelkits:
        click.echo(f"Loaded {kit.reference.display()} ({kit.digest})")
    if result.left_out:
        click.echo(f"Kept {len(result.left_out)} signature or referrer manifest(s) in the archive: local storage has "
                   "no place for them; push or copy the archive to carry them to a registry", err=True)


@click.command("copy")
@click.argument("source")
@click.argument("destination")
@click.option("--with-signatures", is_flag=True,
              help="Also copy the signatures (cosign .sig tag, referrers and their fallback index).")
@click.option("--concurrency", type=click.IntRange(min=1), default=DEFAULT_CONCURRENCY, show_default=True,
              help="Blobs transferred at once.")
@click.option("--chunk-size", "chunk_bytes", type=_ByteSize(), default=DEFAULT_CHUNK_BYTES, show_default=True,
              help="Blobs of at least this size go in chunks of this size (e.g. 16MiB); smaller ones in one PUT.")
@tls_options
def copy_command(source: str, destination: str, with_signatures: bool, concurrency: int, chunk_bytes: int,
                 plain_http: bool, tls_verify: bool) -> None:
    """Copy a ModelKit from SOURCE to DESTINATION: registry references, oci:DIR[:NAME] or
    oci-archive:FILE[:NAME], blob by blob, skipping what the destination has."""
    state = get_state()
    result = copy(source, destination, with_signatures=with_signatures, plain_http=plain_http_setting(plain_http),
                  tls_verify=tls_verify, concurrency=concurrency, chunk_bytes=chunk_bytes,
                  on_progress=state.progress())
    if not state.quiet:
        click.echo(f"Copied {result.digest} to {destination} ({len(result.copied)} blobs copied, "
                   f"{len(result.mounted)} mounted, {len(result.skipped)} already there)")


def push_with_layout(source: str, destination: str | None, *, with_signatures: bool, plain_http: bool,
                     tls_verify: bool, concurrency: int, chunk_bytes: int) -> bool:
    """``push`` with an ``oci:``/``oci-archive:`` end: save into it, or copy from it to a registry. Returns
    ``False`` (nothing done) when neither end is one, so the registry push runs."""
    state = get_state()
    if destination is not None and is_layout_location(destination):
        result = save(source, destination, with_signatures=with_signatures, store=state.store(),
                      plain_http=plain_http_setting(plain_http), tls_verify=tls_verify, on_progress=state.progress())
    elif is_layout_location(source):
        if destination is None:
            raise click.UsageError("pushing from an OCI layout or archive needs a DESTINATION registry reference")
        result = copy(source, destination, with_signatures=with_signatures, plain_http=plain_http_setting(plain_http),
                      tls_verify=tls_verify, concurrency=concurrency, chunk_bytes=chunk_bytes,
                      on_progress=state.progress())
    elif with_signatures:
        raise click.UsageError("--with-signatures needs an oci: or oci-archive: source or destination: local storage "
                               "keeps no signatures (pymodelkit copy carries them between registries)")
    else:
        return False
    if not state.quiet:
        click.echo(f"Pushed {result.digest}")
    return True


def pull_from_layout(reference: str, *, verify_keys: tuple[Path, ...], concurrency: int) -> bool:
    """``pull oci:DIR[:NAME]`` / ``pull oci-archive:FILE[:NAME]``: a :func:`load`. Returns ``False`` (nothing done)
    for a registry reference."""
    if not is_layout_location(reference):
        return False
    if verify_keys:
        raise click.UsageError("--verify checks signatures in a registry: push the archive to one first, or pull "
                               "from the registry")
    state = get_state()
    result = load(reference, store=state.store(), concurrency=concurrency, on_progress=state.progress())
    if not state.quiet:
        click.echo(f"Pulled {result.digest}")
    return True


def _archive_path(text: str, what: str) -> Path:
    """A plain archive path as typed: refused when it starts like another transport (``docker-archive:/x.tar``)
    and names no existing file; passed on as a ``Path``, so ``demo:v1.tar`` stays a file name."""
    if not os.path.lexists(text):
        check_archive_path(text, what)
    return Path(text)
