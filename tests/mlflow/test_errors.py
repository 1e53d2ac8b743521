"""Every MLflow failure of ``mlflow pack`` is one pymodelkit line with its exit code, never MLflow's traceback
(audit P2, P14): a file-store tracking URI, a URI that cannot name a model (refused before any store is asked), a
server that is not MLflow, an unsupported store, a broken MLmodel; and nothing is stored after any of them."""

from __future__ import annotations

import http.server
import importlib.util
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.errors import KitfileError, ModelKitError, NotFoundError
from pymodelkit.mlflow import pack_mlflow_model, redact_uri
from pymodelkit.mlflow.artifacts import download_artifacts
from tests.mlflow.world import MlflowWorld

MISSING_RUN = "0123456789abcdef0123456789abcdef"
FILE_STORE_REFUSED = (
    "The filesystem tracking backend (e.g., './mlruns') is in maintenance mode and will not receive further updates "
    "(set MLFLOW_ALLOW_FILE_STORE=true to read it anyway, or migrate it: mlflow migrate-filestore)"
)
FORMS = (
    "(use models:/<model_id>, models:/<name>/<version>, models:/<name>@<alias>, runs:/<run_id>/<path>, a model "
    "folder, file:///<path>, or an artifact store URI: "
)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``pymodelkit mlflow pack ARGS -t err/m:1``; the exit code and stderr (stdout must stay empty)."""
    code = main(["mlflow", "pack", *args, "-t", "err/m:1"])
    out, err = capsys.readouterr()
    assert out == ""
    return code, err


def _nothing_stored(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.fixture
def file_store(world: MlflowWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An (empty) MLflow file store folder, as MLflow 3 refuses it by default."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tmp_path / "mlruns").mkdir()
    return (tmp_path / "mlruns").as_uri()


@pytest.mark.parametrize("uri", ["models:/nosuch/1", f"runs:/{MISSING_RUN}/model"])
def test_file_store_tracking_uri_is_one_line(
    file_store: str, capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    code, err = _cli(capsys, uri, "--tracking-uri", file_store)
    assert (code, err) == (1, f"pymodelkit: error: MLflow tracking store {file_store} cannot be used: "
                              f"{FILE_STORE_REFUSED}\n")
    _nothing_stored(capsys)


def test_file_store_is_read_when_mlflow_allows_it(
    file_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    code, err = _cli(capsys, "models:/nosuch/1", "--tracking-uri", file_store)
    assert (code, err) == (5, "pymodelkit: error: MLflow model not found: models:/nosuch/1: "
                              "registered model 'nosuch' has no version 1\n")


def test_default_tracking_uri_finding_an_old_mlruns_is_one_line(
    world: MlflowWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tmp_path / "mlruns" / "123").mkdir(parents=True)  # the world fixture made tmp_path the cwd
    (tmp_path / "mlruns" / "123" / "meta.yaml").write_text("experiment_id: '123'\nname: old\n")
    assert mlflow.get_tracking_uri() == (tmp_path / "mlruns").as_uri()
    code, err = _cli(capsys, "models:/nosuch/1")
    assert (code, err) == (1, f"pymodelkit: error: MLflow tracking store {(tmp_path / 'mlruns').as_uri()} cannot be "
                              f"used: {FILE_STORE_REFUSED}\n")


def test_missing_file_store_folder_is_not_created(
    file_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-mlruns"
    code, err = _cli(capsys, "models:/nosuch/1", "--tracking-uri", missing.as_uri())
    assert (code, err) == (1, f"pymodelkit: error: MLflow tracking store {missing.as_uri()} does not exist (no "
                              f"folder {missing}): pass the right --tracking-uri / MLFLOW_TRACKING_URI\n")
    assert not missing.exists()


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s4://x/y", "MLflow has no artifact repository for s4: URIs " + FORMS),
        ("models:/", "no model named (use models:/<model_id>, models:/<name>/<version>, models:/<name>/latest or "
                     "models:/<name>@<alias>)"),
        ("models:/iris@", "no alias after @ (use models:/<model_id>"),
        ("runs:/", "no run id (use runs:/<run_id>/<model name or artifact path> or runs:/<run_id>)"),
        ("http://ada:secret@[::1/m", "Invalid IPv6 URL " + FORMS),
    ],
)
def test_uri_that_cannot_name_a_model_is_refused_first(
    world: MlflowWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    uri: str, reason: str,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'absent.db'}")  # would fail if it were asked
    code, err = _cli(capsys, uri)
    assert code == 4
    assert err.startswith(f"pymodelkit: error: invalid MLflow model URI {redact_uri(uri)}: {reason}")
    assert len(err.splitlines()) == 1 and "secret" not in err and "absent.db" not in err
    assert not (tmp_path / "absent.db").exists()


def test_empty_uri_lists_the_accepted_forms(world: MlflowWorld, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "")
    assert code == 4 and err.startswith("pymodelkit: error: empty MLflow model URI " + FORMS)
    assert "s3:, " in err and "mlflow-artifacts:, " in err


@pytest.fixture
def not_mlflow() -> Iterator[str]:
    """A loopback HTTP server that answers every request with a 404 HTML page, as a web server that is not MLflow."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<!DOCTYPE HTML>\n<html><body><h1>Error response</h1>\n<p>Error code: 404</p></body></html>\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("uri", "endpoint"),
    [
        ("models:/iris/1", "/api/2.0/mlflow/model-versions/get"),
        (f"runs:/{MISSING_RUN}/model", "/api/2.0/mlflow/runs/get"),
    ],
)
def test_server_that_is_not_mlflow_leaves_its_html_out(
    world: MlflowWorld, not_mlflow: str, capsys: pytest.CaptureFixture[str], uri: str, endpoint: str
) -> None:
    code, err = _cli(capsys, uri, "--tracking-uri", not_mlflow)
    assert (code, err) == (1, f"pymodelkit: error: MLflow failed to resolve {uri}: the server answered HTTP 404 to "
                              f"{endpoint}, not as an MLflow tracking server does\n")


def test_provenance_warning_from_a_server_that_is_not_mlflow_is_the_same_one_line(
    world: MlflowWorld, not_mlflow: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A local model packs without its run's facts when the store cannot give them; the warning quotes MLflow's
    reason as the errors do (no HTML, not the first line of it)."""
    folder = _broken_model(tmp_path / "model", f"run_id: {MISSING_RUN}\nflavors:\n  python_function: {{}}\n")
    with caplog.at_level(logging.WARNING, logger="pymodelkit"):
        result = pack_mlflow_model(str(folder), tracking_uri=not_mlflow)
    assert (result.provenance.run_id, result.provenance.run_name) == (MISSING_RUN, "")
    assert [r.getMessage() for r in caplog.records] == [
        f"Cannot read run {MISSING_RUN} from the MLflow tracking store: the server answered HTTP 404 to "
        "/api/2.0/mlflow/runs/get, not as an MLflow tracking server does"
    ]


def test_unsupported_tracking_store_is_named(world: MlflowWorld, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "models:/iris/1", "--tracking-uri", "foo://bar")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("pymodelkit: error: MLflow tracking store foo://bar cannot be used: Model registry "
                          "functionality is unavailable; got unsupported URI 'foo://bar'")


def test_registry_uri_that_does_not_parse_is_named(world: MlflowWorld, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "models:/iris/1", "--registry-uri", "http://ada:pw@[::1")
    assert (code, err) == (1, "pymodelkit: error: MLflow model registry http://[::1 cannot be used: "
                              "Invalid IPv6 URL\n")


def test_local_model_with_a_refused_store_still_packs(
    world: MlflowWorld, file_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pymodelkit"):
        result = pack_mlflow_model(str(world.mlflow2_dir), tracking_uri=file_store)
    assert result.provenance.run_id == "" and result.provenance.tracking_uri == file_store
    assert [r.getMessage() for r in caplog.records] == [
        f"MLflow tracking store {file_store} cannot be used: {FILE_STORE_REFUSED}; recording only what the MLmodel "
        "file says"
    ]


# --- a broken MLmodel is an invalid model -------------------------------------------------------------------------


def _broken_model(folder: Path, mlmodel: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text(mlmodel)
    (folder / "model.pkl").write_bytes(b"\x80\x04N.")
    return folder


@pytest.mark.parametrize(
    ("mlmodel", "reason"),
    [
        ("flavors: [oops\n", "2: invalid MLmodel: while parsing a flow sequence; expected ',' or ']', but got "
                             "'<stream end>'"),
        ("- a list\n", "1: invalid MLmodel: it must be a YAML mapping, not a sequence"),
        ("", "1: invalid MLmodel: it must be a YAML mapping, not an empty file"),
    ],
)
def test_broken_mlmodel_folder_is_refused(
    world: MlflowWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str], mlmodel: str, reason: str
) -> None:
    folder = _broken_model(tmp_path / "badml", mlmodel)
    for uri in (str(folder), folder.as_uri()):
        code, err = _cli(capsys, uri)
        assert (code, err) == (3, f"pymodelkit: error: {folder / 'MLmodel'}:{reason}\n")
    _nothing_stored(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["badml"]  # no work folder left behind


def test_broken_mlmodel_downloaded_from_a_run_is_named_by_its_uri(world: MlflowWorld, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(world.tracking_uri)
    experiment = client.create_experiment("pymodelkit-errors", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(_broken_model(tmp_path / "src" / "model", "flavors: [oops\n")), "model")
    client.set_terminated(run.info.run_id)
    uri = f"runs:/{run.info.run_id}/model"
    work = tmp_path / "work"
    with pytest.raises(KitfileError) as caught:
        pack_mlflow_model(uri, tag="err/m:1", workdir=work)
    assert str(caught.value) == (
        f"{uri}/MLmodel:2: invalid MLmodel: while parsing a flow sequence; expected ',' or ']', but got "
        "'<stream end>'"
    )
    assert (caught.value.path, caught.value.line) == (f"{uri}/MLmodel", 2)
    assert list(work.iterdir()) == []  # nothing moved into the work folder
    assert pymodelkit.list_modelkits() == []


# --- the recipe's download_artifacts --------------------------------------------------------------------------------


def test_download_artifacts_raises_pymodelkit_errors(world: MlflowWorld, tmp_path: Path) -> None:
    with pytest.raises(ModelKitError) as caught:
        download_artifacts("s4://x/y", dst_path=str(tmp_path / "a"))
    assert type(caught.value) is ModelKitError
    assert str(caught.value).startswith("cannot download MLflow model s4://x/y: Could not find a registered artifact "
                                        "repository for: s4://x/")
    assert "\n" not in str(caught.value)
    with pytest.raises(NotFoundError) as missing:
        download_artifacts(run_id=world.skops_run_id, artifact_path="nothing-here", dst_path=str(tmp_path / "b"))
    assert str(missing.value).startswith(f"MLflow model not found: runs:/{world.skops_run_id}/nothing-here: ")


def test_artifact_store_without_its_library_is_one_line(world: MlflowWorld, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("botocore") is not None:
        pytest.skip("botocore is installed: MLflow would try to reach S3")
    code, err = _cli(capsys, "s3://bucket/model")
    assert (code, err) == (1, "pymodelkit: error: cannot download MLflow model s3://bucket/model: MLflow needs the "
                              "Python module botocore for it, which is not installed\n")


def test_redact_uri_of_a_uri_that_does_not_parse() -> None:
    assert redact_uri("http://ada:secret@[::1/x?token=t") == "http://[::1/x"
