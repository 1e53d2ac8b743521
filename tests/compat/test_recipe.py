"""The headline: KitOps' MLflow recipe (``kitops-ml/kitops@a041892:docs/src/docs/integrations/mlflow.md``), as
written, with only the imports changed from ``kitops`` to ``pymodelkit.compat.kitops``, against the real test
registry and a real MLflow sqlite tracking store; then pull, unpack and load the model back with MLflow.

The recipe's one MLflow line, ``mlflow.artifacts.download_artifacts(cur_run.info.run_id)``, fails on MLflow 3 twice
over (spec ``mlflow.md`` §8): the run id is read as an artifact URI, and the model is no longer among the run's
artifacts. The test shows that, then makes the same call to ``pymodelkit.mlflow.artifacts.download_artifacts`` (same
arguments; a run id means the run's model, downloaded into a folder of ours so the Kitfile never lands in MLflow's
store). The pykitops lines are untouched; ``kit.init`` recognising the ``MLmodel`` folder as the model is
pymodelkit's generator doing its job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.registry import TestRegistry

pytestmark = [
    pytest.mark.mlflow,
    # MLflow's own import-time and logging warnings (type hints, pip inference, deprecations) are not ours
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow"),
]


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh sqlite tracking store in a temp dir (artifacts under its ``mlruns/``), MLflow's cwd there."""
    store = tmp_path / "mlflow"
    store.mkdir()
    monkeypatch.chdir(store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    return store


def test_the_ten_line_recipe_as_written(registry_basic: TestRegistry, tracking: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import mlflow.artifacts
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    # --- train and log, as any MLflow user does ---------------------------------------------------------------
    features, labels = load_iris(return_X_y=True)
    with mlflow.start_run() as cur_run:
        model = LogisticRegression(max_iter=500).fit(features, labels)
        mlflow.log_param("max_iter", 500)
        model_info = mlflow.sklearn.log_model(model, name="model", input_example=features[:2])
    expected = model.predict(features)

    # The recipe's download line, as written, fails on MLflow 3. pymodelkit's download_artifacts takes the same
    # arguments and does what the recipe means: the run's model, into a folder of ours.
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.artifacts.download_artifacts(cur_run.info.run_id)
    from pymodelkit.mlflow.artifacts import download_artifacts

    artifact_location = download_artifacts(cur_run.info.run_id)
    assert Path(artifact_location, "MLmodel").is_file()
    assert model_info.model_id in Path(artifact_location, "MLmodel").read_text()

    # --- the recipe (kitops-ml/kitops docs/src/docs/integrations/mlflow.md), imports changed only -------------
    assert registry_basic.username and registry_basic.password
    username = registry_basic.username
    monkeypatch.setenv("JOZU_PASSWORD", registry_basic.password)  # "A password can be read from Environment ..."
    modelkit_tag = f"{registry_basic.host}/recipe/iris:v1"
    name = "iris-classifier"

    from pymodelkit.compat.kitops.cli import kit
    from pymodelkit.compat.kitops.modelkit.manager import ModelKitManager
    from pymodelkit.compat.kitops.modelkit.user import UserCredentials

    creds = UserCredentials(username=username, registry="jozu.ml")
    manager = ModelKitManager(working_directory=artifact_location, user_credentials=creds, modelkit_tag=modelkit_tag)
    manager.login()
    kit.init(directory=artifact_location, name=name, description="my cool project", author=username)
    manager.pack_and_push_modelkit(with_login_and_logout=False)

    # --- what landed in the registry, and MLflow loading it from a clean folder ---------------------------------
    info = kit.info(modelkit_tag, remote=True)
    assert info["package"] == {"name": name, "description": "my cool project", "authors": [username]}
    assert info["model"]["path"] == "." and info["model"]["framework"] == "scikit-learn"
    kit.remove(modelkit_tag)  # so that the pull below really comes from the registry
    clean = tmp_path / "deploy"
    ModelKitManager(working_directory=str(clean), user_credentials=creds, modelkit_tag=modelkit_tag) \
        .pull_and_unpack_modelkit(with_login_and_logout=False)
    assert {p.name for p in clean.iterdir()} >= {"MLmodel", "Kitfile", "model.skops", "requirements.txt"}
    loaded = mlflow.pyfunc.load_model(str(clean))
    assert np.array_equal(loaded.predict(features), expected)
    assert list(tracking.rglob("Kitfile")) == []  # nothing written into MLflow's store
