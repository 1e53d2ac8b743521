"""``pymodelkit mlflow pack``: the command's output and its usage errors (the group is run on its own)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import pymodelkit
from pymodelkit.cli.mlflow import mlflow_group
from pymodelkit.store import LocalStore
from tests.mlflow.world import REGISTERED_NAME, MlflowWorld
from tests.support.registry import TestRegistry


def test_mlflow_pack_command(world: MlflowWorld, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        mlflow_group,
        ["pack", f"models:/{REGISTERED_NAME}/1", "-t", "cli/iris:v1", "--tracking-uri", world.tracking_uri,
         "--name", "iris-cli", "--author", "Ada", "--license", "Apache-2.0"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    digest = pymodelkit.list_modelkits()[0].digest
    assert result.output == (
        f"Model saved: {digest}\n"
        f"MLflow run: {world.skops_run_id} (experiment pymodelkit-bridge {world.experiment_id}) "
        f"at {world.tracking_uri}\n"
        f"Registered model: {REGISTERED_NAME} version 1\n"
    )
    kitfile = pymodelkit.info("cli/iris:v1")
    assert (kitfile.package.name, kitfile.package.authors, kitfile.package.license) == ("iris-cli", ["Ada"],
                                                                                         "Apache-2.0")


def test_mlflow_pack_push_needs_tag(world: MlflowWorld) -> None:
    result = CliRunner().invoke(mlflow_group, ["pack", f"models:/{REGISTERED_NAME}/1", "--push"])
    assert result.exit_code == 2
    assert "--push needs -t/--tag naming a registry" in result.output


def test_mlflow_pack_push(world: MlflowWorld, registry: TestRegistry) -> None:
    ref = f"{registry.host}/pymodelkit-mlflow/cli:v1"
    result = CliRunner().invoke(mlflow_group, ["pack", f"runs:/{world.mlflow2_run_id}/model", "-t", ref, "--push"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    digest = pymodelkit.list_modelkits()[0].digest
    assert result.output.splitlines()[:2] == [f"Model saved: {digest}", f"Pushed {ref}@{digest}"]
    assert pymodelkit.pull(ref, store=LocalStore(world.root / "cli-pull")).digest == digest
