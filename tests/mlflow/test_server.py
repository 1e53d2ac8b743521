"""The bridge against a real ``mlflow server`` (sqlite backend, proxied artifacts): ``mlflow-artifacts:/`` URIs, and
``runs:/``/``models:/`` resolved through an explicit ``tracking_uri`` while the environment names another store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.pyfunc import load_model
from sklearn.linear_model import LogisticRegression

import pymodelkit
from pymodelkit.mlflow import pack_mlflow_model
from tests.mlflow.world import PIP_REQUIREMENTS, MlflowWorld

START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Server:
    url: str
    run_id: str
    model_id: str
    artifact_location: str  # mlflow-artifacts:/…
    expected: Any  # the served model's predictions on the iris features


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()[-2000:]}", pytrace=False)
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"mlflow server not ready after {START_TIMEOUT_S:g} s: {log.read_text()[-2000:]}", pytrace=False)


@pytest.fixture(scope="module")
def server(mlflow_world: MlflowWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("mlflow-server")
    url = f"http://127.0.0.1:{_free_port()}"
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1],
             "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
             "--artifacts-destination", str(root / "artifacts")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=root, start_new_session=True,
        )
    try:
        _wait_ready(url, proc, log)
        model = LogisticRegression(C=0.05, max_iter=500).fit(mlflow_world.features, mlflow_world.expected)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", url)
            with mlflow.start_run(run_name="server-run") as run:
                mlflow.log_param("where", "server")
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP_REQUIREMENTS,
                                                registered_model_name="served")
            location = mlflow.MlflowClient(url).get_logged_model(info.model_id).artifact_location
        yield Server(url=url, run_id=run.info.run_id, model_id=str(info.model_id), artifact_location=location,
                     expected=model.predict(mlflow_world.features))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_mlflow_artifacts_uri(world: MlflowWorld, server: Server, tmp_path: Path) -> None:
    assert server.artifact_location.startswith("mlflow-artifacts:/")
    result = pack_mlflow_model(server.artifact_location, tag="server/iris:artifacts", tracking_uri=server.url)
    assert (result.provenance.run_id, result.provenance.model_id) == (server.run_id, server.model_id)
    assert result.provenance.params == {"where": "server"}
    assert result.provenance.tracking_uri == server.url
    pymodelkit.unpack("server/iris:artifacts", tmp_path / "out")
    assert np.array_equal(load_model(str(tmp_path / "out" / "model")).predict(world.features), server.expected)


def test_explicit_tracking_uri_wins_over_the_environment(world: MlflowWorld, server: Server) -> None:
    assert os.environ["MLFLOW_TRACKING_URI"] == world.tracking_uri  # the sqlite world: it has no "served" model
    by_run = pack_mlflow_model(f"runs:/{server.run_id}/model", tracking_uri=server.url)
    by_name = pack_mlflow_model("models:/served/1", tracking_uri=server.url)
    assert by_run.provenance.model_id == by_name.provenance.model_id == server.model_id
    assert by_name.provenance.registered_name == "served"
    assert by_run.pack.manifest.layers is not None and by_name.pack.manifest.layers is not None
    assert by_run.pack.manifest.layers[0].digest != by_name.pack.manifest.layers[0].digest  # + registered_model_meta
