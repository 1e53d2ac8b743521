"""``pymodelkit mlflow pack MODEL_URI``: one call of :func:`pymodelkit.mlflow.pack_mlflow_model`.

MLflow is the optional extra ``pymodelkit[mlflow]``: it is imported when the command runs, never when the CLI loads,
so ``pymodelkit --help`` works (and stays fast) without it.
"""

from __future__ import annotations

from pathlib import Path

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options
from pymodelkit.cli.sign import password_reader
from pymodelkit.errors import ModelKitError
from pymodelkit.pack.compression import COMPRESSION_CHOICES

__all__ = ["mlflow_group"]


@click.group("mlflow")
def mlflow_group() -> None:
    """Turn MLflow models into ModelKits (needs: pip install 'pymodelkit[mlflow]')."""


@mlflow_group.command("pack")
@click.argument("model_uri")
@click.option("-t", "--tag", default=None,
              help="[registry/]repository[:tag][,tag2...] for the ModelKit; no tag means 'latest'.")
@click.option("--push", "push_after", is_flag=True, default=False, help="Push the ModelKit to the tag's registry.")
@click.option("--tracking-uri", default=None,
              help="The MLflow tracking store. Default: MLflow's active one (MLFLOW_TRACKING_URI).")
@click.option("--registry-uri", default=None, help="The MLflow model registry. Default: the tracking store.")
@click.option("--name", default=None, help="Package name. Default: the registered (else logged) model's name.")
@click.option("--desc", "description", default=None, help="Package description. Default: the run's description.")
@click.option("--author", default=None, help="Package author. Default: the run's user.")
@click.option("--version", "package_version", default=None,
              help="Package version. Default: the registered model version.")
@click.option("--license", "license_id", default="", help="Package license (SPDX identifier).")
@click.option("--compression", type=click.Choice(COMPRESSION_CHOICES), default="none", show_default=True,
              help="Layer compression; only 'none' is byte-identical to kit.")
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="After --push, sign the pushed manifest with this private key (as `pymodelkit sign`).")
@tls_options
def mlflow_pack_command(
    model_uri: str,
    tag: str | None,
    push_after: bool,
    tracking_uri: str | None,
    registry_uri: str | None,
    name: str | None,
    description: str | None,
    author: str | None,
    package_version: str | None,
    license_id: str,
    compression: str,
    sign_key: Path | None,
    plain_http: bool,
    tls_verify: bool,
) -> None:
    """Pack the MLflow model MODEL_URI (models:/…, runs:/…, mlflow-artifacts:/…, file://… or a folder) as a
    ModelKit, with the run's params, metrics and ids inside; --push sends it to the tag's registry."""
    if push_after and not tag:
        raise click.UsageError("--push needs -t/--tag naming a registry, e.g. registry.example.com/team/model:v1")
    if sign_key is not None and not push_after:
        raise click.UsageError("--sign needs --push: a ModelKit is signed in its registry")
    try:
        from pymodelkit.mlflow import pack_mlflow_model
    except ImportError as err:
        raise ModelKitError(str(err)) from None
    state = get_state()
    result = pack_mlflow_model(
        model_uri,
        tag=tag,
        push=push_after,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        name=name,
        description=description,
        author=author,
        version=package_version,
        license=license_id,
        compression=compression,
        store=state.store(),
        plain_http=plain_http_setting(plain_http),
        tls_verify=tls_verify,
        on_progress=state.progress(),
        sign_key=sign_key,
        sign_password=password_reader(str(sign_key)) if sign_key is not None else None,
    )
    if state.quiet:
        return
    click.echo(f"Model saved: {result.digest}")
    if result.push is not None:
        click.echo(f"Pushed {result.push.reference}@{result.push.digest}")
    if result.signature is not None:
        click.echo(f"Signed {result.signature.reference} (tag {result.signature.signature_tag})")
    provenance = result.provenance
    if provenance.run_id:
        click.echo(f"MLflow run: {provenance.run_id} (experiment {provenance.experiment_name or '?'} "
                   f"{provenance.experiment_id or '?'}) at {provenance.tracking_uri}")
    if provenance.registered_name:
        click.echo(f"Registered model: {provenance.registered_name} version {provenance.registered_version}")
