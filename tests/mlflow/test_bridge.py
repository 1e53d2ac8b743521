"""pack_mlflow_model end to end with real MLflow: every layout packed, unpacked into a clean folder and loaded with
``mlflow.pyfunc.load_model`` giving the original predictions; provenance in the Kitfile and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.pyfunc import PyFuncModel, load_model

import pymodelkit
from pymodelkit.errors import InvalidReferenceError, ModelKitError, PackError
from pymodelkit.mlflow import ANNOTATION_PREFIX, MlflowPackResult, pack_mlflow_model, read_provenance_annotations
from pymodelkit.store import LocalStore
from tests.mlflow.world import ALIAS, CODE_MODULE, REGISTERED_NAME, MlflowWorld
from tests.support.registry import TestRegistry

P = ANNOTATION_PREFIX


def _unpack_and_load(reference: str, target: Path, store: LocalStore | None = None) -> PyFuncModel:
    result = pymodelkit.unpack(reference, target, store=store)
    assert (target / "Kitfile").is_file()
    assert result is not None
    return load_model(str(target / "model"))


def _annotations(result: MlflowPackResult) -> dict[str, str]:
    return dict(result.pack.manifest.annotations or {})


def test_logged_skops_model_by_model_id(world: MlflowWorld, tmp_path: Path) -> None:
    result = pack_mlflow_model(f"models:/{world.skops_model_id}", tag="mlflow/iris:skops")
    loaded = _unpack_and_load("mlflow/iris:skops", tmp_path / "out")
    assert np.array_equal(loaded.predict(world.features), world.expected)

    files = sorted(p.name for p in (tmp_path / "out" / "model").iterdir())
    assert files == ["MLmodel", "conda.yaml", "model.skops", "python_env.yaml", "requirements.txt"]
    model = result.kitfile.model
    assert model is not None
    assert (model.name, model.path, model.framework, model.format) == ("iris", "model/", "scikit-learn", "skops")
    assert model.parameters == {
        "mlflow": {
            "tracking_uri": world.tracking_uri,
            "experiment_id": world.experiment_id,
            "experiment_name": "pymodelkit-bridge",
            "run_id": world.skops_run_id,
            "run_name": "skops-run",
            "model_id": world.skops_model_id,
            "model_name": "iris",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "mlflow_version": mlflow.__version__,
            "params": {"C": "0.5", "max_iter": "500"},
            "metrics": {"accuracy": pytest.approx(world.expected_accuracy), "loss": "nan"},
        }
    }
    assert (result.kitfile.package.name, result.kitfile.package.description) == ("iris", "Iris, skops")
    annotations = _annotations(result)
    assert {k: v for k, v in annotations.items() if k.startswith(P)} == {
        P + "tracking-uri": world.tracking_uri,
        P + "source-uri": f"models:/{world.skops_model_id}",
        P + "experiment-id": world.experiment_id,
        P + "experiment-name": "pymodelkit-bridge",
        P + "run-id": world.skops_run_id,
        P + "run-name": "skops-run",
        P + "model-id": world.skops_model_id,
        P + "model-name": "iris",
        P + "git-commit": "0123456789abcdef0123456789abcdef01234567",
        P + "mlflow-version": mlflow.__version__,
    }
    assert set(annotations) - {k for k in annotations if k.startswith(P)} == {
        "dev.pymodelkit.version", "org.opencontainers.image.created",
    }
    # info and inspect lead back to the run
    assert pymodelkit.info("mlflow/iris:skops").model.parameters["mlflow"]["run_id"] == world.skops_run_id  # type: ignore[union-attr,index]
    inspected = json.loads(pymodelkit.inspect("mlflow/iris:skops"))
    assert read_provenance_annotations(inspected["manifest"]["annotations"])["run-id"] == world.skops_run_id


def test_logged_pickle_model_by_runs_uri(world: MlflowWorld, tmp_path: Path) -> None:
    result = pack_mlflow_model(f"runs:/{world.pickle_run_id}/pickled", tag="mlflow/iris:pickle")
    loaded = _unpack_and_load("mlflow/iris:pickle", tmp_path / "out")
    assert np.array_equal(loaded.predict(world.features), world.expected)
    assert (tmp_path / "out" / "model" / "model.pkl").is_file()
    model = result.kitfile.model
    assert model is not None
    assert (model.name, model.framework, model.format) == ("pickled", "scikit-learn", "pickle")
    assert result.provenance.model_id == world.pickle_model_id
    assert result.provenance.params == {"format": "pickle"}
    assert _annotations(result)[P + "model-id"] == world.pickle_model_id


def test_registered_version_and_alias(world: MlflowWorld, tmp_path: Path) -> None:
    by_version = pack_mlflow_model(f"models:/{REGISTERED_NAME}/1", tag="mlflow/registered:v1")
    by_alias = pack_mlflow_model(f"models:/{REGISTERED_NAME}@{ALIAS}", tag="mlflow/registered:champion")
    by_latest = pack_mlflow_model(f"models:/{REGISTERED_NAME}/latest")

    assert by_version.kitfile.package.name == REGISTERED_NAME and by_version.kitfile.package.version == "1"
    assert by_version.provenance.run_id == by_alias.provenance.run_id == world.skops_run_id
    assert by_version.provenance.model_id == by_latest.provenance.model_id == world.skops_model_id
    version_annotations, alias_annotations = _annotations(by_version), _annotations(by_alias)
    assert version_annotations[P + "registered-model-name"] == REGISTERED_NAME
    assert version_annotations[P + "registered-model-version"] == "1"
    assert P + "registered-model-alias" not in version_annotations
    assert alias_annotations[P + "registered-model-alias"] == ALIAS
    assert alias_annotations[P + "registered-model-version"] == "1"
    assert by_alias.kitfile.model is not None
    assert by_alias.kitfile.model.parameters["mlflow"]["registered_model"] == {  # type: ignore[index]
        "name": REGISTERED_NAME, "version": "1", "alias": ALIAS,
    }
    # the layer is the same model files either way, plus MLflow's registered_model_meta
    assert by_version.pack.manifest.layers == by_alias.pack.manifest.layers

    loaded = _unpack_and_load("mlflow/registered:champion", tmp_path / "out")
    assert np.array_equal(loaded.predict(world.features), world.expected)
    meta = (tmp_path / "out" / "model" / "registered_model_meta").read_text()
    assert meta == f"model_name: {REGISTERED_NAME}\nmodel_version: '1'\n"


def test_mlflow2_run_artifacts(world: MlflowWorld, tmp_path: Path) -> None:
    result = pack_mlflow_model(f"runs:/{world.mlflow2_run_id}/model", tag="mlflow/iris:mlflow2")
    loaded = _unpack_and_load("mlflow/iris:mlflow2", tmp_path / "out")
    assert np.array_equal(loaded.predict(world.features), world.expected)
    assert result.provenance.run_id == world.mlflow2_run_id
    assert result.provenance.model_id == ""
    assert result.provenance.params == {"layout": "mlflow2"}
    model = result.kitfile.model
    assert model is not None and (model.name, model.path, model.format) == ("model", "model/", "skops")
    assert P + "model-id" not in _annotations(result)
    assert _annotations(result)[P + "run-id"] == world.mlflow2_run_id


def test_pyfunc_model_with_code_paths(world: MlflowWorld, tmp_path: Path, clean_code_module: None) -> None:
    result = pack_mlflow_model(f"models:/{world.pyfunc_model_id}", tag="mlflow/rules:v1")
    loaded = _unpack_and_load("mlflow/rules:v1", tmp_path / "out")
    assert (tmp_path / "out" / "model" / "code" / f"{CODE_MODULE}.py").is_file()
    assert np.array_equal(np.asarray(loaded.predict(world.features)), world.expected_rule)
    model = result.kitfile.model
    assert model is not None and (model.framework, model.format) == ("pyfunc", "cloudpickle")


def test_local_folder_and_file_uri(world: MlflowWorld, tmp_path: Path) -> None:
    by_path = pack_mlflow_model(str(world.mlflow2_dir), tag="mlflow/local:path")
    by_uri = pack_mlflow_model(world.mlflow2_dir.as_uri(), tag="mlflow/local:uri")
    assert by_path.pack.manifest.layers == by_uri.pack.manifest.layers
    assert by_path.provenance.run_id == "" and by_path.provenance.source_uri == str(world.mlflow2_dir)
    assert sorted(p.name for p in world.mlflow2_dir.iterdir()) == [  # MLflow's folder is left as it was
        "MLmodel", "conda.yaml", "model.skops", "python_env.yaml", "requirements.txt",
    ]
    loaded = _unpack_and_load("mlflow/local:uri", tmp_path / "out")
    assert np.array_equal(loaded.predict(world.features), world.expected)


def test_never_writes_into_mlflow_store(world: MlflowWorld) -> None:
    artifacts = world.root / "artifacts"
    before = {p: p.stat().st_mtime_ns for p in artifacts.rglob("*")}
    pack_mlflow_model(f"models:/{REGISTERED_NAME}/1")
    pack_mlflow_model(f"runs:/{world.mlflow2_run_id}/model")
    assert {p: p.stat().st_mtime_ns for p in artifacts.rglob("*")} == before
    assert not list(Path.cwd().iterdir())  # no mlruns/, mlflow.db or Kitfile in the working directory


def test_workdir_is_kept_and_must_be_empty(world: MlflowWorld, tmp_path: Path) -> None:
    work = tmp_path / "work"
    result = pack_mlflow_model(f"models:/{world.skops_model_id}", workdir=work)
    assert result.workdir == work
    assert sorted(p.name for p in work.iterdir()) == ["Kitfile", "model"]
    assert "path: model/" in (work / "Kitfile").read_text()
    assert result.reference is None
    with pytest.raises(ModelKitError) as caught:
        pack_mlflow_model(f"models:/{world.skops_model_id}", workdir=work)
    assert str(caught.value) == f"work folder {work} is not empty"


def test_push_needs_a_registry_tag(world: MlflowWorld) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        pack_mlflow_model(f"models:/{world.skops_model_id}", push=True)
    assert str(caught.value) == "push=True needs a tag naming a registry (e.g. registry.example.com/ns/m:v1)"
    with pytest.raises(InvalidReferenceError) as caught:
        pack_mlflow_model(f"models:/{world.skops_model_id}", tag="local/only:v1", push=True)
    assert str(caught.value) == "cannot push local/only:v1: the tag names no registry host"


def test_push_pull_round_trip(world: MlflowWorld, registry: TestRegistry, tmp_path: Path) -> None:
    ref = f"{registry.host}/pymodelkit-mlflow/iris:v1"
    result = pack_mlflow_model(f"models:/{REGISTERED_NAME}@{ALIAS}", tag=ref, push=True)
    assert result.push is not None and result.push.digest == result.digest

    clean = LocalStore(tmp_path / "clean-home")
    pulled = pymodelkit.pull(ref, store=clean)
    assert pulled.digest == result.digest
    assert read_provenance_annotations(pulled.manifest.annotations) == {
        "tracking-uri": world.tracking_uri,
        "source-uri": f"models:/{REGISTERED_NAME}@{ALIAS}",
        "experiment-id": world.experiment_id,
        "experiment-name": "pymodelkit-bridge",
        "run-id": world.skops_run_id,
        "run-name": "skops-run",
        "model-id": world.skops_model_id,
        "model-name": "iris",
        "registered-model-name": REGISTERED_NAME,
        "registered-model-version": "1",
        "registered-model-alias": ALIAS,
        "git-commit": "0123456789abcdef0123456789abcdef01234567",
        "mlflow-version": mlflow.__version__,
    }
    loaded = _unpack_and_load(ref, tmp_path / "deploy", store=clean)
    assert np.array_equal(loaded.predict(world.features), world.expected)


def test_pack_annotations_cannot_override_pack_own(tmp_path: Path) -> None:
    (tmp_path / "Kitfile").write_text("manifestVersion: 1.0.0\n")
    with pytest.raises(PackError) as caught:
        pymodelkit.pack(tmp_path, annotations={"org.opencontainers.image.created": "1970-01-01T00:00:00Z"})
    assert str(caught.value) == "annotation org.opencontainers.image.created is set by pack and cannot be given"
    result = pymodelkit.pack(tmp_path, annotations={P + "run-id": "r1"})
    assert (result.manifest.annotations or {})[P + "run-id"] == "r1"
