"""MLflow → ModelKit: one call turns a model MLflow logged (any URI it understands) into a ModelKit with the run's
provenance, optionally pushed. The optional extra ``pymodelkit[mlflow]``; the core never imports this package::

    from pymodelkit.mlflow import pack_mlflow_model

    result = pack_mlflow_model("models:/churn/3", tag="registry.example.com/team/churn:v3", push=True)
    print(result.digest, result.provenance.run_id)
"""

from __future__ import annotations

try:
    import mlflow as _mlflow  # noqa: F401  (the extra's one dependency; fail here, with the fix, if it is missing)
except ImportError:
    raise ImportError("pymodelkit.mlflow needs MLflow: pip install 'pymodelkit[mlflow]'") from None

from pymodelkit.mlflow.bridge import MODEL_DIR, MlflowPackResult, pack_mlflow_model
from pymodelkit.mlflow.provenance import (
    ANNOTATION_FIELDS,
    ANNOTATION_PREFIX,
    PARAMETERS_KEY,
    Provenance,
    fetch_provenance,
    read_provenance_annotations,
    redact_uri,
)
from pymodelkit.mlflow.resolve import ModelOrigin, ResolvedModel, check_tracking_store, fetch_model

__all__ = [
    "ANNOTATION_FIELDS",
    "ANNOTATION_PREFIX",
    "MODEL_DIR",
    "PARAMETERS_KEY",
    "MlflowPackResult",
    "ModelOrigin",
    "Provenance",
    "ResolvedModel",
    "check_tracking_store",
    "fetch_model",
    "fetch_provenance",
    "pack_mlflow_model",
    "read_provenance_annotations",
    "redact_uri",
]
