"""pykitops' pydantic ``Kitfile`` (1.3+), with every field kit knows and the fixes of spec ``pykitops-api.md`` §8.

The section models (``Package``, ``CodeEntry``, ``DatasetEntry``, ``DocsEntry``, ``PromptEntry``, ``ModelPart``,
``ModelSection``) and the ``Kitfile`` behave as pykitops' do: attribute access, dict or model assignment, ``TypeError``
for a section of the wrong type, ``model_dump``/``model_validate``/``==``, pydantic's ``ValidationError`` for bad
input, ``to_yaml``, ``save``, ``load``. Deliberate differences (each in ``docs/compat.md``): every kit field is
modelled (``package.license``, ``model.format``, ``parts[].license``, ``datasets[].remotePath``/``remoteHash``/
``parameters``, ``prompts[].name``, ``mcpServers``) and unknown keys are kept (``extra="allow"``); assignments are
validated; ``to_yaml()`` writes what ``kit init`` would (:func:`pymodelkit.kitfile.dump_kitfile`); files are read
with kit's own loader when they are valid Kitfiles; mapping access (``kitfile.model["parameters"]``) works as in
pykitops ≤ 1.2; ``save`` does not print unless asked.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pymodelkit._atomic import write_atomic
from pymodelkit.errors import KitfileError
from pymodelkit.kitfile import Kitfile as CoreKitfile
from pymodelkit.kitfile import dump_kitfile, load_kitfile
from pymodelkit.kitfile.model import Code, Docs, McpServer, Model, Prompt, kit_fields
from pymodelkit.kitfile.model import ModelPart as CoreModelPart

__all__ = [
    "BasePathModel",
    "CodeEntry",
    "DatasetEntry",
    "DocsEntry",
    "Kitfile",
    "McpServerEntry",
    "ModelPart",
    "ModelSection",
    "Package",
    "PromptEntry",
    "PydanticKitfile",
]

_NO_WRAP = 1 << 30  # PyYAML's line width for the fallback writer: never wrap


class _Section(BaseModel):
    """A Kitfile section: unknown keys kept, assignments validated, and mapping access as in pykitops ≤ 1.2."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def __getitem__(self, key: str) -> Any:
        if key in type(self).model_fields or key in (self.model_extra or {}):
            return getattr(self, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in type(self).model_fields or key in (self.model_extra or {}))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (a field or an extra key), else ``default``."""
        if key in self:
            return self[key]
        return default


def _text(value: Any) -> Any:
    """A string field's input: ``None`` (a YAML null, which kit reads as the empty string) becomes ``""``."""
    return "" if value is None else value


def _version_text(value: Any) -> Any:
    """``version`` fields: numbers become their text (``1.0`` → ``"1.0"``), as pykitops' ``coerce_numbers_to_str``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class BasePathModel(_Section):
    """A section entry with a ``path`` (required), relative to the ModelKit's context directory."""

    path: str

    @field_validator("path", mode="before")
    @classmethod
    def _coerce_path(cls, value: Any) -> Any:
        return _path_text(value)


class Package(_Section):
    """``package``: name, version, description, license and authors of the ModelKit."""

    name: str = ""
    version: str = ""
    description: str = ""
    license: str = ""
    authors: list[str] = Field(default_factory=list)

    @field_validator("name", "description", "license", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("version", mode="before")
    @classmethod
    def _coerce_version(cls, value: Any) -> Any:
        return _version_text(value)

    @field_validator("authors", mode="before")
    @classmethod
    def _coerce_authors(cls, value: Any) -> Any:
        return [] if value is None else value


class CodeEntry(BasePathModel):
    """``code[]``: source code, notebooks, scripts."""

    description: str = ""
    license: str = ""

    @field_validator("description", "license", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)


class DatasetEntry(BasePathModel):
    """``datasets[]``: a dataset in the ModelKit (``path``) or elsewhere (``remotePath``, with ``path`` empty)."""

    path: str = ""
    name: str = ""
    remotePath: str = ""
    remoteHash: str = ""
    description: str = ""
    license: str = ""
    parameters: Any = None

    @field_validator("name", "remotePath", "remoteHash", "description", "license", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)

    @model_validator(mode="after")
    def _needs_a_path(self) -> DatasetEntry:
        if not self.path and not self.remotePath and "path" not in self.model_fields_set:
            raise ValueError("a dataset needs a path (or a remotePath)")
        return self


class DocsEntry(BasePathModel):
    """``docs[]``: documentation."""

    description: str = ""

    @field_validator("description", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)


class PromptEntry(BasePathModel):
    """``prompts[]``: prompt files and agent skills."""

    name: str = ""
    description: str = ""

    @field_validator("name", "description", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)


class McpServerEntry(BasePathModel):
    """``mcpServers[]``: one ``.mcpb`` bundle (kit's field; pykitops has none)."""

    name: str = ""
    description: str = ""

    @field_validator("name", "description", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)


class ModelPart(BasePathModel):
    """``model.parts[]``: an extra file or directory of the model (adapter, tokenizer, config)."""

    name: str = ""
    type: str = ""
    license: str = ""

    @field_validator("name", "type", "license", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)


class ModelSection(BasePathModel):
    """``model``: the model's own files; ``parameters`` holds any YAML value."""

    name: str = ""
    framework: str = ""
    format: str = ""
    version: str = ""
    description: str = ""
    license: str = ""
    parts: list[ModelPart] = Field(default_factory=list)
    parameters: Any = None

    @field_validator("name", "framework", "format", "description", "license", mode="before")
    @classmethod
    def _coerce_text(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("version", mode="before")
    @classmethod
    def _coerce_version(cls, value: Any) -> Any:
        return _version_text(value)

    @field_validator("parts", mode="before")
    @classmethod
    def _coerce_parts(cls, value: Any) -> Any:
        return [] if value is None else value


def _empty_model() -> ModelSection:
    return ModelSection(path="")


class PydanticKitfile(_Section):
    """The Kitfile's fields, in kit's order. ``model`` is never ``None``: an empty one means "no model section"."""

    manifestVersion: str = "1.0.0"
    package: Package = Field(default_factory=Package)
    model: ModelSection = Field(default_factory=_empty_model)
    code: list[CodeEntry] = Field(default_factory=list)
    datasets: list[DatasetEntry] = Field(default_factory=list)
    docs: list[DocsEntry] = Field(default_factory=list)
    prompts: list[PromptEntry] = Field(default_factory=list)
    mcpServers: list[McpServerEntry] = Field(default_factory=list)

    _LISTS: ClassVar[frozenset[str]] = frozenset({"code", "datasets", "docs", "prompts", "mcpServers"})
    _OBJECTS: ClassVar[dict[str, type[BaseModel]]] = {"package": Package, "model": ModelSection}

    @field_validator("manifestVersion", mode="before")
    @classmethod
    def _coerce_manifest_version(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        # pykitops' setters: TypeError for a value of the wrong kind, then the usual (validated) assignment.
        if name in self._LISTS and not isinstance(value, list):
            raise TypeError(f"{name} must be a list of dicts or {name} entries, not {type(value).__name__}")
        expected = self._OBJECTS.get(name)
        if expected is not None and not isinstance(value, (dict, expected)):
            raise TypeError(f"{name} must be a dict or a {expected.__name__}, not {type(value).__name__}")
        if name == "manifestVersion" and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            raise TypeError(f"manifestVersion must be a str, int or float, not {type(value).__name__}")
        super().__setattr__(name, value)


class Kitfile(PydanticKitfile):
    """A Kitfile: ``Kitfile()`` (empty), ``Kitfile(path)`` (read a file) or ``Kitfile(**sections)``.

    Raises:
        ValueError: both a path and keyword arguments; the path does not exist. yaml.YAMLError: the file is not YAML.
        pydantic.ValidationError: the content does not fit the model (a ``ValueError`` too).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        if path is not None and kwargs:
            raise ValueError("Kitfile takes either a path or keyword arguments, not both")
        data: Any = _read(path) if path is not None else kwargs
        if not isinstance(data, dict):
            PydanticKitfile.model_validate(data)  # raises pydantic's ValidationError, as pykitops does
            raise TypeError("a Kitfile must be a mapping")  # not reached
        super().__init__(**data)

    def load(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read the Kitfile at ``path`` and return its content as a dict (this object is left unchanged)."""
        data = _read(path)
        if not isinstance(data, dict):
            PydanticKitfile.model_validate(data)
            raise TypeError("a Kitfile must be a mapping")  # not reached
        return data

    @classmethod
    def from_kitfile(cls, kitfile: CoreKitfile) -> Kitfile:
        """The compat Kitfile for a :class:`pymodelkit.kitfile.Kitfile` (additive; pykitops has none)."""
        return cls(**_core_to_dict(kitfile, CoreKitfile))

    def to_kitfile(self) -> CoreKitfile:
        """This Kitfile as a :class:`pymodelkit.kitfile.Kitfile` (keys kit does not know are dropped; additive)."""
        data = self.model_dump()
        if self.model == _empty_model():
            data.pop("model")
        core = _dict_to_core(data, CoreKitfile)
        assert isinstance(core, CoreKitfile)
        return core

    def to_yaml(self, suppress_empty_values: bool = True) -> str:
        """The Kitfile as YAML.

        With ``suppress_empty_values`` (the default) the text is what ``kit init`` writes: kit's key order, empty
        values and an empty model left out, yaml.v3 scalar styles, no line wrapping. A Kitfile holding keys kit does
        not know is written by PyYAML instead (the set values, in model order), so those keys survive. Without
        ``suppress_empty_values`` every field is written, defaults and ``null`` included, as pykitops does.

        Raises:
            KitfileError: a ``parameters`` value YAML cannot represent.
        """
        if not suppress_empty_values:
            return _safe_dump(self.model_dump())
        if _has_extra(self):
            return _safe_dump(self.model_dump(exclude_unset=True, exclude_none=True))
        return dump_kitfile(self.to_kitfile())

    def save(self, path: str | os.PathLike[str] = "Kitfile", print: bool = False) -> None:
        """Write :meth:`to_yaml` to ``path`` (UTF-8, replaced atomically); ``print=True`` also prints it
        (deprecated, as :meth:`print`)."""
        write_atomic(Path(path), self.to_yaml().encode("utf-8"), mode=0o644)
        if print:
            self.print()

    def print(self) -> None:
        """Deprecated (as in pykitops): write the YAML to standard output. Use :meth:`to_yaml`."""
        warnings.warn("Kitfile.print() is deprecated: use to_yaml()", DeprecationWarning, stacklevel=2)
        sys.stdout.write("\n\nKitfile Contents...\n===================\n\n" + self.to_yaml() + "\n")


# --- reading -----------------------------------------------------------------------------------------------------


def _read(path: str | os.PathLike[str]) -> Any:
    """The Kitfile at ``path`` as plain data, checked against the model as pykitops checks it (PyYAML, then pydantic).

    When kit's own loader also accepts the file, its reading is returned instead: string fields keep their source
    text as in kit (``version: 1.10`` stays ``"1.10"``, where PyYAML reads the float ``1.1``).
    """
    file = Path(path)
    if not file.exists():
        raise ValueError(f"Path '{os.fspath(path)}' does not exist.")
    data = file.read_bytes()
    try:
        raw = yaml.safe_load(data)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column: {mark.column + 1}" if mark is not None else ""
        raise yaml.YAMLError(f"Error parsing Kitfile{where}.") from err
    PydanticKitfile.model_validate(raw)  # pydantic's ValidationError for content that does not fit
    try:
        return _core_to_dict(load_kitfile(data, source=os.fspath(path)), CoreKitfile)
    except KitfileError:
        return raw  # keys kit does not know: kept as read


# --- conversion to and from pymodelkit's Kitfile -------------------------------------------------------------------

_PATH_KEYS = frozenset({Model, CoreModelPart, Code, Docs, Prompt, McpServer})


def _core_to_dict(obj: object, cls: type) -> dict[str, Any]:
    """The non-empty fields of a pymodelkit Kitfile section as the dict kit's YAML would give (``path`` always)."""
    out: dict[str, Any] = {}
    for field in kit_fields(cls):
        if field.json_only:
            continue
        value = getattr(obj, field.attr)
        if field.kind == "str":
            if value or not field.omitempty or (field.key == "path" and cls in _PATH_KEYS):
                out[field.key] = value
        elif field.kind == "strlist":
            if value:
                out[field.key] = list(value)
        elif field.kind in ("struct", "ptrstruct"):
            if value is not None:
                assert field.item is not None
                nested = _core_to_dict(value, field.item)
                if nested or field.kind == "ptrstruct":
                    out[field.key] = nested
        elif field.kind == "structlist":
            if value:
                assert field.item is not None
                out[field.key] = [_core_to_dict(item, field.item) for item in value]
        elif value is not None:
            out[field.key] = value
    return out


def _dict_to_core(data: Mapping[str, Any], cls: type) -> object:
    """A pymodelkit Kitfile section from a ``model_dump()`` dict (keys kit does not know are ignored)."""
    kwargs: dict[str, Any] = {}
    for field in kit_fields(cls):
        if field.json_only or field.key not in data or (data[field.key] is None and field.kind != "any"):
            continue
        value = data[field.key]
        if field.kind in ("struct", "ptrstruct"):
            assert field.item is not None
            value = _dict_to_core(value, field.item)
        elif field.kind == "structlist":
            assert field.item is not None
            value = [_dict_to_core(item, field.item) for item in value]
        elif field.kind == "strlist":
            value = list(value)
        kwargs[field.attr] = value
    return cls(**kwargs)


def _has_extra(model: BaseModel) -> bool:
    if model.model_extra:
        return True
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, BaseModel) and _has_extra(item) for item in items):
            return True
    return False


def _safe_dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=_NO_WRAP)
