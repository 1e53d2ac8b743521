"""Provenance values: the documented parameters shape, the annotation keys, credentials stripped from URIs."""

from __future__ import annotations

import pytest

from pymodelkit.mlflow import ANNOTATION_PREFIX, Provenance, read_provenance_annotations, redact_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////tmp/x/mlflow.db", "sqlite:////tmp/x/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://ada:s3cret@mlflow.example.com/", "https://mlflow.example.com/"),
        ("postgresql://ml:pw@db.internal:5432/mlflow", "postgresql://db.internal:5432/mlflow"),
        ("https://mlflow.example.com/api?token=abc&workspace=7#top", "https://mlflow.example.com/api?workspace=7#top"),
        ("s3://bucket/path?X-Amz-Signature=ff&X-Amz-Credential=k&part=1", "s3://bucket/path?part=1"),
        ("models:/churn@champion", "models:/churn@champion"),
        ("/srv/models/churn", "/srv/models/churn"),
        ("databricks", "databricks"),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_parameters_and_annotations_shape() -> None:
    provenance = Provenance(
        tracking_uri="http://mlflow:5000",
        source_uri="models:/churn/3",
        experiment_id="4",
        experiment_name="churn",
        run_id="r" * 32,
        run_name="brave-owl",
        model_id="m-" + "a" * 32,
        model_name="model",
        registered_name="churn",
        registered_version="3",
        user="ada",
        description="nightly",
        params={"alpha": "0.5"},
        metrics={"rmse": 0.25, "loss": "nan"},
    )
    assert provenance.to_parameters() == {
        "mlflow": {
            "tracking_uri": "http://mlflow:5000",
            "experiment_id": "4",
            "experiment_name": "churn",
            "run_id": "r" * 32,
            "run_name": "brave-owl",
            "model_id": "m-" + "a" * 32,
            "model_name": "model",
            "registered_model": {"name": "churn", "version": "3"},
            "params": {"alpha": "0.5"},
            "metrics": {"rmse": 0.25, "loss": "nan"},
        }
    }
    annotations = provenance.to_annotations()
    assert annotations == {
        "dev.pymodelkit.mlflow.tracking-uri": "http://mlflow:5000",
        "dev.pymodelkit.mlflow.source-uri": "models:/churn/3",
        "dev.pymodelkit.mlflow.experiment-id": "4",
        "dev.pymodelkit.mlflow.experiment-name": "churn",
        "dev.pymodelkit.mlflow.run-id": "r" * 32,
        "dev.pymodelkit.mlflow.run-name": "brave-owl",
        "dev.pymodelkit.mlflow.model-id": "m-" + "a" * 32,
        "dev.pymodelkit.mlflow.model-name": "model",
        "dev.pymodelkit.mlflow.registered-model-name": "churn",
        "dev.pymodelkit.mlflow.registered-model-version": "3",
    }
    other = {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    assert read_provenance_annotations({**annotations, **other})["run-id"] == "r" * 32
    assert all(key.startswith(ANNOTATION_PREFIX) for key in annotations)


def test_empty_provenance_keeps_params_and_metrics() -> None:
    assert Provenance().to_parameters() == {"mlflow": {"params": {}, "metrics": {}}}
    assert Provenance().to_annotations() == {}
