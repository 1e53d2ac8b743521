"""Commands over the local store: ``list``, ``inspect``, ``info``, ``tag``, ``remove``, ``diff``, ``fsck``, ``gc``."""

from __future__ import annotations

import logging

import click

from pymodelkit import catalog
from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options, warn_host_port
from pymodelkit.errors import StoreError
from pymodelkit.kitfile import dump_kitfile
from pymodelkit.oci.reference import format_for_display, parse_single_reference

__all__ = [
    "diff_command",
    "fsck_command",
    "gc_command",
    "info_command",
    "inspect_command",
    "list_command",
    "remove_command",
    "tag_command",
]


logger = logging.getLogger(__name__)

_REMOTE_HELP = "Read from the registry instead of the local store (manifest and config only)."


@click.command("list")
@click.argument("repository", required=False)
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: kit's columns, one row per tag; json: kit's objects (repo, digest, tags, modelName, size, "
                   "author).")
@tls_options
def list_command(repository: str | None, output: str, plain_http: bool, tls_verify: bool) -> None:
    """List the ModelKits in the local store, or the tags of REGISTRY/REPOSITORY in that registry.

    REPOSITORY:TAG (or @DIGEST) lists that one only."""
    ref = parse_single_reference(repository) if repository is not None else None
    warn_host_port(repository)
    if ref is not None and not ref.is_local:
        from pymodelkit.registry.remote import list_remote

        rows = list_remote(ref, plain_http=plain_http_setting(plain_http), tls_verify=tls_verify)
    else:
        rows = catalog.list_modelkits(get_state().store(), ref)
    if output == "json":
        click.echo(catalog.format_list_json(rows))
    else:
        click.echo(catalog.format_list_table(rows), nl=False)


@click.command("inspect")
@click.argument("reference")
@click.option("-r", "--remote", is_flag=True, help=_REMOTE_HELP)
@tls_options
def inspect_command(reference: str, remote: bool, plain_http: bool, tls_verify: bool) -> None:
    """Print a ModelKit's digest, Kitfile and manifest as JSON."""
    warn_host_port(reference)
    if remote:
        from pymodelkit.registry.remote import inspect_remote

        click.echo(inspect_remote(reference, plain_http=plain_http_setting(plain_http), tls_verify=tls_verify))
    else:
        click.echo(catalog.inspect(reference, get_state().store()))


@click.command("info")
@click.argument("reference")
@click.option("-r", "--remote", is_flag=True, help=_REMOTE_HELP)
@tls_options
def info_command(reference: str, remote: bool, plain_http: bool, tls_verify: bool) -> None:
    """Print a ModelKit's Kitfile."""
    warn_host_port(reference)
    if remote:
        from pymodelkit.registry.remote import info_remote

        kitfile = info_remote(reference, plain_http=plain_http_setting(plain_http), tls_verify=tls_verify)
    else:
        kitfile = catalog.info(reference, get_state().store())
    click.echo(dump_kitfile(kitfile), nl=False)


@click.command("tag")
@click.argument("source")
@click.argument("target")
def tag_command(source: str, target: str) -> None:
    """Give the ModelKit SOURCE the additional name TARGET."""
    warn_host_port(source, target)
    catalog.tag(source, target, get_state().store())
    click.echo(f"Modelkit {source} tagged as {target}")


@click.command("remove")
@click.argument("reference", required=False)
@click.option("-f", "--force", is_flag=True, help="Remove the ModelKit even if it has other tags.")
@click.option("-a", "--all", "remove_all", is_flag=True, help="Remove every untagged ModelKit (with -f: everything).")
@click.option("-r", "--remote", is_flag=True,
              help="Remove from the registry: untag a tag; delete the manifest by digest or with -f.")
@tls_options
def remove_command(
    reference: str | None, force: bool, remove_all: bool, remote: bool, plain_http: bool, tls_verify: bool
) -> None:
    """Remove a ModelKit, or one of its tags, from the local store (or, with -r, from its registry)."""
    state = get_state()
    if remove_all == (reference is not None):
        raise click.UsageError("give either a REFERENCE or --all")
    if remote and remove_all:
        raise click.UsageError("--remote cannot be used with --all")
    warn_host_port(reference)
    if remote:
        from pymodelkit.registry.remote import remove_remote

        removals = [remove_remote(reference or "", force=force, plain_http=plain_http_setting(plain_http),
                                  tls_verify=tls_verify)]
    elif remove_all:
        removals = state.store().remove_all(force=force)
    else:
        removals = catalog.remove(reference or "", force=force, store=state.store())
    for removal in removals:
        repo = format_for_display(removal.repo_key)
        if removal.untagged_only:
            click.echo(f"Untagged {repo}:{removal.tag}")
        else:
            click.echo(f"Removed {repo}@{removal.digest}")


@click.command("diff")
@click.argument("first")
@click.argument("second")
def diff_command(first: str, second: str) -> None:
    """Compare two ModelKits of the local store."""
    warn_host_port(first, second)
    result = catalog.diff_modelkits(first, second, get_state().store())
    if result.identical:
        click.echo("ModelKits are identical")
        return
    click.echo(f"Config: {'same' if result.same_config else 'different'}")
    click.echo(f"Annotations: {'match' if result.annotations_match else 'differ'}")
    for title, layers in (
        ("Shared layers", result.shared_layers),
        (f"Layers only in {first}", result.only_in_a),
        (f"Layers only in {second}", result.only_in_b),
    ):
        click.echo(f"\n{title}:")
        click.echo(f"{'Type':<7} | {'Digest':<18} | Size")
        for layer in layers:
            kind = layer.media_type.rsplit("modelkit.", 1)[-1].split(".", 1)[0]
            click.echo(f"{kind:<7} | {str(layer.digest)[:17]:<18} | {catalog.format_bytes(layer.size)}")


@click.command("fsck")
def fsck_command() -> None:
    """Re-hash every blob of the local store and check every reference; exit non-zero on problems."""
    report = get_state().store().fsck()
    for stray in report.stray_ingest:
        click.echo(f"stray ingest file: {stray}")
    findings = [f"corrupt blob {digest} (used by {who})" for digest, who in report.corrupt_blobs]
    findings += [f"missing blob {digest} (used by {who})" for digest, who in report.missing_blobs]
    findings += report.problems
    for finding in findings:
        click.echo(f"problem: {finding}")
    if not report.ok:
        raise StoreError(f"local store has {len(findings)} problems (listed above)")
    click.echo("local store is consistent")


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be removed, remove nothing.")
def gc_command(dry_run: bool) -> None:
    """Remove blobs no ModelKit references, and stray ingest files."""
    report = get_state().store().gc(dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {len(report.removed)} blobs, {catalog.format_bytes(report.freed_bytes)}")
