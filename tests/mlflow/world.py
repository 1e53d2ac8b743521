"""The MLflow world the bridge's tests share: one sqlite tracking store with its artifacts in a temp dir, and the
models logged into it (trained and logged once per session: logging is the slow part).

Models: an MLflow 3 logged sklearn model in skops format (registered, version 1, alias ``champion``) and one in
pickle format; an MLflow 2 style model (``save_model`` + ``log_artifacts`` into the run, no logged model); a pyfunc
model whose class lives in a ``code_paths`` module; a run with params only.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# MLflow, SQLAlchemy and pandas warn about their own internals; the project's filterwarnings=error stays on for ours.
MLFLOW_WARNING_FILTERS = (
    "ignore::DeprecationWarning:mlflow",  # e.g. SQLAlchemy's noload, raised from MLflow's sqlalchemy store
    "ignore::FutureWarning:mlflow",
    "ignore::UserWarning:mlflow",
)
CODE_MODULE = "pmk_test_iris_rules"
REGISTERED_NAME = "iris-skops"
ALIAS = "champion"
PIP_REQUIREMENTS = ["mlflow", "scikit-learn", "pandas", "skops"]  # given: inferring them costs seconds per model

_RULES_SOURCE = f'''
"""A pyfunc model whose code is packed through code_paths ({CODE_MODULE})."""
import mlflow.pyfunc
import pandas as pd


def petal_rule(frame):
    return (frame["petal length (cm)"] > 2.5).astype(int) + (frame["petal width (cm)"] > 1.7).astype(int)


class PetalRule(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return petal_rule(model_input)
'''


@dataclass(frozen=True)
class MlflowWorld:
    """The session's tracking store and what was logged into it."""

    root: Path
    tracking_uri: str
    experiment_id: str
    experiment_name: str
    features: Any  # the iris features (a pandas DataFrame)
    expected: Any  # the sklearn model's predictions on ``features``
    expected_rule: Any  # the pyfunc model's predictions on ``features``
    expected_accuracy: float
    skops_run_id: str
    skops_model_id: str
    pickle_run_id: str
    pickle_model_id: str
    mlflow2_run_id: str
    mlflow2_dir: Path  # the saved (MLflow 2 style) model folder itself
    pyfunc_run_id: str
    pyfunc_model_id: str
    empty_run_id: str


def log_models(root: Path, tracking_uri: str, mp: pytest.MonkeyPatch) -> MlflowWorld:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    client = mlflow.MlflowClient(tracking_uri)
    name = "pymodelkit-bridge"
    experiment_id = client.create_experiment(name, artifact_location=(root / "artifacts").as_uri())
    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(C=0.5, max_iter=500).fit(features, target)

    with mlflow.start_run(experiment_id=experiment_id, run_name="skops-run", description="Iris, skops") as run:
        mlflow.log_params({"C": 0.5, "max_iter": 500})
        mlflow.log_metric("accuracy", float(model.score(features, target)))
        mlflow.log_metric("loss", float("nan"))
        mlflow.set_tag("mlflow.source.git.commit", "0123456789abcdef0123456789abcdef01234567")
        skops = mlflow.sklearn.log_model(model, name="iris", pip_requirements=PIP_REQUIREMENTS,
                                         registered_model_name=REGISTERED_NAME)
        skops_run = run.info.run_id
    client.set_registered_model_alias(REGISTERED_NAME, ALIAS, "1")

    with mlflow.start_run(experiment_id=experiment_id, run_name="pickle-run") as run:
        mlflow.log_param("format", "pickle")
        pickled = mlflow.sklearn.log_model(model, name="pickled", serialization_format="pickle",
                                           pip_requirements=PIP_REQUIREMENTS)
        pickle_run = run.info.run_id

    mlflow2_dir = root / "saved" / "model"
    mlflow.sklearn.save_model(model, str(mlflow2_dir), pip_requirements=PIP_REQUIREMENTS)
    with mlflow.start_run(experiment_id=experiment_id, run_name="mlflow2-run") as run:
        mlflow.log_param("layout", "mlflow2")
        mlflow.log_artifacts(str(mlflow2_dir), artifact_path="model")
        mlflow2_run = run.info.run_id

    code_dir = root / "code-src"
    code_dir.mkdir()
    code_file = code_dir / f"{CODE_MODULE}.py"
    code_file.write_text(textwrap.dedent(_RULES_SOURCE))
    mp.syspath_prepend(str(code_dir))
    rules = __import__(CODE_MODULE)
    expected_rule = rules.petal_rule(features).to_numpy()
    with mlflow.start_run(experiment_id=experiment_id, run_name="pyfunc-run") as run:
        wrapped = mlflow.pyfunc.log_model(name="rules", python_model=rules.PetalRule(), code_paths=[str(code_file)],
                                          pip_requirements=PIP_REQUIREMENTS)
        pyfunc_run = run.info.run_id
    sys.modules.pop(CODE_MODULE, None)  # the tests must load it from the packed model's code/

    with mlflow.start_run(experiment_id=experiment_id, run_name="no-model-run") as run:
        mlflow.log_param("nothing", "logged")
        empty_run = run.info.run_id

    return MlflowWorld(
        root=root,
        tracking_uri=tracking_uri,
        experiment_id=str(experiment_id),
        experiment_name=name,
        features=features,
        expected=model.predict(features),
        expected_accuracy=float(model.score(features, target)),
        expected_rule=expected_rule,
        skops_run_id=skops_run,
        skops_model_id=str(skops.model_id),
        pickle_run_id=pickle_run,
        pickle_model_id=str(pickled.model_id),
        mlflow2_run_id=mlflow2_run,
        mlflow2_dir=mlflow2_dir,
        pyfunc_run_id=pyfunc_run,
        pyfunc_model_id=str(wrapped.model_id),
        empty_run_id=empty_run,
    )
