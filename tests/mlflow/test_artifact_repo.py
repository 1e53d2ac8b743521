"""The ``modelkit://`` artifact repository with real MLflow and the real test registry: a scikit-learn model saved
by MLflow, packed and pushed as a ModelKit, loads through ``pyfunc.load_model("modelkit://…")``, the flavor loader,
``download_artifacts``/``list_artifacts`` and ``models:/name/1`` with the original predictions; only the layers
needed are fetched and a second load fetches no blob; ``log_artifacts`` publishes; bad input gets MLflow errors.

Written against both ends of the MLflow range ``pyproject.toml`` allows (``scripts/test_mlflow_lowest.sh`` runs this
file under the lowest): the model is made with ``save_model``, which both have, never with MLflow 3's logged models.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

import pymodelkit
from pymodelkit.errors import AuthError, InvalidReferenceError, NotFoundError, RegistryError, RegistryNotFoundError
from pymodelkit.mlflow.artifact_repo import ModelKitArtifactRepository
from pymodelkit.mlflow.modelkit_uri import parse_modelkit_uri
from pymodelkit.registry import push
from pymodelkit.registry.remote import info_remote
from tests.mlflow.world import MlflowWorld
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.trees import read_tree, unique_repo

KITFILE = """manifestVersion: 1.0.0
package:
  name: churn
model:
  name: churn
  path: model
datasets:
  - name: train
    path: data/train.csv
"""
PIP_REQUIREMENTS = ["mlflow", "scikit-learn", "pandas"]


class SavedModel:
    """An MLflow model folder made once per module, and what it predicts."""

    def __init__(self, root: Path) -> None:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        self.features, target = load_iris(return_X_y=True, as_frame=True)
        model = LogisticRegression(C=0.5, max_iter=500).fit(self.features, target)
        self.expected = model.predict(self.features)
        self.path = root / "saved-model"
        mlflow.sklearn.save_model(model, str(self.path), pip_requirements=PIP_REQUIREMENTS)

    def source_tree(self, root: Path, kitfile: str = KITFILE, data: str = "a,b\n1,2\n" * 2000,
                    tamper: bool = False) -> Path:
        """``root/src``: the model folder as ``model/``, a dataset and the Kitfile; ``tamper`` slips an extra
        requirement into the model."""
        src = root / "src"
        shutil.copytree(self.path, src / "model")
        if tamper:
            with (src / "model" / "requirements.txt").open("a") as requirements:
                requirements.write("evil-package==6.6.6\n")
        (src / "data").mkdir()
        (src / "data" / "train.csv").write_text(data)
        (src / "Kitfile").write_text(kitfile)
        return src

    def assert_predicts(self, model: Any) -> None:
        assert np.array_equal(np.asarray(model.predict(self.features)), self.expected)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    return SavedModel(tmp_path_factory.mktemp("saved"))


def _publish(saved: SavedModel, host: str, tmp_path: Path, name: str, *, kitfile: str = KITFILE,
             tag: str = "v1", repository: str | None = None, **tree: Any) -> tuple[str, pymodelkit.PackResult]:
    """Pack the model's source tree in a publisher's store and push it: (reference, pack result)."""
    ref = f"{host}/{repository or unique_repo('mlflow-plugin', name)}:{tag}"
    publisher = pymodelkit.LocalStore(tmp_path / f"publisher-{name}")
    packed = pymodelkit.pack(saved.source_tree(tmp_path / f"tree-{name}", kitfile, **tree), tag=ref, store=publisher)
    push(ref, store=publisher)
    return ref, packed


def _blob_gets(proxy: FaultProxy, since: int) -> list[str]:
    return sorted(r.target.rsplit("/", 1)[-1] for r in proxy.requests_since(since)
                  if r.method == "GET" and "/blobs/" in r.target)


def _layer_digest(packed: pymodelkit.PackResult, kind: str) -> str:
    [layer] = [d for d in packed.manifest.layers or () if f".{kind}." in d.media_type]
    return str(layer.digest)


def _stored_blobs() -> set[str]:
    blobs = pymodelkit.LocalStore().storage / "blobs" / "sha256"
    return {p.name for p in blobs.iterdir()} if blobs.exists() else set()


def _modelkit_repository(uri: str) -> ModelKitArtifactRepository:
    repository = get_artifact_repository(uri)
    assert isinstance(repository, ModelKitArtifactRepository)
    return repository


def _error(call: Callable[[], object]) -> MlflowException:
    with pytest.raises(MlflowException) as caught:
        call()
    return caught.value


# --- reading ----------------------------------------------------------------------------------------------------


def test_load_model_fetches_only_the_model_layer_and_a_second_load_downloads_nothing(
    saved: SavedModel, registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(registry.url)
    ref, packed = _publish(saved, proxy.host, tmp_path, "load")
    uri = f"modelkit://{ref}"
    before = proxy.settled_count()

    saved.assert_predicts(mlflow.pyfunc.load_model(uri))
    wanted = sorted([str(packed.manifest.config.digest), _layer_digest(packed, "model")])
    assert _blob_gets(proxy, before) == wanted  # not the dataset layer
    blobs = _stored_blobs()
    assert {d.split(":")[1] for d in wanted} <= blobs

    again = proxy.settled_count()
    saved.assert_predicts(mlflow.sklearn.load_model(uri))  # a flavor loader, through the same repository
    assert _blob_gets(proxy, again) == []
    assert _stored_blobs() == blobs


def test_paths_digests_listing_and_the_whole_modelkit(saved: SavedModel, registry: TestRegistry,
                                                      tmp_path: Path) -> None:
    ref, packed = _publish(saved, registry.host, tmp_path, "paths")
    uri = f"modelkit://{ref}"
    by_digest = f"modelkit://{ref.rsplit(':', 1)[0]}@{packed.digest}"
    model_files = sorted(p.name for p in saved.path.iterdir())

    folder = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "plain")))
    assert folder == tmp_path / "plain" / ref.rsplit("/", 1)[-1].replace(":", "_")  # no ':' in what lands on disk
    assert read_tree(folder) == read_tree(saved.path)
    assert read_tree(Path(mlflow.artifacts.download_artifacts(f"{by_digest}/model"))) == read_tree(saved.path)
    saved.assert_predicts(mlflow.pyfunc.load_model(by_digest))

    data = Path(mlflow.artifacts.download_artifacts(f"{uri}/data/train.csv", dst_path=str(tmp_path / "data")))
    assert (data.name, data.read_text()) == ("train.csv", "a,b\n1,2\n" * 2000)
    mlmodel = Path(mlflow.artifacts.download_artifacts(f"{uri}/MLmodel"))  # not a Kitfile path: inside the model
    assert mlmodel.read_bytes() == (saved.path / "MLmodel").read_bytes()
    assert mlflow.models.get_model_info(uri).flavors.keys() >= {"python_function", "sklearn"}

    whole = Path(mlflow.artifacts.download_artifacts(f"{uri}/.", dst_path=str(tmp_path / "whole")))
    assert whole == tmp_path / "whole"
    assert sorted(p.name for p in whole.iterdir()) == ["Kitfile", "data", "model"]
    assert read_tree(whole / "model") == read_tree(saved.path)

    listed = mlflow.artifacts.list_artifacts(uri)
    assert [(f.path, f.is_dir) for f in listed] == [(f"{ref.rsplit('/', 1)[-1]}/{n}", False) for n in model_files]
    assert [f.file_size for f in listed] == [(saved.path / n).stat().st_size for n in model_files]
    root = get_artifact_repository(uri)
    assert [(f.path, f.is_dir) for f in root.list_artifacts(".")] == [
        ("Kitfile", False), ("data", True), ("model", True)
    ]
    assert [f.path for f in root.list_artifacts("data")] == ["data/train.csv"]
    assert root.list_artifacts("data/train.csv") == []  # a file
    assert root.list_artifacts("nothing/here") == []


@pytest.fixture
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An MLflow store to register into, made the active one: on MLflow 3 the session's (``tests/mlflow/world.py``;
    MLflow 3's sqlite migrations take ~10 s, paid once per session), else a fresh sqlite store (MLflow 2's world
    cannot be built: it logs MLflow 3 logged models)."""
    if int(mlflow.__version__.split(".")[0]) >= 3:
        world: MlflowWorld = request.getfixturevalue("world")
        return world.tracking_uri
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return uri


def test_register_model_and_load_it_by_name(saved: SavedModel, registry: TestRegistry, tmp_path: Path,
                                            tracking_uri: str) -> None:
    ref, _ = _publish(saved, registry.host, tmp_path, "registered")
    name = f"modelkit-{ref.rsplit('/', 1)[-1].split(':')[0]}"
    version = mlflow.register_model(f"modelkit://{ref}", name)
    assert (version.name, str(version.version), version.source) == (name, "1", f"modelkit://{ref}")
    assert mlflow.get_tracking_uri() == tracking_uri
    saved.assert_predicts(mlflow.pyfunc.load_model(f"models:/{name}/1"))
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", "1")
    saved.assert_predicts(mlflow.sklearn.load_model(f"models:/{name}@champion"))
    assert "sklearn" in mlflow.models.get_model_info(f"models:/{name}/latest").flavors  # reads …/MLmodel


def test_the_plugin_is_registered_and_takes_every_mlflow_constructor_keyword() -> None:
    repo = get_artifact_repository("modelkit://127.0.0.1:5000/team")
    assert isinstance(repo, ModelKitArtifactRepository)
    built = ModelKitArtifactRepository("modelkit://127.0.0.1:5000/team/churn:v3", tracking_uri="sqlite:///x.db",
                                       registry_uri="sqlite:///y.db", some_future_keyword=True)
    assert (built.artifact_uri, built.tracking_uri, built.registry_uri) == (
        "modelkit://127.0.0.1:5000/team/churn:v3", "sqlite:///x.db", "sqlite:///y.db")


@pytest.mark.parametrize(
    ("uri", "registry", "reference", "path"),
    [
        ("modelkit://127.0.0.1:5000/team/churn:v3", "127.0.0.1:5000", "127.0.0.1:5000/team/churn:v3", ""),
        ("modelkit://registry.example.com/team/churn:v3/model/MLmodel", "registry.example.com",
         "registry.example.com/team/churn:v3", "model/MLmodel"),
        ("modelkit://[::1]:5000/churn@sha256:" + "a" * 64 + "/model/", "[::1]:5000",
         "[::1]:5000/churn@sha256:" + "a" * 64, "model"),
        ("modelkit://myregistry/a/b/c:latest/.", "myregistry", "myregistry/a/b/c:latest", "."),
        ("modelkit://localhost/team/churn:v3", "localhost", "localhost/team/churn:v3", ""),
        ("modelkit://127.0.0.1:5000/team", "127.0.0.1:5000", None, ""),
    ],
)
def test_uri_grammar(uri: str, registry: str, reference: str | None, path: str) -> None:
    parsed = parse_modelkit_uri(uri)
    assert (parsed.registry, None if parsed.reference is None else str(parsed.reference), parsed.path) == (
        registry, reference, path)


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/x", "modelkit:///team/churn:v3", "modelkit://h:5000/Team/churn:v3", "modelkit://h:5000/t/c:v3/../x",
     "modelkit://h:5000/t/c:v3?path=model", "modelkit://h:5000/t/c@sha256:abc", "modelkit://h:x/t/c:v3",
     "modelkit://u:p@h:5000/t/c:v3"],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_modelkit_uri(uri)


def test_credentials_in_a_uri_are_refused_without_being_echoed() -> None:
    err = _error(lambda: mlflow.pyfunc.load_model("modelkit://ada:s3cret@127.0.0.1:5000/team/churn:v1"))
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    assert "s3cret" not in err.message and "credentials do not belong in the URI" in err.message


# --- writing ----------------------------------------------------------------------------------------------------


def test_log_artifacts_packs_and_pushes_a_modelkit_that_loads(saved: SavedModel, registry: TestRegistry,
                                                              tmp_path: Path) -> None:
    repository = unique_repo("mlflow-plugin", "logged")
    target = f"modelkit://{registry.host}/{repository}:v2"
    _modelkit_repository(target).log_artifacts(str(saved.path))
    kitfile = info_remote(f"{registry.host}/{repository}:v2")
    assert kitfile.model is not None
    assert (kitfile.model.path, kitfile.model.framework) == (".", "scikit-learn")

    fresh = tmp_path / "elsewhere"
    pymodelkit.unpack(f"{registry.host}/{repository}:v2", fresh, store=pymodelkit.LocalStore(tmp_path / "other"))
    assert read_tree(fresh) == {**read_tree(saved.path), "Kitfile": (fresh / "Kitfile").read_bytes()}
    saved.assert_predicts(mlflow.pyfunc.load_model(target))

    notes = tmp_path / "NOTES.md"
    notes.write_text("# churn\n")
    _modelkit_repository(f"modelkit://{registry.host}/{repository}:notes").log_artifact(str(notes), "docs")
    got = Path(mlflow.artifacts.download_artifacts(f"modelkit://{registry.host}/{repository}:notes/docs/NOTES.md"))
    assert got.read_text() == "# churn\n"


def test_an_experiment_whose_artifacts_live_in_a_modelkit_logs_and_loads_models(
    saved: SavedModel, registry: TestRegistry, tracking_uri: str
) -> None:
    from sklearn.linear_model import LogisticRegression

    repository = unique_repo("mlflow-plugin", "experiment")
    location = f"modelkit://{registry.host}/{repository}:runs"
    experiment = mlflow.create_experiment(f"modelkit-{repository.rsplit('/', 1)[-1]}", artifact_location=location)
    model = LogisticRegression(C=0.5, max_iter=500).fit(saved.features, saved.expected)
    where = {"name": "model"} if int(mlflow.__version__.split(".")[0]) >= 3 else {"artifact_path": "model"}
    with mlflow.start_run(experiment_id=experiment) as run:
        assert run.info.artifact_uri.startswith(f"{location}/")
        logged = mlflow.sklearn.log_model(model, pip_requirements=PIP_REQUIREMENTS, **where)
    kitfile = info_remote(f"{registry.host}/{repository}:runs")
    assert kitfile.model is not None and kitfile.model.framework == "scikit-learn"
    assert np.array_equal(mlflow.pyfunc.load_model(logged.model_uri).predict(saved.features),
                          model.predict(saved.features))


# --- errors -----------------------------------------------------------------------------------------------------


def test_unknown_tag_and_a_modelkit_without_a_model_are_resource_does_not_exist(
    saved: SavedModel, registry: TestRegistry, tmp_path: Path
) -> None:
    ref, _ = _publish(saved, registry.host, tmp_path, "missing")
    unknown = f"modelkit://{ref.rsplit(':', 1)[0]}:v9"
    err = _error(lambda: mlflow.pyfunc.load_model(unknown))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert isinstance(err.__cause__, RegistryNotFoundError)
    assert unknown in err.message and "\n" not in err.message

    data_only = "manifestVersion: 1.0.0\npackage:\n  name: data\ndatasets:\n  - name: train\n    path: data/train.csv\n"
    ref, _ = _publish(saved, registry.host, tmp_path, "nomodel", kitfile=data_only)
    err = _error(lambda: mlflow.pyfunc.load_model(f"modelkit://{ref}"))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert isinstance(err.__cause__, NotFoundError)
    assert f"ModelKit {ref} holds no MLflow model: its Kitfile has no model section" in err.message
    assert f"modelkit://{ref}" in err.message

    err = _error(lambda: mlflow.artifacts.download_artifacts(f"modelkit://{ref}/no/such/file"))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    err = _error(lambda: mlflow.pyfunc.load_model(f"modelkit://{registry.host}/team/churn"))
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    assert "add :TAG or @sha256:DIGEST" in err.message


def test_an_unreachable_registry_is_temporarily_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"modelkit://127.0.0.1:{port}/team/churn:v1"
    err = _error(lambda: mlflow.pyfunc.load_model(uri))
    assert err.error_code == "TEMPORARILY_UNAVAILABLE"
    assert isinstance(err.__cause__, RegistryError) and err.__cause__.status is None
    assert uri in err.message and "\n" not in err.message


def test_credentials_come_from_the_cli_chain_and_wrong_ones_are_unauthenticated(
    saved: SavedModel, registry_basic: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry_basic.username and registry_basic.password
    monkeypatch.setenv("PYMODELKIT_USERNAME", registry_basic.username)
    monkeypatch.setenv("PYMODELKIT_PASSWORD", registry_basic.password)
    ref, _ = _publish(saved, registry_basic.host, tmp_path, "auth")
    saved.assert_predicts(mlflow.pyfunc.load_model(f"modelkit://{ref}"))

    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "fresh-home"))  # nothing cached: the registry must answer
    monkeypatch.setenv("PYMODELKIT_PASSWORD", "wrong")
    err = _error(lambda: mlflow.pyfunc.load_model(f"modelkit://{ref}"))
    assert err.error_code == "UNAUTHENTICATED"
    assert isinstance(err.__cause__, AuthError)
    assert f"modelkit://{ref}" in err.message and "wrong" not in err.message


# --- verification -----------------------------------------------------------------------------------------------


def test_a_tampered_modelkit_is_refused_under_a_verification_policy(
    saved: SavedModel, registry: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymodelkit.signing.keys import generate_signing_key, write_key_pair
    from pymodelkit.signing.signer import sign

    ref, packed = _publish(saved, registry.host, tmp_path, "signed")
    repository = ref.split("/", 1)[1].rsplit(":", 1)[0]
    uri = f"modelkit://{ref}"
    key = generate_signing_key()
    (tmp_path / "trust").mkdir()
    write_key_pair(key, tmp_path / "trust" / "team", password=None)
    policy = tmp_path / "trust" / "policy.yaml"
    policy.write_text(f'repositories:\n  "*": insecureAcceptAnything\n  "{registry.host}/{repository}": [team.pub]\n')
    monkeypatch.setenv("PYMODELKIT_POLICY", str(policy))

    err = _error(lambda: mlflow.pyfunc.load_model(uri))  # not signed yet
    assert err.error_code == "PERMISSION_DENIED"
    assert isinstance(err.__cause__, pymodelkit.SignatureError)
    assert uri in err.message and "\n" not in err.message
    assert _stored_blobs() == set()  # refused before any blob was stored

    sign(ref, key)
    saved.assert_predicts(mlflow.pyfunc.load_model(uri))

    _publish(saved, registry.host, tmp_path, "tampered", repository=repository, tamper=True)  # same tag, new bytes
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "another-home"))
    err = _error(lambda: mlflow.pyfunc.load_model(uri))
    assert err.error_code == "PERMISSION_DENIED"
    assert isinstance(err.__cause__, pymodelkit.SignatureError)
    assert _stored_blobs() == set()
    assert packed.digest  # the signed ModelKit is still loadable by its digest
    saved.assert_predicts(mlflow.pyfunc.load_model(f"modelkit://{registry.host}/{repository}@{packed.digest}"))


def test_a_blob_corrupted_in_the_registry_is_data_loss(saved: SavedModel, registry: TestRegistry,
                                                       tmp_path: Path) -> None:
    if registry.storage_dir is None:
        pytest.skip("needs the registry's storage folder (the docker-registry binary backend)")
    ref, packed = _publish(saved, registry.host, tmp_path, "corrupt", data=f"unique,{tmp_path.name}\n" * 500)
    digest = _layer_digest(packed, "dataset").split(":")[1]
    [blob] = (registry.storage_dir / "docker" / "registry" / "v2" / "blobs" / "sha256").glob(f"*/{digest}/data")
    blob.write_bytes(blob.read_bytes().replace(b"unique", b"UNIQUE"))
    err = _error(lambda: mlflow.artifacts.download_artifacts(f"modelkit://{ref}/data/train.csv"))
    assert err.error_code == "DATA_LOSS"
    assert isinstance(err.__cause__, pymodelkit.DigestMismatchError)


def test_verify_modelkits_requires_a_signature_by_the_given_key(
    saved: SavedModel, registry: TestRegistry, tmp_path: Path
) -> None:
    from pymodelkit.mlflow.artifact_repo import verify_modelkits
    from pymodelkit.signing.keys import generate_signing_key, write_key_pair
    from pymodelkit.signing.signer import sign

    ref, _ = _publish(saved, registry.host, tmp_path, "verify-block")
    uri = f"modelkit://{ref}"
    signer, other = generate_signing_key(), generate_signing_key()
    _, signer_pub = write_key_pair(signer, tmp_path / "signer", password=None)
    _, other_pub = write_key_pair(other, tmp_path / "other", password=None)
    sign(ref, signer)

    with verify_modelkits([other_pub]):
        err = _error(lambda: mlflow.pyfunc.load_model(uri))
    assert err.error_code == "PERMISSION_DENIED"
    assert isinstance(err.__cause__, pymodelkit.SignatureError)
    assert _stored_blobs() == set()
    with verify_modelkits([signer_pub]):
        saved.assert_predicts(mlflow.pyfunc.load_model(uri))
        with verify_modelkits([other_pub]):  # another block (another thread, say) adds its check, not replaces
            assert _error(lambda: mlflow.pyfunc.load_model(uri)).error_code == "PERMISSION_DENIED"
