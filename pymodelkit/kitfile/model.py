"""The Kitfile as Python values: one dataclass per section, fields in kit's serialization order.

Attribute names are snake_case; the YAML/JSON keys are kit's (``manifestVersion``, ``remotePath``, ``diffId``,
``mcpServers``). Every string field defaults to ``""`` (kit's zero value: omitted when empty). ``parameters`` holds any
YAML value; ``None`` means absent. ``digest`` and ``diff_id`` are filled by pack and never appear in YAML.
``Kitfile.source`` (the file name given to the loader) and each element's ``line`` (1-based, ``0`` when unknown) say
where a Kitfile read from YAML came from, so validation messages can name the file and line; they take no part in
equality, ``repr`` or any output.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Code",
    "Dataset",
    "Docs",
    "FieldKind",
    "KitField",
    "Kitfile",
    "LayerElement",
    "LayerKind",
    "McpServer",
    "Model",
    "ModelPart",
    "Package",
    "Prompt",
    "kit_fields",
]

LayerKind = Literal["model", "modelpart", "code", "dataset", "docs", "prompt", "mcpserver"]


@dataclass
class Package:
    """``package``: who made the ModelKit and under which name, version and license."""

    name: str = ""
    version: str = ""
    description: str = ""
    license: str = ""
    authors: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        """True when every field is empty (YAML output then omits ``package``)."""
        return not (self.name or self.version or self.description or self.license or self.authors)


@dataclass
class ModelPart:
    """``model.parts[]``: an extra file or directory of the model (adapter, tokenizer, shard)."""

    name: str = ""
    path: str = ""
    license: str = ""
    type: str = ""
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


@dataclass
class Model:
    """``model``: the model's own layer (``path`` may instead reference a parent ModelKit)."""

    name: str = ""
    path: str = ""
    license: str = ""
    framework: str = ""
    format: str = ""
    version: str = ""
    description: str = ""
    parts: list[ModelPart] = field(default_factory=list)
    parameters: object = None
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


@dataclass
class Code:
    """``code[]``: source code, notebooks, scripts."""

    path: str = ""
    description: str = ""
    license: str = ""
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


@dataclass
class Dataset:
    """``datasets[]``: a local dataset, or a remote one (``remote_path``: S3 URL or ModelKit reference)."""

    name: str = ""
    path: str = ""
    remote_path: str = ""
    remote_hash: str = ""
    description: str = ""
    license: str = ""
    parameters: object = None
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


@dataclass
class Docs:
    """``docs[]``: documentation. ``path`` is always serialized, even when empty."""

    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


@dataclass
class Prompt:
    """``prompts[]``: prompt files and agent skills; packed as ``code`` layers with the ``prompt`` subtype."""

    name: str = ""
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


@dataclass
class McpServer:
    """``mcpServers[]``: one ``.mcpb`` bundle, stored verbatim as a raw layer."""

    name: str = ""
    path: str = ""
    description: str = ""
    digest: str = ""
    diff_id: str = ""
    line: int = field(default=0, compare=False, repr=False)  # where it was read from; 0: not read from YAML


LayerElement = Model | ModelPart | Code | Dataset | Docs | Prompt | McpServer


@dataclass
class Kitfile:
    """A whole Kitfile. ``model`` of ``None`` means no model section."""

    manifest_version: str = ""
    package: Package = field(default_factory=Package)
    model: Model | None = None
    code: list[Code] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    docs: list[Docs] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    mcp_servers: list[McpServer] = field(default_factory=list)
    source: str = field(default="", compare=False, repr=False)  # the file it was read from ("": not read)

    def copy(self) -> Kitfile:
        """A deep copy, safe to fill with layer digests."""
        return copy.deepcopy(self)

    def elements(self) -> Iterator[tuple[LayerKind, LayerElement]]:
        """Every element that can carry a layer, in pack order: model, parts, code, datasets, docs, prompts,
        mcpServers. Remote datasets and reference models are included; callers decide whether they get a layer."""
        if self.model is not None:
            yield "model", self.model
            for part in self.model.parts:
                yield "modelpart", part
        for code in self.code:
            yield "code", code
        for dataset in self.datasets:
            yield "dataset", dataset
        for docs in self.docs:
            yield "docs", docs
        for prompt in self.prompts:
            yield "prompt", prompt
        for server in self.mcp_servers:
            yield "mcpserver", server


FieldKind = Literal["str", "strlist", "struct", "ptrstruct", "structlist", "any"]


@dataclass(frozen=True, slots=True)
class KitField:
    """One field of kit's Go struct, as its ``json``/``yaml`` tags describe it.

    ``kind``: ``str`` (string), ``strlist`` (``[]string``), ``struct`` (a struct value, ``package``), ``ptrstruct``
    (a pointer, ``model``: absent is ``None``), ``structlist`` (a list of structs), ``any`` (``parameters``).
    ``omitempty`` is the tag's flag (Go's JSON encoder never omits a struct value, whatever the tag says);
    ``flow`` is YAML flow style; ``json_only`` marks LayerInfo (``yaml:"-"``).
    """

    key: str
    attr: str
    kind: FieldKind
    item: type | None = None
    omitempty: bool = True
    flow: bool = False
    json_only: bool = False


_LAYER_INFO = (
    KitField("digest", "digest", "str", json_only=True),
    KitField("diffId", "diff_id", "str", json_only=True),
)

_KIT_FIELDS: dict[type, tuple[KitField, ...]] = {
    Kitfile: (
        KitField("manifestVersion", "manifest_version", "str", omitempty=False),
        KitField("package", "package", "struct", Package),
        KitField("model", "model", "ptrstruct", Model),
        KitField("code", "code", "structlist", Code),
        KitField("datasets", "datasets", "structlist", Dataset),
        KitField("docs", "docs", "structlist", Docs),
        KitField("prompts", "prompts", "structlist", Prompt),
        KitField("mcpServers", "mcp_servers", "structlist", McpServer),
    ),
    Package: (
        KitField("name", "name", "str"),
        KitField("version", "version", "str"),
        KitField("description", "description", "str"),
        KitField("license", "license", "str"),
        KitField("authors", "authors", "strlist", flow=True),
    ),
    Model: (
        KitField("name", "name", "str"),
        KitField("path", "path", "str"),
        KitField("license", "license", "str"),
        KitField("framework", "framework", "str"),
        KitField("format", "format", "str"),
        KitField("version", "version", "str"),
        KitField("description", "description", "str"),
        KitField("parts", "parts", "structlist", ModelPart),
        KitField("parameters", "parameters", "any"),
        *_LAYER_INFO,
    ),
    ModelPart: (
        KitField("name", "name", "str"),
        KitField("path", "path", "str"),
        KitField("license", "license", "str"),
        KitField("type", "type", "str"),
        *_LAYER_INFO,
    ),
    Code: (
        KitField("path", "path", "str"),
        KitField("description", "description", "str"),
        KitField("license", "license", "str"),
        *_LAYER_INFO,
    ),
    Dataset: (
        KitField("name", "name", "str"),
        KitField("path", "path", "str"),
        KitField("remotePath", "remote_path", "str"),
        KitField("remoteHash", "remote_hash", "str"),
        KitField("description", "description", "str"),
        KitField("license", "license", "str"),
        KitField("parameters", "parameters", "any"),
        *_LAYER_INFO,
    ),
    Docs: (
        KitField("path", "path", "str", omitempty=False),
        KitField("description", "description", "str"),
        *_LAYER_INFO,
    ),
    Prompt: (
        KitField("name", "name", "str"),
        KitField("path", "path", "str"),
        KitField("description", "description", "str"),
        *_LAYER_INFO,
    ),
    McpServer: (
        KitField("name", "name", "str"),
        KitField("path", "path", "str"),
        KitField("description", "description", "str"),
        *_LAYER_INFO,
    ),
}


def kit_fields(cls: type) -> tuple[KitField, ...]:
    """The fields of the Kitfile section ``cls`` in kit's serialization order (LayerInfo last)."""
    return _KIT_FIELDS[cls]
