"""``download_artifacts`` that does what the KitOps MLflow recipe means, on MLflow 3 as on MLflow 2.

The recipe calls ``mlflow.artifacts.download_artifacts(cur_run.info.run_id)``: MLflow reads the run id as an artifact
URI, and on MLflow 3 the model is not among the run's artifacts anyway (spec ``mlflow.md`` §8). This function takes
the same arguments as MLflow's; given a run id (positionally, as the recipe passes it, or as ``run_id=`` with no
``artifact_path``) it fetches that run's model — its logged model on MLflow 3, its ``model`` artifacts on MLflow 2 —
and it always downloads into a folder of ours (a new temp folder when ``dst_path`` is not given), never into MLflow's
own store, so a Kitfile written next to the model cannot land in ``mlruns/``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import mlflow.artifacts
from mlflow.exceptions import MlflowException

from pymodelkit.mlflow.resolve import download_error, fetch_model

__all__ = ["download_artifacts"]

_RUN_ID_RE = re.compile(r"[0-9a-f]{32}")


def download_artifacts(
    artifact_uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Download MLflow artifacts, or a run's model, into a local folder of ours and return its path.

    Args are MLflow's. A bare run id as ``artifact_uri``, or ``run_id`` without ``artifact_path``, means "this run's
    model". Raises :class:`~pymodelkit.errors.NotFoundError` when the run has no model or there is no such
    artifact, and a one-line :class:`~pymodelkit.errors.ModelKitError` for any other MLflow failure (never
    MLflow's own exception, whose message can run to many lines).
    """
    if artifact_uri is not None and run_id is None and _RUN_ID_RE.fullmatch(artifact_uri):
        artifact_uri, run_id = None, artifact_uri
    destination = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="pymodelkit-mlflow-"))
    if run_id is not None and artifact_uri is None and artifact_path is None:
        return str(fetch_model(f"runs:/{run_id}", destination / "model", tracking_uri=tracking_uri).path)
    destination.mkdir(parents=True, exist_ok=True)
    shown = artifact_uri if artifact_uri is not None else f"runs:/{run_id or ''}/{artifact_path or ''}"
    try:
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri,
                run_id=run_id,
                artifact_path=artifact_path,
                dst_path=str(destination),
                tracking_uri=tracking_uri,
            )
        )
    except (MlflowException, ImportError, OSError) as err:
        raise download_error(err, shown) from None
