"""Fixtures for the MLflow bridge's tests: the session's real MLflow store (``tests/mlflow/world.py``), made the
active one per test through ``MLFLOW_TRACKING_URI``, so nothing touches the working directory's ``mlruns`` or
``mlflow.db``. Every test here is marked ``mlflow``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # MLflow warns about its own type hints at import, before any mark applies
    warnings.simplefilter("ignore")
    import mlflow.pyfunc
    import mlflow.sklearn  # noqa: F401

from tests.mlflow.world import CODE_MODULE, MLFLOW_WARNING_FILTERS, MlflowWorld, log_models


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is an ``mlflow`` test and ignores MLflow's own warnings."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.mlflow)
            for spec in MLFLOW_WARNING_FILTERS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def mlflow_world(tmp_path_factory: pytest.TempPathFactory) -> MlflowWorld:
    """Train once, log everything into a fresh sqlite store; the environment is restored afterwards."""
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.chdir(root)  # anything MLflow writes relative to the cwd lands here
        return log_models(root, tracking_uri, mp)


@pytest.fixture
def world(mlflow_world: MlflowWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MlflowWorld:
    """The session's MLflow store, made the active one for this test (cwd: this test's ``tmp_path``)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_world.tracking_uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    monkeypatch.chdir(tmp_path)
    return mlflow_world


@pytest.fixture
def clean_code_module() -> Iterator[None]:
    """Forget the code_paths module (and the paths MLflow added for it) after a test that loads the pyfunc model."""
    before = list(sys.path)
    yield
    sys.modules.pop(CODE_MODULE, None)
    sys.path[:] = before
