"""Generate a Kitfile from a directory's contents: current ``kit init``'s heuristics, plus MLflow model folders.

Implements spec ``kitops-modelkit.md`` §6 as ``kitops-ml/kitops@bf4b9bc:pkg/lib/kitfile/generate/generate.go`` does
it (with ``skill.go`` of the same line): a sorted listing of regular files and directories (symlinks and OS junk
left out); prompts first; ``.mcpb`` bundles; README/LICENSE files; suffix lists for model weights, metadata, docs
and datasets; one to five unknown files each a code entry, more than five ``code: .``; top-level directories
classified by their direct children (``--depth`` changes how far down files are classified one by one); and the
model picked from the candidates by the 1.5 × average size rule.

On top, MLflow: a directory holding a file named ``MLmodel`` is one model, never split. Its path (``dir/``, or
``.`` for the root) is the model, with ``framework``, ``version`` and ``format`` from the MLmodel
(:mod:`pymodelkit.kitfile.mlmodel`); everything inside it (``conda.yaml``, ``requirements.txt``, ``python_env.yaml``,
examples, ``registered_model_meta``) stays in the model layer so that MLflow can load it after unpacking. A
directory with an MLflow model somewhere below it is classified file by file down to that folder, so the model is
never swallowed by a code or dataset directory. Files outside MLflow folders are classified as kit does.

The module is a little over 400 lines: the listing, the classification and the skill front matter are one algorithm
whose steps read each other's state, and kit keeps them together too. See ``docs/init.md`` for the rules in prose.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pymodelkit.errors import NotFoundError
from pymodelkit.kitfile.license import detect_license
from pymodelkit.kitfile.mlmodel import MLMODEL_FILE, read_mlmodel
from pymodelkit.kitfile.model import Code, Dataset, Docs, Kitfile, McpServer, Model, ModelPart, Package, Prompt
from pymodelkit.kitfile.paths import is_os_junk

__all__ = ["generate_kitfile"]

logger = logging.getLogger(__name__)

# kit's ignore.OsSpecificFiles (PR #1099), matched with strings.EqualFold; the same list as pymodelkit.pack.walk's.
_KITFILE_NAMES = frozenset({"Kitfile", "kitfile", ".kitfile"})
_CODE_DIRS = frozenset({"src", "pkg", "lib", "build"})

# Suffixes are case-sensitive, checked in this order (after prompts). ".bin" alone is no model suffix any more.
_MODEL_SUFFIXES = (
    ".safetensors", ".pkl", ".joblib", ".pth", ".pt", ".mar", ".pt2", ".ptl", ".pb", ".ckpt", ".tflite",
    ".tfrecords", ".npy", ".npz", ".keras", ".h5", ".caffemodel", ".pmml", ".coreml", ".gguf", ".ggml", ".ggmf",
    ".llamafile", ".onnx",
)  # fmt: skip
_MODEL_GLOB = re.compile(r"[^/]*pytorch_model[^/]*\.bin")  # filepath.Match("*pytorch_model*.bin", …)
_METADATA_SUFFIXES = (".json", ".yaml", ".xml", ".txt")
_DOCS_SUFFIXES = (".md", ".adoc", ".html", ".pdf")
_DATASET_SUFFIXES = (".tar", ".zip", ".parquet", ".csv")
_MCP_SUFFIX = ".mcpb"
_PROMPT_NAMES = frozenset({"agents.md", "skill.md", "claude.md"})

# kit's fileType enumeration; a directory's children are tallied in this order (it decides "mixed").
_MODEL, _DATASET, _CODE, _DOCS, _METADATA, _PROMPT, _MCP, _UNKNOWN = range(8)


@dataclass(frozen=True, slots=True)
class _File:
    name: str
    path: str  # relative to the root, "/"-separated
    size: int


@dataclass(frozen=True, slots=True)
class _Dir:
    name: str
    path: str  # "." for the root
    files: tuple[_File, ...]
    subdirs: tuple[_Dir, ...]
    mlflow_below: bool  # some directory under this one (not this one) holds an MLmodel

    @property
    def is_mlflow(self) -> bool:
        return any(f.name == MLMODEL_FILE for f in self.files)

    def skill_file(self) -> _File | None:
        return next((f for f in self.files if f.name.lower() == "skill.md"), None)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A model candidate: a weights or metadata file, or an MLflow model folder (``folder``)."""

    path: str
    name: str
    size: int
    folder: _Dir | None = None


@dataclass(frozen=True, slots=True)
class _Skill:
    name: str
    description: str
    license: str


@dataclass
class _Found:
    models: list[_Candidate] = field(default_factory=list)
    metadata: list[_File] = field(default_factory=list)
    unknown: list[_File] = field(default_factory=list)
    license_path: str = ""


def generate_kitfile(
    directory: str | os.PathLike[str],
    *,
    name: str = "",
    description: str = "",
    author: str = "",
    version: str = "",
    license: str = "",
    depth: int = 0,
) -> Kitfile:
    """A Kitfile for the files in ``directory``, as current ``kit init`` would write it, MLflow-aware.

    ``name``, ``description``, ``author`` (one entry of ``authors``), ``version`` and ``license`` fill ``package``.
    ``depth`` 0 analyses each top-level directory as a unit; N > 0 classifies files N levels down one by one; N < 0
    classifies every file one by one. Raises :class:`~pymodelkit.errors.NotFoundError` when ``directory`` is not an
    existing directory; OS errors while listing it propagate.
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotFoundError(f"{os.fspath(directory)} is not a directory", path=os.fspath(directory))
    listing = _list_dir(root, ".")
    package = Package(
        name=name, version=version, description=description, license=license, authors=[author] if author else []
    )
    kitfile = Kitfile(manifest_version="1.0.0", package=package)
    return _Generator(root, kitfile).run(listing, depth)


class _Generator:
    def __init__(self, root: Path, kitfile: Kitfile) -> None:
        self.root = root
        self.kitfile = kitfile

    def run(self, listing: _Dir, depth: int) -> Kitfile:
        kitfile = self.kitfile
        if listing.is_mlflow:  # the whole directory is one MLflow model
            logger.debug("MLmodel found in %s; the whole directory is the model", self.root)
            kitfile.model = self._mlflow_model(listing)
            license_file = next((f for f in reversed(listing.files) if f.name.lower().startswith("license")), None)
            if license_file is not None:
                kitfile.model.license = self._detect_license(license_file.path)
            return kitfile
        if (skill := listing.skill_file()) is not None and not listing.mlflow_below:  # one skill directory
            logger.debug("SKILL.md found; treating %s as a skill directory", self.root)
            front = self._skill(skill)
            kitfile.prompts.append(self._skill_prompt(listing, front))
            if front is not None:
                kitfile.package.name = kitfile.package.name or front.name
                kitfile.package.description = kitfile.package.description or front.description
                kitfile.package.license = kitfile.package.license or front.license
            return kitfile

        found = self._classify(listing, depth)
        detected = self._detect_license(found.license_path) if found.license_path else ""
        if len(found.unknown) > 5:
            kitfile.code.append(Code(path="."))
        else:
            kitfile.code.extend(Code(path=f.path) for f in found.unknown)
        if found.models:
            kitfile.model = self._pick_model(found.models)
            kitfile.model.parts.extend(ModelPart(path=f.path) for f in found.metadata)
        else:
            kitfile.datasets.extend(Dataset(path=f.path) for f in found.metadata)
        if detected:
            if kitfile.model is not None:
                kitfile.model.license = detected
            elif len(kitfile.datasets) == 1:
                kitfile.datasets[0].license = detected
            elif len(kitfile.code) == 1:
                kitfile.code[0].license = detected
            else:
                kitfile.package.license = detected
        self._skill_package_metadata(listing)
        return kitfile

    def _classify(self, listing: _Dir, depth: int) -> _Found:
        """Files of ``listing`` one by one; its subdirectories as units at depth 0, else recursively."""
        kitfile, found = self.kitfile, _Found()
        if listing.path != "." and not listing.mlflow_below and (skill := listing.skill_file()) is not None:
            kitfile.prompts.append(self._skill_prompt(listing, self._skill(skill)))
            return found
        for file in listing.files:
            if file.name in _KITFILE_NAMES:
                continue
            lower = file.name.lower()
            if lower.startswith("readme"):
                kitfile.docs.append(Docs(path=file.path, description="Readme file"))
                continue
            if lower.startswith("license"):
                kitfile.docs.append(Docs(path=file.path, description="License file"))
                found.license_path = file.path
                continue
            kind = _file_type(file.path)
            if kind == _MODEL:
                found.models.append(_weights(file))
            elif kind == _METADATA:
                found.metadata.append(file)
            elif kind == _DOCS:
                kitfile.docs.append(Docs(path=file.path))
            elif kind == _DATASET:
                kitfile.datasets.append(Dataset(path=file.path))
            elif kind == _PROMPT:
                kitfile.prompts.append(Prompt(path=file.path))
            elif kind == _MCP:
                kitfile.mcp_servers.append(_mcp_server(file.path))
            else:
                found.unknown.append(file)
        for sub in listing.subdirs:
            if sub.is_mlflow:
                found.models.append(_Candidate(path=_dir_path(sub.path), name="", size=0, folder=sub))
            elif depth == 0 and not sub.mlflow_below:
                found.models.extend(self._classify_unit(sub))
            else:  # licenses below the top level are not detected: it is unclear what they would apply to
                inner = self._classify(sub, depth - 1 if depth != 0 else 0)
                found.models.extend(inner.models)
                found.metadata.extend(inner.metadata)
                kitfile.code.extend(Code(path=f.path) for f in inner.unknown)
        return found

    def _classify_unit(self, listing: _Dir) -> list[_Candidate]:
        """One directory as a whole, by its direct children; returns the model candidates it holds."""
        kitfile = self.kitfile
        if (skill := listing.skill_file()) is not None:
            kitfile.prompts.append(self._skill_prompt(listing, self._skill(skill)))
            return []
        path = _dir_path(listing.path)
        if listing.name == "docs":
            kitfile.docs.append(Docs(path=path))
            return []
        if listing.name in _CODE_DIRS:
            kitfile.code.append(Code(path=path))
            return []
        contents: list[list[str]] = [[] for _ in range(_UNKNOWN + 1)]
        contents[_UNKNOWN].extend(sub.path for sub in listing.subdirs)
        models: list[_Candidate] = []
        metadata: list[_Candidate] = []
        for file in listing.files:
            kind = _file_type(file.name)
            if kind == _MODEL:
                models.append(_weights(file))
            elif kind == _METADATA:
                metadata.append(_weights(file))
            contents[kind].append(file.path)
        overall, mixed = _UNKNOWN, False
        for kind, paths in enumerate(contents):
            if paths and kind != _METADATA:
                mixed = mixed or overall != _UNKNOWN
                overall = kind
        if mixed:
            kitfile.code.append(Code(path=path))
            return models
        if overall == _MODEL:
            return models + metadata
        if overall == _DATASET:
            kitfile.datasets.append(Dataset(path=path))
        elif overall == _DOCS:
            kitfile.docs.append(Docs(path=path))
        elif overall == _PROMPT:
            kitfile.prompts.append(Prompt(path=path))
        elif overall == _MCP:  # each mcpServers entry is one bundle
            kitfile.mcp_servers.extend(_mcp_server(p) for p in contents[_MCP])
        else:  # only metadata, only unknown, or empty
            kitfile.code.append(Code(path=path))
        return models

    def _pick_model(self, candidates: list[_Candidate]) -> Model:
        mlflow = [(c, c.folder) for c in candidates if c.folder is not None]
        if mlflow:  # an MLflow model wins; any other candidate is a part
            first, folder = mlflow[0]
            if len(mlflow) > 1:
                logger.warning("Several MLflow models found; %s is the model, the others are parts", first.path)
            model = self._mlflow_model(folder)
            model.parts = [ModelPart(path=c.path) for c in candidates if c is not first]
            return model
        if len(candidates) == 1:
            return Model(name=candidates[0].name, path=candidates[0].path)
        largest: _Candidate | None = None
        for candidate in candidates:
            if candidate.size > (largest.size if largest is not None else 0):
                largest = candidate
        average = sum(c.size for c in candidates) // len(candidates)
        if largest is not None and largest.size > average + average // 2:
            parts = [ModelPart(path=c.path) for c in candidates if c is not largest]
            return Model(name=largest.name, path=largest.path, parts=parts)
        return Model(path=candidates[0].path, parts=[ModelPart(path=c.path) for c in candidates[1:]])

    def _mlflow_model(self, listing: _Dir) -> Model:
        folder = self.root / listing.path
        info = read_mlmodel(folder / MLMODEL_FILE)
        name = info.name or (self.root.resolve().name if listing.path == "." else listing.name)
        return Model(
            name=name,
            path=_dir_path(listing.path),
            framework=info.framework,
            format=info.format,
            version=info.version,
        )

    def _detect_license(self, path: str) -> str:
        try:
            detected = detect_license((self.root / path).read_bytes())
        except OSError as err:
            logger.debug("Error determining license type: %s", err)
            detected = ""
        if not detected:
            logger.warning("Unable to determine license type")
        return detected

    def _skill(self, file: _File) -> _Skill | None:
        try:
            text = (self.root / file.path).read_bytes().decode("utf-8", errors="replace")
        except OSError as err:
            logger.warning("Failed to read %s: %s", file.path, err.strerror or err)
            return None
        return _parse_front_matter(text, file.path)

    def _skill_prompt(self, listing: _Dir, front: _Skill | None) -> Prompt:
        # kit writes a skill directory's path as listed: no trailing slash ("." for the root).
        if front is None:
            return Prompt(path=listing.path)
        return Prompt(name=front.name, path=listing.path, description=front.description)

    def _skill_package_metadata(self, listing: _Dir) -> None:
        """Skills directly under the root lend the package their metadata (kit's applySkillMetadataToPackage)."""
        fronts = [
            front
            for sub in listing.subdirs
            if (skill := sub.skill_file()) is not None and (front := self._skill(skill)) is not None
        ]
        if not fronts:
            return
        package, kitfile = self.kitfile.package, self.kitfile
        only_prompts = kitfile.model is None and not kitfile.code and not kitfile.datasets and not kitfile.docs
        if only_prompts and len(fronts) == 1:
            package.name = package.name or fronts[0].name
            package.description = package.description or fronts[0].description
        if not package.license and fronts[0].license:
            package.license = fronts[0].license


def _file_type(query: str) -> int:
    base = query.rsplit("/", 1)[-1].lower()
    if base in _PROMPT_NAMES or ".prompt" in base:
        return _PROMPT
    if query.endswith(_MODEL_SUFFIXES) or _MODEL_GLOB.fullmatch(query):
        return _MODEL
    if query.endswith(_METADATA_SUFFIXES):
        return _METADATA
    if query.endswith(_DOCS_SUFFIXES):
        return _DOCS
    if query.endswith(_DATASET_SUFFIXES):
        return _DATASET
    if query.endswith(_MCP_SUFFIX):
        return _MCP
    return _UNKNOWN


def _weights(file: _File) -> _Candidate:
    dot = file.name.rfind(".")  # Go's filepath.Ext: from the last dot of the base name
    ext = file.name[dot:] if dot >= 0 else ""
    return _Candidate(path=file.path, name=file.path[: len(file.path) - len(ext)], size=file.size)


def _mcp_server(path: str) -> McpServer:
    return McpServer(name=path.removesuffix(_MCP_SUFFIX), path=path)


def _dir_path(path: str) -> str:
    return path if path == "." or path.endswith("/") else path + "/"


def _list_dir(directory: Path, rel: str) -> _Dir:
    """kit's DirectoryListingFromFS: names sorted bytewise, regular files and directories only, no OS junk."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: os.fsencode(entry.name))
    files: list[_File] = []
    subdirs: list[_Dir] = []
    for entry in entries:
        if is_os_junk(entry.name):
            continue
        path = entry.name if rel == "." else f"{rel}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            subdirs.append(_list_dir(Path(entry.path), path))
        elif entry.is_file(follow_symlinks=False):
            files.append(_File(name=entry.name, path=path, size=entry.stat(follow_symlinks=False).st_size))
        elif entry.is_symlink():
            logger.debug("Skipping symlink %s", path)
    mlflow_below = any(sub.is_mlflow or sub.mlflow_below for sub in subdirs)
    name = directory.name if rel != "." else "."
    return _Dir(name=name, path=rel, files=tuple(files), subdirs=tuple(subdirs), mlflow_below=mlflow_below)


def _parse_front_matter(text: str, where: str) -> _Skill | None:
    """SKILL.md front matter: a first line ``---``, YAML, a line ``---``; ``name``, ``description``, ``license``."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0] != "---":
        return None
    end = next((i for i in range(1, len(lines)) if lines[i] == "---"), -1)
    if end == -1:
        return None
    body = "\n".join(lines[1:end])
    if not body.strip():
        return None
    try:
        node = yaml.compose(body, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        logger.warning("Malformed frontmatter in %s: %s", where, str(err).replace("\n", " "))
        return None
    if node is None:
        return None
    if not isinstance(node, yaml.MappingNode):
        logger.warning("Malformed frontmatter in %s: not a mapping", where)
        return None
    values: dict[str, str] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value in values:
            logger.warning("Malformed frontmatter in %s: mapping key %r already defined", where, key.value)
            return None
        if key.value not in ("name", "description", "license"):
            values[key.value] = ""
            continue
        if not isinstance(value, yaml.ScalarNode):
            logger.warning("Malformed frontmatter in %s: %s is not a string", where, key.value)
            return None
        values[key.value] = "" if value.tag == "tag:yaml.org,2002:null" else value.value
    return _Skill(values.get("name", ""), values.get("description", ""), values.get("license", ""))
