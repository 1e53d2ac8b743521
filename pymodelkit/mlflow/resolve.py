"""Resolve an MLflow model URI into a local model folder we own, and into the ids it came from.

Implements spec ``mlflow.md`` §5 and §9: ``models:/`` and ``runs:/`` URIs are resolved here with the caller's
:class:`~mlflow.MlflowClient` (MLflow's own ``models:/`` repository ignores an explicit tracking URI) to the
location MLflow stores the files at, which is then downloaded with ``mlflow.artifacts.download_artifacts`` and
always a ``dst_path`` of ours, so that nothing is ever written into MLflow's store. Any other URI (``file://``,
``mlflow-artifacts:/``, ``s3://``, a local folder…) goes to MLflow as is. The folder holding ``MLmodel`` is then
moved to the destination. Provenance (params, metrics, names) is :mod:`pymodelkit.mlflow.provenance`'s job.

Errors: a URI that does not parse, or whose scheme no MLflow artifact repository serves (§5), is refused before any
tracking store is asked (:func:`check_model_uri`); a tracking store that does not exist, cannot be reached or that
MLflow refuses (the file store in maintenance mode, §1) is a one-line :class:`~pymodelkit.errors.ModelKitError`
naming its URI (:func:`check_tracking_store`, :func:`tracking_client`); every MLflow failure after that is one line
naming the model URI and MLflow's own reason (its first line, without an HTML body a non-MLflow server sent); an
``MLmodel`` that does not parse is an invalid model (:class:`~pymodelkit.errors.KitfileError`, ``file:line``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
import mlflow
import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from pymodelkit.errors import InvalidReferenceError, ModelKitError, NotFoundError
from pymodelkit.kitfile.mlmodel import MLMODEL_FILE, load_mlmodel_document
from pymodelkit.mlflow._reason import mlflow_reason
from pymodelkit.mlflow.provenance import redact_uri

if TYPE_CHECKING:
    from mlflow.entities import LoggedModel  # MLflow 3 only: annotations alone, so 2.x imports this module

__all__ = [
    "REGISTERED_MODEL_META_FILE",
    "ModelOrigin",
    "ResolvedModel",
    "check_model_uri",
    "check_tracking_store",
    "download_error",
    "fetch_model",
    "is_local_model_uri",
    "tracking_client",
]

logger = logging.getLogger(__name__)

REGISTERED_MODEL_META_FILE = "registered_model_meta"
"""The file MLflow writes into a model downloaded through ``models:/<name>/…``: ``model_name``, ``model_version``."""

PROBE_TIMEOUT_S = 10.0
_MISSING = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
_T = TypeVar("_T")
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_ENV_LOCK = threading.Lock()
_UNREACHABLE_HINTS = ("Max retries exceeded", "Failed to establish", "Connection refused", "timed out")
# The built-in artifact URI schemes of MLflow 3.17 (spec mlflow.md §5), when MLflow cannot list its registered ones.
_BUILTIN_SCHEMES = ("", "abfss", "b2", "dbfs", "file", "ftp", "gs", "hdfs", "http", "https", "mlflow-artifacts",
                    "models", "r2", "runs", "s3", "sftp", "viewfs", "wasbs")
_MODELS_FORMS = "models:/<model_id>, models:/<name>/<version>, models:/<name>/latest or models:/<name>@<alias>"
_RUNS_FORMS = "runs:/<run_id>/<model name or artifact path> or runs:/<run_id>"


@dataclass(frozen=True, slots=True)
class ModelOrigin:
    """Where a model came from, as far as its URI, its MLmodel and the tracking store tell; ``""`` when unknown."""

    run_id: str = ""
    model_id: str = ""
    model_name: str = ""  # the logged model's name (MLflow 3), or the run artifact path's last segment (MLflow 2)
    experiment_id: str = ""
    registered_name: str = ""
    registered_version: str = ""
    registered_alias: str = ""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model fetched from MLflow: the URI as given, the local folder holding ``MLmodel``, its origin and the
    parsed MLmodel document (an empty mapping if it is not a YAML mapping)."""

    uri: str
    path: Path
    origin: ModelOrigin
    mlmodel: Mapping[str, object]


def is_local_model_uri(uri: str) -> bool:
    """True for a plain path or a ``file:`` URI (these need no tracking store)."""
    scheme = urllib.parse.urlsplit(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def check_model_uri(uri: str) -> None:
    """Refuse a model URI that cannot name a model, before any tracking store is asked: one that does not parse,
    ``models:/`` or ``runs:/`` without a name or run id, or a scheme no MLflow artifact repository serves (the
    built-in ones of spec ``mlflow.md`` §5 and any plugin's).

    Raises:
        InvalidReferenceError: naming the URI and listing the accepted forms.
    """
    if not uri.strip():
        raise InvalidReferenceError(f"empty MLflow model URI (use {_accepted_forms()})", reference=uri)
    shown = redact_uri(uri)
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as err:
        raise InvalidReferenceError(f"invalid MLflow model URI {shown}: {err} (use {_accepted_forms()})",
                                    reference=shown) from None
    if is_local_model_uri(uri):
        return
    scheme = parts.scheme.lower()
    path = parts.path.strip("/")
    if scheme == "models" and not parts.netloc:
        name, at, alias = path.partition("/")[0].partition("@")
        if not name or (at and not alias):
            missing = "no alias after @" if name else "no model named"
            raise InvalidReferenceError(f"invalid MLflow model URI {shown}: {missing} (use {_MODELS_FORMS})",
                                        reference=shown)
    elif scheme == "runs" and not parts.netloc:
        if not path:
            raise InvalidReferenceError(f"invalid MLflow model URI {shown}: no run id (use {_RUNS_FORMS})",
                                        reference=shown)
    elif scheme not in _artifact_schemes():
        raise InvalidReferenceError(
            f"invalid MLflow model URI {shown}: MLflow has no artifact repository for {scheme}: URIs "
            f"(use {_accepted_forms()})",
            reference=shown,
        )


def tracking_client(tracking_uri: str | None, registry_uri: str | None = None) -> mlflow.MlflowClient:
    """``mlflow.MlflowClient(tracking_uri, registry_uri)``, with MLflow's refusal of the store (an unsupported URI,
    the file store in maintenance mode, spec ``mlflow.md`` §1) as one line naming it.

    Raises:
        ModelKitError: ``MLflow tracking store <uri> cannot be used: <MLflow's reason>`` (or ``MLflow model
            registry <uri>`` for a registry URI that does not parse: MLflow reads it only when first used).
    """
    if registry_uri is not None:
        try:
            urllib.parse.urlsplit(registry_uri)
        except ValueError as err:
            shown = redact_uri(registry_uri)
            raise ModelKitError(f"MLflow model registry {shown} cannot be used: {err}", registry_uri=shown) from None
    try:
        return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    except (MlflowException, ImportError, OSError, ValueError) as err:
        shown = redact_uri(tracking_uri or mlflow.get_tracking_uri())
        raise ModelKitError(f"MLflow tracking store {shown} cannot be used: {mlflow_reason(err)}",
                            tracking_uri=shown) from None


def check_tracking_store(tracking_uri: str) -> None:
    """Fail fast when the tracking store cannot answer: an HTTP server that does not accept connections, or a
    sqlite database file or file-store folder that does not exist (MLflow would silently create an empty one).

    Raises:
        ModelKitError: the store is not reachable or not there, or its URI does not parse.
    """
    shown = redact_uri(tracking_uri)
    try:
        parts = urllib.parse.urlsplit(tracking_uri)
    except ValueError as err:
        raise ModelKitError(f"MLflow tracking store {shown} cannot be used: {err}", tracking_uri=shown) from None
    if parts.scheme in ("http", "https"):
        try:
            with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
                client.get(tracking_uri.rstrip("/") + "/health")
        except httpx.TransportError as err:
            if any(word in str(err).lower() for word in ("ssl", "certificate")):
                logger.debug("TLS trouble probing %s (left to MLflow's own TLS settings): %s", shown, err)
                return
            raise ModelKitError(
                f"MLflow tracking server {shown} is not reachable ({type(err).__name__}): "
                "start it or pass the right --tracking-uri / MLFLOW_TRACKING_URI",
                tracking_uri=shown,
            ) from None
    elif parts.scheme == "sqlite" and parts.path not in ("", "/", "/:memory:"):
        # SQLAlchemy: sqlite:///relative.db and sqlite:////absolute.db (one slash separates, the rest is the path)
        path = Path(urllib.request.url2pathname(parts.path[1:]))
        if not path.is_file():
            raise ModelKitError(
                f"MLflow tracking store {shown} does not exist (no file {path}): "
                "pass the right --tracking-uri / MLFLOW_TRACKING_URI",
                tracking_uri=shown,
            )
    elif is_local_model_uri(tracking_uri) and tracking_uri.strip():  # the file store: a folder (mlruns)
        folder = Path(urllib.request.url2pathname(parts.path)) if parts.scheme == "file" else Path(tracking_uri)
        if not folder.is_dir():
            raise ModelKitError(
                f"MLflow tracking store {shown} does not exist (no folder {folder}): "
                "pass the right --tracking-uri / MLFLOW_TRACKING_URI",
                tracking_uri=shown,
            )


def fetch_model(uri: str, destination: str | os.PathLike[str], *, client: mlflow.MlflowClient | None = None,
                tracking_uri: str | None = None) -> ResolvedModel:
    """Download the MLflow model ``uri`` into ``destination`` (which must not exist yet) and say where it came from.

    ``uri`` is any model reference MLflow understands: ``models:/<model_id>``, ``models:/<name>/<version>``,
    ``models:/<name>/latest``, ``models:/<name>/<stage>``, ``models:/<name>@<alias>``, ``runs:/<run_id>/<name>``
    (an MLflow 3 logged model of that run, else an MLflow 2 model saved as run artifacts), ``runs:/<run_id>`` (the
    run's only logged model), ``mlflow-artifacts:/…``, ``file://…``, any artifact-store URI, or a local folder. The
    folder holding ``MLmodel`` may be the one named or the only model folder below it. A model of a registered
    version gets MLflow's ``registered_model_meta`` file, as ``mlflow.artifacts.download_artifacts`` would write.
    ``client`` and ``tracking_uri`` default to MLflow's active tracking store.

    Raises:
        InvalidReferenceError: a URI that cannot name a model (:func:`check_model_uri`).
        NotFoundError: no such run, logged model, registered model, version, alias, artifact or folder, or no
        ``MLmodel`` file under what was downloaded. KitfileError: the ``MLmodel`` file does not parse, or is not a
        mapping (the message names it and the line). ModelKitError: several models where one was expected; the
        tracking store or an artifact store cannot be reached or used; any other MLflow failure (one line).
    """
    check_model_uri(uri)
    return _fetch_checked_model(uri, destination, client=client, tracking_uri=tracking_uri)


def _fetch_checked_model(uri: str, destination: str | os.PathLike[str], *, client: mlflow.MlflowClient | None = None,
                         tracking_uri: str | None = None) -> ResolvedModel:
    """:func:`fetch_model` of a ``uri`` that :func:`check_model_uri` has accepted already (the bridge checks it
    first, before it asks any tracking store): the same download, result and errors, without checking it again."""
    target = Path(destination)
    if target.exists():
        raise ModelKitError(f"destination {target} exists already", path=str(target))
    source, origin = _plan(uri, client)
    tracking_uri = tracking_uri or (client.tracking_uri if client is not None else None)
    mlmodel: Mapping[str, object] | None = None
    if isinstance(source, Path):  # a local model: its MLmodel is parsed here, refused before anything is copied
        model_dir = _find_model_dir(source, uri)
        mlmodel = _load_mlmodel(model_dir / MLMODEL_FILE, str(model_dir / MLMODEL_FILE))
        source = str(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlflow-download-", dir=target.parent))
    try:
        logger.info("Downloading MLflow model %s", redact_uri(uri))
        local = _download(source, staging, uri, tracking_uri)
        model_dir = _find_model_dir(local, uri)
        if mlmodel is None:  # downloaded from a store: parsed now, named by the URI the user gave
            mlmodel = _load_mlmodel(model_dir / MLMODEL_FILE, _shown_mlmodel(uri, local, model_dir))
        os.replace(model_dir, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    origin = _complete_origin(origin, mlmodel, target)
    if origin.registered_name and not (target / REGISTERED_MODEL_META_FILE).exists():
        meta = {"model_name": origin.registered_name, "model_version": origin.registered_version}
        (target / REGISTERED_MODEL_META_FILE).write_text(yaml.safe_dump(meta, default_flow_style=False))
    return ResolvedModel(uri=uri, path=target, origin=origin, mlmodel=mlmodel)


# --- planning: URI -> what to download, and what the URI already tells --------------------------------------------


def _plan(uri: str, client: mlflow.MlflowClient | None) -> tuple[str | Path, ModelOrigin]:
    parts = urllib.parse.urlsplit(uri)
    if is_local_model_uri(uri):
        path = Path(urllib.request.url2pathname(parts.path)) if parts.scheme == "file" else Path(uri)
        if not path.exists():
            raise NotFoundError(f"no MLflow model at {uri}: no such file or folder", path=str(path))
        return path, ModelOrigin()
    client = client if client is not None else tracking_client(None)
    if parts.scheme == "models" and not parts.netloc:
        return _plan_models(uri, parts.path.strip("/"), client)
    if parts.scheme == "runs" and not parts.netloc:
        return _plan_runs(uri, parts.path.strip("/"), client)
    return uri, ModelOrigin()


def _plan_models(uri: str, path: str, client: mlflow.MlflowClient) -> tuple[str, ModelOrigin]:
    head, _, rest = path.partition("/")  # check_model_uri made sure there is a name
    if "@" in head:
        name, _, alias = head.partition("@")
        version = _mlflow_call(lambda: client.get_model_version_by_alias(name, alias), uri,
                               f"registered model {name!r} has no alias {alias!r}")
        return _registered(client, uri, name, str(version.version), rest, alias=alias)
    if not rest:  # models:/<model_id>
        logged = _mlflow_call(lambda: client.get_logged_model(head), uri, f"no logged model with id {head!r}")
        origin = ModelOrigin(run_id=logged.source_run_id or "", model_id=logged.model_id, model_name=logged.name,
                             experiment_id=str(logged.experiment_id or ""))
        return str(logged.artifact_location), origin
    name, _, rest = path.partition("/")
    selector, _, subpath = rest.partition("/")
    if selector.isdigit():
        return _registered(client, uri, name, selector, subpath)
    if selector.lower() == "latest":
        versions = _mlflow_call(lambda: client.search_model_versions(f"name = '{_quote(name)}'"), uri,
                                f"no registered model {name!r}")
        if not versions:
            raise NotFoundError(f"MLflow model not found: {uri}: registered model {name!r} has no versions")
        return _registered(client, uri, name, str(max(int(v.version) for v in versions)), subpath)
    with warnings.catch_warnings():  # stages are deprecated in MLflow 2.9+, still resolvable
        warnings.simplefilter("ignore")
        staged = _mlflow_call(lambda: client.get_latest_versions(name, stages=[selector]), uri,
                              f"no registered model {name!r}")
    if not staged:
        raise NotFoundError(f"MLflow model not found: {uri}: registered model {name!r} has no version in {selector}")
    return _registered(client, uri, name, str(staged[0].version), subpath)


def _registered(client: mlflow.MlflowClient, uri: str, name: str, version: str, subpath: str,
                *, alias: str = "") -> tuple[str, ModelOrigin]:
    found = _mlflow_call(lambda: client.get_model_version(name, version), uri,
                         f"registered model {name!r} has no version {version}")
    location = _mlflow_call(lambda: client.get_model_version_download_uri(name, version), uri,
                            f"registered model {name!r} version {version} has no files")
    source = str(found.source or "")
    model_id = source[len("models:/"):].strip("/") if source.startswith("models:/") else ""
    origin = ModelOrigin(run_id=found.run_id or "", model_id=model_id if "/" not in model_id else "",
                         registered_name=name, registered_version=version, registered_alias=alias)
    return _join(location, subpath), origin


def _plan_runs(uri: str, path: str, client: mlflow.MlflowClient) -> tuple[str, ModelOrigin]:
    run_id, _, artifact_path = path.partition("/")  # check_model_uri made sure there is a run id
    artifact_path = artifact_path.strip("/")
    run = _mlflow_call(lambda: client.get_run(run_id), uri, f"no run with id {run_id!r}")
    experiment_id = str(run.info.experiment_id)
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
    logged = []
    for output in outputs:
        model_id = str(output.model_id)
        logged.append(_mlflow_call(functools.partial(client.get_logged_model, model_id), uri,
                                   f"no logged model {model_id}"))
    if not artifact_path:
        if len(logged) == 1:
            model = logged[0]
            return str(model.artifact_location), ModelOrigin(run_id=run_id, model_id=model.model_id,
                                                             model_name=model.name, experiment_id=experiment_id)
        if len(logged) > 1:
            names = ", ".join(sorted(m.name for m in logged))
            raise ModelKitError(f"run {run_id} has {len(logged)} logged models ({names}): "
                                f"name one, e.g. runs:/{run_id}/{sorted(m.name for m in logged)[0]}")
        if _has_mlmodel(client, run_id, ""):
            return str(run.info.artifact_uri), ModelOrigin(run_id=run_id, experiment_id=experiment_id)
        raise NotFoundError(f"MLflow run {run_id} has no logged model", reference=uri)
    name, _, rest = artifact_path.partition("/")
    named = next((m for m in logged if m.name == name), None) or _search_logged_model(client, run, name, uri)
    if named is not None:  # MLflow 3: runs:/<run>/<name> means the run's logged model of that name
        origin = ModelOrigin(run_id=run_id, model_id=named.model_id, model_name=named.name,
                             experiment_id=experiment_id)
        return _join(str(named.artifact_location), rest), origin
    if _has_mlmodel(client, run_id, artifact_path):  # MLflow 2: the model is a folder of run artifacts
        origin = ModelOrigin(run_id=run_id, model_name=artifact_path.rsplit("/", 1)[-1], experiment_id=experiment_id)
        return _join(str(run.info.artifact_uri), artifact_path), origin
    if not logged:
        raise NotFoundError(f"MLflow run {run_id} has no logged model (and no model artifacts at {artifact_path!r})",
                            reference=uri)
    names = ", ".join(sorted(m.name for m in logged))
    raise NotFoundError(f"MLflow run {run_id} has no logged model or model artifacts named {artifact_path!r} "
                        f"(its logged models: {names})", reference=uri)


def _search_logged_model(client: mlflow.MlflowClient, run: Run, name: str, uri: str) -> LoggedModel | None:
    """The run's logged model ``name`` when the run's outputs do not list it (MLflow's own ``runs:/`` fallback)."""
    try:
        found = client.search_logged_models(experiment_ids=[str(run.info.experiment_id)],
                                            filter_string=f"name = '{_quote(name)}'")
    except MlflowException as err:
        _raise_if_unreachable(err, uri)
        return None
    return next((m for m in found if m.source_run_id == run.info.run_id), None)


def _has_mlmodel(client: mlflow.MlflowClient, run_id: str, path: str) -> bool:
    try:
        files = client.list_artifacts(run_id, path or None)
    except MlflowException as err:
        _raise_if_unreachable(err, f"runs:/{run_id}/{path}")
        return False
    except OSError:
        return False
    return any(f.path.rsplit("/", 1)[-1] == MLMODEL_FILE and not f.is_dir for f in files)


# --- downloading and finding the model folder ---------------------------------------------------------------------


def _download(source: str, staging: Path, uri: str, tracking_uri: str | None) -> Path:
    try:
        with _no_progress_bars():
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging),
                                                        tracking_uri=tracking_uri)
    except (MlflowException, ImportError, OSError) as err:
        raise download_error(err, uri) from None
    path = Path(local)
    if not path.resolve().is_relative_to(staging.resolve()):  # never hand out MLflow's own store
        raise ModelKitError(f"MLflow returned {path} outside the download folder for {redact_uri(uri)}")
    return path


def download_error(err: Exception, uri: str) -> ModelKitError:
    """The one-line pymodelkit error for MLflow failing to download ``uri``: :class:`NotFoundError` when there is
    no such artifact, else :class:`ModelKitError` (unreachable, a store library not installed, anything else)."""
    shown = redact_uri(uri)
    if isinstance(err, MlflowException):
        if _is_unreachable(err):
            return ModelKitError(f"MLflow is not reachable while resolving {shown}: {mlflow_reason(err)}")
        if err.error_code in _MISSING or "No such file" in err.message or "not found" in err.message.lower():
            return NotFoundError(f"MLflow model not found: {shown}: {mlflow_reason(err)}", reference=shown)
    elif isinstance(err, ImportError):  # an artifact store whose client library is not installed (s3: boto3, gs: …)
        return ModelKitError(f"cannot download MLflow model {shown}: MLflow needs the Python module "
                             f"{err.name or '?'} for it, which is not installed")
    elif isinstance(err, FileNotFoundError):
        return NotFoundError(f"MLflow model not found: {shown}: no such artifact", reference=shown)
    return ModelKitError(f"cannot download MLflow model {shown}: {mlflow_reason(err)}")


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """MLflow draws tqdm bars on stderr while downloading; a library does not print, so turn them off unless the
    user set ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` (MLflow reads it at call time)."""
    with _ENV_LOCK:
        if _PROGRESS_ENV in os.environ:
            yield
            return
        os.environ[_PROGRESS_ENV] = "false"
        try:
            yield
        finally:
            os.environ.pop(_PROGRESS_ENV, None)


def _find_model_dir(root: Path, uri: str) -> Path:
    """The folder holding ``MLmodel``: ``root`` itself, ``root``'s parent for the file, or the only one below."""
    if root.is_file():
        if root.name == MLMODEL_FILE:
            return root.parent
        raise NotFoundError(f"no MLflow model at {redact_uri(uri)}: it is a file, not a folder with an MLmodel file",
                            path=str(root))
    if (root / MLMODEL_FILE).is_file():
        return root
    found = sorted({p.parent for p in root.rglob(MLMODEL_FILE) if p.is_file()})
    outermost = [p for p in found if not any(p != q and p.is_relative_to(q) for q in found)]
    if not outermost:
        raise NotFoundError(f"no MLflow model at {redact_uri(uri)}: no MLmodel file in it", path=str(root))
    if len(outermost) > 1:
        names = ", ".join(p.relative_to(root).as_posix() for p in outermost)
        raise ModelKitError(f"several MLflow models at {redact_uri(uri)} ({names}): name one of them")
    return outermost[0]


def _complete_origin(origin: ModelOrigin, mlmodel: Mapping[str, object], folder: Path) -> ModelOrigin:
    run_id = origin.run_id or _text(mlmodel.get("run_id"))
    model_id = origin.model_id or _text(mlmodel.get("model_id"))
    name, version = origin.registered_name, origin.registered_version
    if not name:
        meta = _read_yaml(folder / REGISTERED_MODEL_META_FILE)
        name, version = _text(meta.get("model_name")), _text(meta.get("model_version"))
    return replace(origin, run_id=run_id, model_id=model_id, registered_name=name, registered_version=version)


# --- small helpers --------------------------------------------------------------------------------------------------


def _mlflow_call(call: Callable[[], _T], uri: str, missing: str) -> _T:
    """``call()``, with MLflow's "does not exist" as :class:`NotFoundError` (saying ``missing``) and any other
    failure as a one-line :class:`ModelKitError`."""
    try:
        return call()
    except MlflowException as err:
        _raise_if_unreachable(err, uri)
        if err.error_code in _MISSING:
            raise NotFoundError(f"MLflow model not found: {redact_uri(uri)}: {missing}", reference=redact_uri(uri)) \
                from None
        raise ModelKitError(f"MLflow failed to resolve {redact_uri(uri)}: {mlflow_reason(err)}") from None
    except (ImportError, OSError, ValueError) as err:  # MLflow's own checks of what it was given raise ValueError
        raise ModelKitError(f"MLflow failed to resolve {redact_uri(uri)}: {mlflow_reason(err)}") from None


def _join(location: str, subpath: str) -> str:
    return location.rstrip("/") + "/" + subpath if subpath else location


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _load_mlmodel(path: Path, shown: str) -> Mapping[str, object]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelKitError(f"cannot read {shown}: {err.strerror or err}", path=shown) from None
    return load_mlmodel_document(data, source=shown)


def _shown_mlmodel(uri: str, downloaded: Path, model_dir: Path) -> str:
    """The MLmodel's name as the user knows it: under the URI they gave, never our download folder."""
    shown = redact_uri(uri)
    if downloaded.is_file():  # the URI named the MLmodel file itself
        return shown
    inner = model_dir.relative_to(downloaded).as_posix()
    return "/".join(part for part in (shown.rstrip("/"), "" if inner == "." else inner, MLMODEL_FILE) if part)


def _read_yaml(path: Path) -> Mapping[str, object]:
    try:
        data = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError):
        return {}
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


def _text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip() if isinstance(value, (str, int, float)) else ""


def _artifact_schemes() -> frozenset[str]:
    """The URI schemes MLflow has an artifact repository for (its built-in ones and any plugin's)."""
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_registered_artifact_repositories

        return frozenset(str(scheme) for scheme in get_registered_artifact_repositories())
    except (ImportError, AttributeError):  # an MLflow without the listing: the built-in schemes
        return frozenset(_BUILTIN_SCHEMES)


def _accepted_forms() -> str:
    stores = ", ".join(f"{scheme}:" for scheme in sorted(_artifact_schemes() - {"", "file", "models", "runs"}))
    return ("models:/<model_id>, models:/<name>/<version>, models:/<name>@<alias>, runs:/<run_id>/<path>, a model "
            f"folder, file:///<path>, or an artifact store URI: {stores}")


def _is_unreachable(err: MlflowException) -> bool:
    return any(hint in err.message for hint in _UNREACHABLE_HINTS)


def _raise_if_unreachable(err: MlflowException, uri: str) -> None:
    if _is_unreachable(err):
        raise ModelKitError(
            f"MLflow is not reachable while resolving {redact_uri(uri)}: {mlflow_reason(err)}"
        ) from None
