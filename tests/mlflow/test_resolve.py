"""fetch_model and the bridge's errors with real MLflow: each bad input gets its one-line error class and message."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pymodelkit.errors import ModelKitError, NotFoundError
from pymodelkit.kitfile.mlmodel import load_mlmodel_document
from pymodelkit.mlflow import ModelOrigin, bridge, check_tracking_store, fetch_model, pack_mlflow_model, resolve
from tests.mlflow.world import ALIAS, REGISTERED_NAME, MlflowWorld

MISSING_RUN = "0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fetch_model_by_alias_writes_registered_meta(world: MlflowWorld, tmp_path: Path) -> None:
    resolved = fetch_model(f"models:/{REGISTERED_NAME}@{ALIAS}", tmp_path / "m")
    assert resolved.path == tmp_path / "m"
    assert resolved.origin == ModelOrigin(
        run_id=world.skops_run_id, model_id=world.skops_model_id, registered_name=REGISTERED_NAME,
        registered_version="1", registered_alias=ALIAS,
    )
    assert resolved.mlmodel["model_id"] == world.skops_model_id
    assert sorted(p.name for p in resolved.path.iterdir()) == [
        "MLmodel", "conda.yaml", "model.skops", "python_env.yaml", "registered_model_meta", "requirements.txt",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # the download folder is gone


def test_fetch_model_run_without_path_takes_its_only_logged_model(world: MlflowWorld, tmp_path: Path) -> None:
    resolved = fetch_model(f"runs:/{world.pickle_run_id}", tmp_path / "m")
    assert resolved.origin == ModelOrigin(run_id=world.pickle_run_id, model_id=world.pickle_model_id,
                                          model_name="pickled", experiment_id=world.experiment_id)
    assert (resolved.path / "model.pkl").is_file()


def test_fetch_model_finds_the_only_model_below_a_folder(world: MlflowWorld, tmp_path: Path) -> None:
    resolved = fetch_model(str(world.mlflow2_dir.parent), tmp_path / "m")
    assert (resolved.path / "MLmodel").is_file() and resolved.origin == ModelOrigin()


def test_fetch_model_refuses_an_existing_destination(world: MlflowWorld, tmp_path: Path) -> None:
    with pytest.raises(ModelKitError) as caught:
        fetch_model(str(world.mlflow2_dir), tmp_path)
    assert str(caught.value) == f"destination {tmp_path} exists already"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/m-00000000000000000000000000000000",
         "MLflow model not found: models:/m-00000000000000000000000000000000: "
         "no logged model with id 'm-00000000000000000000000000000000'"),
        (f"models:/{REGISTERED_NAME}/7",
         f"MLflow model not found: models:/{REGISTERED_NAME}/7: registered model '{REGISTERED_NAME}' has no version 7"),
        ("models:/no-such-model/1",
         "MLflow model not found: models:/no-such-model/1: registered model 'no-such-model' has no version 1"),
        (f"models:/{REGISTERED_NAME}@staging",
         f"MLflow model not found: models:/{REGISTERED_NAME}@staging: "
         f"registered model '{REGISTERED_NAME}' has no alias 'staging'"),
        ("models:/no-such-model/latest",
         "MLflow model not found: models:/no-such-model/latest: registered model 'no-such-model' has no versions"),
        (f"runs:/{MISSING_RUN}/model",
         f"MLflow model not found: runs:/{MISSING_RUN}/model: no run with id '{MISSING_RUN}'"),
    ],
)
def test_uri_that_does_not_exist(world: MlflowWorld, uri: str, message: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(uri, tag="mlflow/missing:v1")
    assert str(caught.value) == message


def test_run_with_no_logged_model(world: MlflowWorld) -> None:
    run = world.empty_run_id
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(f"runs:/{run}/model")
    assert str(caught.value) == f"MLflow run {run} has no logged model (and no model artifacts at 'model')"
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(f"runs:/{run}")
    assert str(caught.value) == f"MLflow run {run} has no logged model"


def test_run_without_a_model_of_that_name(world: MlflowWorld) -> None:
    run = world.skops_run_id
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(f"runs:/{run}/model")
    assert str(caught.value) == (
        f"MLflow run {run} has no logged model or model artifacts named 'model' (its logged models: iris)"
    )


def test_folder_with_no_model(world: MlflowWorld, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(str(folder))
    assert str(caught.value) == f"no MLflow model at {folder}: no MLmodel file in it"
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(folder.as_uri())
    assert str(caught.value) == f"no MLflow model at {folder.as_uri()}: no MLmodel file in it"
    with pytest.raises(NotFoundError) as caught:
        pack_mlflow_model(str(tmp_path / "nowhere"))
    assert str(caught.value) == f"no MLflow model at {tmp_path / 'nowhere'}: no such file or folder"


def test_folder_with_several_models(world: MlflowWorld, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / "two" / name).mkdir(parents=True)
        (tmp_path / "two" / name / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ModelKitError) as caught:
        pack_mlflow_model(str(tmp_path / "two"))
    assert str(caught.value) == f"several MLflow models at {tmp_path / 'two'} (a, b): name one of them"


def test_no_tracking_server_reachable(world: MlflowWorld) -> None:
    server = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ModelKitError) as caught:
        pack_mlflow_model(f"runs:/{world.skops_run_id}/iris", tracking_uri=server)
    assert type(caught.value) is ModelKitError
    assert str(caught.value) == (
        f"MLflow tracking server {server} is not reachable (ConnectError): "
        "start it or pass the right --tracking-uri / MLFLOW_TRACKING_URI"
    )


def test_missing_sqlite_store(world: MlflowWorld, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(ModelKitError) as caught:
        pack_mlflow_model(f"models:/{REGISTERED_NAME}/1", tracking_uri=uri)
    assert str(caught.value) == (
        f"MLflow tracking store {uri} does not exist (no file {tmp_path / 'absent.db'}): "
        "pass the right --tracking-uri / MLFLOW_TRACKING_URI"
    )
    assert not (tmp_path / "absent.db").exists()


def test_check_tracking_store_redacts_credentials() -> None:
    with pytest.raises(ModelKitError) as caught:
        check_tracking_store(f"http://ada:secret@127.0.0.1:{_free_port()}")
    assert "secret" not in str(caught.value) and "ada" not in str(caught.value)


def test_local_model_with_unreachable_tracking_store_still_packs(world: MlflowWorld, tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{_free_port()}"
    result = pack_mlflow_model(str(world.mlflow2_dir), tracking_uri=server)
    assert result.provenance.tracking_uri == server and result.provenance.run_id == ""


def test_relative_sqlite_store_is_relative_to_the_cwd(world: MlflowWorld, tmp_path: Path) -> None:
    with pytest.raises(ModelKitError) as caught:
        check_tracking_store("sqlite:///relative.db")
    assert str(caught.value) == (
        "MLflow tracking store sqlite:///relative.db does not exist (no file relative.db): "
        "pass the right --tracking-uri / MLFLOW_TRACKING_URI"
    )
    (tmp_path / "relative.db").write_bytes(b"")  # the world fixture made tmp_path the cwd
    check_tracking_store("sqlite:///relative.db")
    assert [p.name for p in tmp_path.iterdir()] == ["relative.db"]


# --- each check and parse happens once (counted through the module attributes the calls go through) ------------------


class _Counted:
    """A wrapper of ``call`` that counts its calls."""

    def __init__(self, call: Callable[..., object]) -> None:
        self.call = call
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self.call(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> tuple[_Counted, _Counted]:
    """Count ``check_model_uri`` (as the bridge and resolve call it) and resolve's parses of an MLmodel file."""
    check = _Counted(resolve.check_model_uri)
    monkeypatch.setattr(resolve, "check_model_uri", check)
    monkeypatch.setattr(bridge, "check_model_uri", check)
    parse = _Counted(load_mlmodel_document)
    monkeypatch.setattr("pymodelkit.mlflow.resolve.load_mlmodel_document", parse)
    return check, parse


@pytest.mark.parametrize("local", [True, False])
def test_pack_checks_the_uri_once_and_parses_the_mlmodel_once(
    world: MlflowWorld, counted: tuple[_Counted, _Counted], local: bool
) -> None:
    uri = str(world.mlflow2_dir) if local else f"runs:/{world.pickle_run_id}"
    result = pack_mlflow_model(uri, tag="once/m:1")
    assert (result.provenance.source_uri, result.pack.reference is not None) == (uri, True)
    assert [c.calls for c in counted] == [1, 1]


def test_fetch_model_checks_the_uri_once_and_parses_a_local_mlmodel_once(
    world: MlflowWorld, counted: tuple[_Counted, _Counted], tmp_path: Path
) -> None:
    resolved = fetch_model(str(world.mlflow2_dir), tmp_path / "m")
    assert resolved.mlmodel == load_mlmodel_document((world.mlflow2_dir / "MLmodel").read_bytes(), source="MLmodel")
    assert (resolved.path / "MLmodel").read_bytes() == (world.mlflow2_dir / "MLmodel").read_bytes()
    assert [c.calls for c in counted] == [1, 1]
