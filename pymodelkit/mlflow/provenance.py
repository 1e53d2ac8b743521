"""Where a packed MLflow model came from: the run's params and metrics, and the ids that lead back to the run.

Spec ``mlflow.md`` §6. One :class:`Provenance` value becomes two things in the ModelKit (``docs/mlflow.md`` has the
tables): ``model.parameters`` = ``{"mlflow": {...}}`` (ids, names, ``params`` as MLflow's strings, ``metrics`` as
the latest value per key), and manifest annotations whose keys all start with :data:`ANNOTATION_PREFIX`. URIs are
recorded with credentials (``user:password@``, token-like query parameters) stripped.
"""

from __future__ import annotations

import logging
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mlflow.exceptions import MlflowException

from pymodelkit.mlflow._reason import mlflow_reason

if TYPE_CHECKING:
    import mlflow

    from pymodelkit.mlflow.resolve import ResolvedModel

__all__ = [
    "ANNOTATION_FIELDS",
    "ANNOTATION_PREFIX",
    "PARAMETERS_KEY",
    "Provenance",
    "fetch_provenance",
    "read_provenance_annotations",
    "redact_uri",
]

logger = logging.getLogger(__name__)

ANNOTATION_PREFIX = "dev.pymodelkit.mlflow."
"""Every provenance annotation key starts with this; the rest is one of :data:`ANNOTATION_FIELDS`' names."""
PARAMETERS_KEY = "mlflow"
"""``model.parameters`` is ``{PARAMETERS_KEY: {...}}``."""

# annotation name (after the prefix) -> Provenance attribute, in the order docs/mlflow.md lists them
ANNOTATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("tracking-uri", "tracking_uri"),
    ("source-uri", "source_uri"),
    ("experiment-id", "experiment_id"),
    ("experiment-name", "experiment_name"),
    ("run-id", "run_id"),
    ("run-name", "run_name"),
    ("model-id", "model_id"),
    ("model-name", "model_name"),
    ("registered-model-name", "registered_name"),
    ("registered-model-version", "registered_version"),
    ("registered-model-alias", "registered_alias"),
    ("git-commit", "git_commit"),
    ("mlflow-version", "mlflow_version"),
)
_USERINFO = re.compile(r"//[^/?#]*@")
_SECRET_QUERY_KEY = re.compile(r"token|secret|passw|pwd|key|sig|credential|auth", re.IGNORECASE)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Provenance:
    """The facts recorded about a packed MLflow model; ``""`` (or empty mappings) where unknown."""

    tracking_uri: str = ""
    source_uri: str = ""
    experiment_id: str = ""
    experiment_name: str = ""
    run_id: str = ""
    run_name: str = ""
    model_id: str = ""
    model_name: str = ""
    registered_name: str = ""
    registered_version: str = ""
    registered_alias: str = ""
    git_commit: str = ""
    mlflow_version: str = ""
    user: str = ""  # the run's mlflow.user tag (the default package author)
    description: str = ""  # the run's description, the mlflow.note.content tag (the default package description)
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float | str] = field(default_factory=dict)

    def to_parameters(self) -> dict[str, object]:
        """``model.parameters``: ``{"mlflow": {<ids and names>, "registered_model": {...}, "params": {...},
        "metrics": {...}}}``; unknown ids and an unregistered model are left out, ``params``/``metrics`` never."""
        doc: dict[str, object] = {}
        for key in ("tracking_uri", "experiment_id", "experiment_name", "run_id", "run_name", "model_id",
                    "model_name", "git_commit", "mlflow_version"):
            value = getattr(self, key)
            if value:
                doc[key] = value
        if self.registered_name:
            registered = {"name": self.registered_name, "version": self.registered_version,
                          "alias": self.registered_alias}
            doc["registered_model"] = {k: v for k, v in registered.items() if v}
        doc["params"] = dict(self.params)
        doc["metrics"] = dict(self.metrics)
        return {PARAMETERS_KEY: doc}

    def to_annotations(self) -> dict[str, str]:
        """Manifest annotations ``dev.pymodelkit.mlflow.<name>`` for every known id, name and URI."""
        pairs = ((ANNOTATION_PREFIX + name, getattr(self, attr)) for name, attr in ANNOTATION_FIELDS)
        return {key: value for key, value in pairs if value}


def fetch_provenance(
    resolved: ResolvedModel,
    *,
    client: mlflow.MlflowClient | None,
    tracking_uri: str,
) -> Provenance:
    """Read the run, logged model and experiment behind ``resolved`` from the tracking store (``client``; ``None``
    means: use only what the URI and the MLmodel say). A lookup that fails (the run is in another store, say) logs
    a warning and leaves those facts out."""
    origin = resolved.origin
    mlmodel = resolved.mlmodel
    run = logged = experiment = None
    if client is not None:
        if origin.model_id:
            logged = _lookup(lambda: client.get_logged_model(origin.model_id), f"logged model {origin.model_id}")
        run_id = origin.run_id or (logged.source_run_id if logged is not None else "") or ""
        if run_id:
            run = _lookup(lambda: client.get_run(run_id), f"run {run_id}")
        experiment_id = origin.experiment_id or (
            str(run.info.experiment_id) if run is not None else str(logged.experiment_id or "") if logged else ""
        )
        if experiment_id:
            experiment = _lookup(lambda: client.get_experiment(experiment_id), f"experiment {experiment_id}")
    tags: Mapping[str, str] = run.data.tags if run is not None else {}
    params: Mapping[str, str] = run.data.params if run is not None else (logged.params if logged is not None else {})
    metrics = {key: _metric(value) for key, value in sorted((run.data.metrics if run is not None else {}).items())}
    return Provenance(
        tracking_uri=redact_uri(tracking_uri),
        source_uri=redact_uri(resolved.uri),
        experiment_id=origin.experiment_id or (str(experiment.experiment_id) if experiment is not None else ""),
        experiment_name=str(experiment.name) if experiment is not None else "",
        run_id=origin.run_id or (run.info.run_id if run is not None else ""),
        run_name=(run.info.run_name or "") if run is not None else "",
        model_id=origin.model_id,
        model_name=origin.model_name or (logged.name if logged is not None else ""),
        registered_name=origin.registered_name,
        registered_version=origin.registered_version,
        registered_alias=origin.registered_alias,
        git_commit=tags.get("mlflow.source.git.commit", ""),
        mlflow_version=_text(mlmodel.get("mlflow_version")),
        user=tags.get("mlflow.user", ""),
        description=tags.get("mlflow.note.content", ""),
        params={str(k): str(v) for k, v in sorted(params.items())},
        metrics=metrics,
    )


def read_provenance_annotations(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """The provenance annotations of a manifest, keyed by their name without the prefix (``run-id``…)."""
    return {k[len(ANNOTATION_PREFIX):]: v for k, v in (annotations or {}).items() if k.startswith(ANNOTATION_PREFIX)}


def redact_uri(uri: str) -> str:
    """``uri`` without credentials: no ``user:password@`` and no token-, key- or password-like query parameters.
    Plain paths and URIs without credentials come back unchanged; a URI that does not parse loses anything between
    ``//`` and ``@`` and its query."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return _USERINFO.sub("//", uri.split("?", 1)[0])
    if len(parts.scheme) <= 1:  # a path (or a Windows drive letter)
        return uri
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = urllib.parse.urlencode([(k, v) for k, v in pairs if not _SECRET_QUERY_KEY.search(k)])
    if netloc == parts.netloc and query == parts.query:
        return uri
    text = f"{parts.scheme}://{netloc}{parts.path}"
    text += f"?{query}" if query else ""
    return text + (f"#{parts.fragment}" if parts.fragment else "")


def _lookup(call: Callable[[], _T], what: str) -> _T | None:
    try:
        return call()
    except MlflowException as err:
        logger.warning("Cannot read %s from the MLflow tracking store: %s", what, mlflow_reason(err))
        return None


def _metric(value: float) -> float | str:
    number = float(value)
    return number if math.isfinite(number) else str(number)  # JSON (and so a ModelKit config) has no NaN/inf


def _text(value: object) -> str:
    return str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
