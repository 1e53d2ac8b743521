"""What an MLflow ``MLmodel`` file says about its model: framework, library version, serialization format, name.

An MLflow model is a folder holding a file named ``MLmodel`` (spec ``mlflow.md`` §3): a YAML mapping whose
``flavors`` name the library that saved it. ``init`` packs such a folder as one model and fills ``framework``,
``version`` and ``format`` from here. The framework is the first flavor other than ``python_function`` (MLflow writes
the keys sorted), named as in ``mlflow.md`` §4; a ``python_function``-only model is ``pyfunc`` (or its custom
``loader_module``). The version is that flavor's library version key; the format is the flavor's own word for its
serialization (``serialization_format``, ``model_format`` or ``save_format``) or ``cloudpickle`` for a custom
``python_model``. Nothing is guessed beyond what the file says.

``init`` is lenient: a broken MLmodel warns and the folder is still one model (kit's own ``init`` does not know
MLmodel at all and packs it as a plain file). ``mlflow pack`` is strict: it packs an MLflow model, and one whose
MLmodel does not parse is not one, so :func:`load_mlmodel_document` refuses it (``file:line``, exit 3).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import yaml

from pymodelkit.errors import KitfileError
from pymodelkit.kitfile.yamlload import yaml_error_where

__all__ = ["MLMODEL_FILE", "MLmodelInfo", "load_mlmodel_document", "parse_mlmodel", "read_mlmodel"]

logger = logging.getLogger(__name__)

MLMODEL_FILE = "MLmodel"
"""The file that makes a folder an MLflow model (exact, case-sensitive name)."""

_PYFUNC = "python_function"

# flavor key -> (framework, version key in the flavor's config); other flavors: (same name, "<name>_version").
_FLAVORS: dict[str, tuple[str, str]] = {
    "sklearn": ("scikit-learn", "sklearn_version"),
    "pytorch": ("pytorch", "pytorch_version"),
    "tensorflow": ("tensorflow", "keras_version"),
    "keras": ("keras", "keras_version"),
    "xgboost": ("xgboost", "xgb_version"),
    "lightgbm": ("lightgbm", "lgb_version"),
    "catboost": ("catboost", "catboost_version"),
    "onnx": ("onnx", "onnx_version"),
    "transformers": ("transformers", "transformers_version"),
    "sentence_transformers": ("sentence-transformers", "sentence_transformers_version"),
    "spark": ("spark-ml", "pyspark_version"),
}
_FORMAT_KEYS = ("serialization_format", "model_format", "save_format")


@dataclass(frozen=True, slots=True)
class MLmodelInfo:
    """The Kitfile-relevant facts of one MLmodel file; ``""`` where the file does not say.

    ``flavor`` is the flavor key the framework came from; ``name`` the MLmodel's ``name``, else the last segment of a
    relative ``artifact_path`` (MLflow 2 run layouts, e.g. ``model``), else ``""`` (the caller uses the folder name).
    """

    flavor: str = ""
    framework: str = ""
    version: str = ""
    format: str = ""
    name: str = ""


def parse_mlmodel(text: str | bytes) -> MLmodelInfo:
    """Read an MLmodel document. A document that is not YAML or not a mapping gives an empty :class:`MLmodelInfo`
    (with a warning): the folder is still an MLflow model, only its metadata is unknown."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        logger.warning("Cannot read MLmodel: %s", str(err).replace("\n", " "))
        return MLmodelInfo()
    if not isinstance(data, dict):
        logger.warning("Cannot read MLmodel: not a YAML mapping")
        return MLmodelInfo()
    flavor, framework, version, fmt = _flavor_facts(data.get("flavors"))
    return MLmodelInfo(flavor=flavor, framework=framework, version=version, format=fmt, name=_name(data))


def read_mlmodel(path: str | os.PathLike[str]) -> MLmodelInfo:
    """:func:`parse_mlmodel` of the file at ``path`` (an unreadable file warns and gives an empty result)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        logger.warning("Cannot read %s: %s", os.fspath(path), err.strerror or err)
        return MLmodelInfo()
    return parse_mlmodel(data)


def load_mlmodel_document(data: bytes, *, source: str) -> dict[str, object]:
    """The MLmodel document ``data`` as a mapping, strictly: YAML that does not parse, or is not a mapping, is an
    invalid MLflow model.

    Args:
        data: the file's bytes.
        source: the name used in the message (the MLmodel's path or URI as the user would know it).

    Raises:
        KitfileError: ``<source>:<line>: invalid MLmodel: <YAML's reason>`` (``path`` and ``line`` set), or
            ``<source>:1: invalid MLmodel: it must be a YAML mapping, not <kind>``.
    """
    try:
        document = yaml.safe_load(data)
    except yaml.MarkedYAMLError as err:
        line, detail = yaml_error_where(err)
        where = f"{source}:{line}" if line else source
        raise KitfileError(f"{where}: invalid MLmodel: {detail}", path=source, line=line or None) from None
    except yaml.YAMLError as err:
        raise KitfileError(f"{source}: invalid MLmodel: {' '.join(str(err).split())}", path=source) from None
    if not isinstance(document, dict):
        kind = "an empty file" if document is None else "a sequence" if isinstance(document, list) else "a scalar"
        raise KitfileError(f"{source}:1: invalid MLmodel: it must be a YAML mapping, not {kind}", path=source,
                           line=1)
    return {str(key): value for key, value in document.items()}


def _flavor_facts(flavors: object) -> tuple[str, str, str, str]:
    if not isinstance(flavors, dict) or not flavors:
        return "", "", "", ""
    keys = [key for key in flavors if isinstance(key, str)]
    others = [key for key in keys if key != _PYFUNC]
    if others:
        flavor = others[0]
        config = flavors[flavor] if isinstance(flavors[flavor], dict) else {}
        framework, version_key = _FLAVORS.get(flavor, (flavor, f"{flavor}_version"))
        fmt = next((_text(config.get(key)) for key in _FORMAT_KEYS if _text(config.get(key))), "")
        return flavor, framework, _text(config.get(version_key)), fmt
    if _PYFUNC not in keys:
        return "", "", "", ""
    config = flavors[_PYFUNC] if isinstance(flavors[_PYFUNC], dict) else {}
    loader = _text(config.get("loader_module"))
    framework = "pyfunc" if loader in ("", "mlflow.pyfunc.model") else loader
    fmt = "cloudpickle" if config.get("python_model") and config.get("cloudpickle_version") else ""
    return _PYFUNC, framework, _text(config.get("cloudpickle_version")), fmt


def _name(data: dict[object, object]) -> str:
    name = _text(data.get("name"))
    if name:
        return name
    artifact_path = _text(data.get("artifact_path"))
    # MLflow 3 writes the model's absolute location (a path or URI) here: only a relative path is a name.
    if artifact_path and ":" not in artifact_path and not artifact_path.startswith(("/", "\\")):
        return artifact_path.rstrip("/").rsplit("/", 1)[-1]
    return ""


def _text(value: object) -> str:
    # Versions written unquoted by hand load as numbers; MLflow itself quotes them. Booleans and null say nothing.
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""
