"""Kitfile validation as current kit's ``KitFile.Validate`` (spec ``kitops-modelkit.md`` §1.3, trap 15;
``kitops-ml/kitops@1abb877:pkg/artifact/kitfile.go``).

Paths are classified like kit's ``GetPathType`` (ModelKit reference, then Go's ``url.Parse``), cleaned with
``filepath.Clean`` before the duplicate, absolute and outside-the-context checks, and compared with Go's
``filepath.Rel`` against remote (ModelKit-reference) datasets. Messages are kit's, sorted as kit sorts them, except
that an unnamed model or part is ``model``/``modelpart`` (kit writes ``model `` with a dangling space). A Kitfile
read from a file (``Kitfile.source``) gets its messages located: ``<file>:<line>: <element>: <kit's message>``, the
element named by its key (``model``, ``model.parts[0]``, ``datasets[1] (name: train)``).

Kit only warns about ``manifestVersion`` (any value but ``1.0.0``, missing included): current kit's
``KitFile.Validate`` warns ``Unrecognized manifestVersion X: treating Kitfile as 1.0.0`` and packs; so do we.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pymodelkit.errors import InvalidReferenceError, KitfileError
from pymodelkit.kitfile.model import Kitfile, LayerElement
from pymodelkit.kitfile.paths import clean_path, is_local_path
from pymodelkit.oci.reference import parse_reference

__all__ = ["PathType", "classify_path", "is_modelkit_reference", "modelkit_reference_text", "validate_kitfile"]

PathType = Literal["local", "modelkit", "s3", "http", "unknown"]

MANIFEST_VERSION = "1.0.0"
_MODEL_PART_TYPE_RE = re.compile(r"[\w][\w.-]*", re.ASCII)
_MODEL_PART_TYPE_MAX_LEN = 64


def modelkit_reference_text(path: str) -> str:
    """The reference kit reads from a Kitfile's model path: an empty tag (``repo:``) is none to kit's parser, so it
    is dropped here (the CLI refuses that spelling as a reference; a Kitfile keeps kit's reading)."""
    return path[:-1] if path.endswith(":") and "@" not in path else path


def is_modelkit_reference(path: str) -> bool:
    """kit's ``IsModelKitReference``: the text has ``:`` or ``@`` and parses as a reference (``models/v1:2`` does)."""
    if ":" not in path and "@" not in path:
        return False
    try:
        parse_reference(modelkit_reference_text(path))
    except InvalidReferenceError:
        return False
    return True


def classify_path(path: str) -> PathType:
    """What a Kitfile path names, as kit's ``GetPathType`` decides (§1.3 rule 2).

    ``"modelkit"``: a ModelKit reference; ``"local"``: anything ``url.Parse`` rejects or that has neither scheme nor
    host; ``"s3"``: an ``s3:`` URL; ``"http"``: ``http``/``https`` URLs (refused); ``"unknown"``: any other scheme,
    including Windows drive paths such as ``C:\\data``.
    """
    return _path_type(path)[0]


def _path_type(path: str) -> tuple[PathType, str | None]:
    """``GetPathType``: the type, and kit's error message for URLs it refuses."""
    if is_modelkit_reference(path):
        return "modelkit", None
    parsed = _go_url_scheme_and_host(path)
    if parsed is None or parsed == ("", ""):
        return "local", None
    scheme = parsed[0]
    if scheme == "s3":
        return "s3", None
    if scheme in ("http", "https"):
        return "http", f"HTTP urls are not supported in paths ({path})"
    return "unknown", f"unrecognized URL in path: {path}"


@dataclass(frozen=True, slots=True)
class _Where:
    """The element a problem is about: kit's id for it (``dataset layer 1``), its key in the Kitfile
    (``datasets[1] (name: train)``) and the line it starts at (0: unknown)."""

    kit_id: str
    key: str
    line: int


def _where(kit_id: str, key: str, element: LayerElement) -> _Where:
    name = getattr(element, "name", "")
    return _Where(kit_id, f"{key} (name: {name})" if name else key, element.line)


def validate_kitfile(kitfile: Kitfile) -> list[str]:
    """Check ``kitfile`` as kit does before packing; return the warnings.

    Warnings (kit's words): a ``manifestVersion`` other than ``1.0.0``, a missing one included (kit only warns
    too); a ``remoteHash`` given with a ModelKit-reference dataset.

    Raises:
        KitfileError: one or more rules are broken. ``err.problems`` are the messages (kit's words, sorted as kit
            sorts them) and ``err.warnings`` the warnings. ``str(err)`` is one line: for a Kitfile read from a file
            (``kitfile.source``), ``<file>:<line>: <element>: <problem>`` with any further problems appended as
            ``; line <n>: <element>: <problem>`` (``err.path``, ``err.line`` and ``err.key`` are the first one's);
            for one built in code, ``invalid Kitfile: <p1>; <p2>``.
    """
    warnings: list[str] = []
    if kitfile.manifest_version != MANIFEST_VERSION:
        warnings.append(f"Unrecognized manifestVersion {kitfile.manifest_version}: treating Kitfile as 1.0.0")
    errors: list[tuple[str, _Where]] = []
    paths: dict[str, list[_Where]] = {}
    remote_dataset_paths: list[str] = []

    def add_path(path: str, where: _Where) -> None:
        paths.setdefault(clean_path(path or "."), []).append(where)

    def check_local(path: str, label: str, where: _Where) -> bool:
        kind, error = _path_type(path)
        if error is not None:
            errors.append((f"invalid path for {label} ({path}): {error}", where))
        if kind != "local":
            errors.append((f"invalid path for {label} ({path}): only local paths are permitted", where))
        return kind == "local"

    model = kitfile.model
    if model is not None:
        where = _where(_kit_id("model", model.name), "model", model)
        add_path(model.path, where)
        kind, error = _path_type(model.path)
        if error is not None:
            errors.append((f"invalid path for model: {error}", where))
        if kind not in ("local", "modelkit"):
            errors.append(("invalid path for model: only local paths and ModelKit references are permitted", where))
        for index, part in enumerate(model.parts):
            part_id = _kit_id("modelpart", part.name)
            where = _where(part_id, f"model.parts[{index}]", part)
            add_path(part.path, where)
            check_local(part.path, "model part", where)
            if part.type:
                if not _MODEL_PART_TYPE_RE.fullmatch(part.type):
                    errors.append((
                        f"{part_id} has invalid type (must be alphanumeric with dots, dashes, and underscores)",
                        where,
                    ))
                if len(part.type.encode("utf-8", "surrogatepass")) > _MODEL_PART_TYPE_MAX_LEN:
                    errors.append((
                        f"{part_id} type is too long (must be fewer than {_MODEL_PART_TYPE_MAX_LEN} characters)",
                        where,
                    ))
    for index, code in enumerate(kitfile.code):
        where = _where(f"code layer {index}", f"code[{index}]", code)
        add_path(code.path, where)
        check_local(code.path, "code", where)
    for index, dataset in enumerate(kitfile.datasets):
        where = _where(f"dataset layer {index}", f"datasets[{index}]", dataset)
        add_path(dataset.path, where)
        check_local(dataset.path, "dataset", where)
        if dataset.remote_path:
            kind, error = _path_type(dataset.remote_path)
            if error is not None:
                errors.append((f"invalid remote path for dataset ({dataset.remote_path}): {error}", where))
            if kind == "s3":
                if not dataset.remote_hash:
                    errors.append((
                        f"remoteHash is required when remote dataset paths are used ({dataset.remote_path})", where
                    ))
            elif kind == "modelkit":
                if dataset.remote_hash:
                    warnings.append(f"remoteHash is ignored for ModelKit references in datasets ({dataset.path})")
                remote_dataset_paths.append(clean_path(dataset.path))
            else:
                errors.append((
                    "only S3 URLs and ModelKit references are supported for remote dataset paths "
                    f"({dataset.remote_path})",
                    where,
                ))
        elif dataset.remote_hash:
            errors.append(("remote hash is only applicable when remotePath is set", where))
    for index, docs in enumerate(kitfile.docs):
        where = _where(f"docs layer {index}", f"docs[{index}]", docs)
        add_path(docs.path, where)
        check_local(docs.path, "doc", where)
    for index, prompt in enumerate(kitfile.prompts):
        where = _where(f"prompt layer {index}", f"prompts[{index}]", prompt)
        add_path(prompt.path, where)
        check_local(prompt.path, "prompt", where)
    server_names: set[str] = set()
    for index, server in enumerate(kitfile.mcp_servers):
        where = _where(f"mcpServer layer {index}", f"mcpServers[{index}]", server)
        add_path(server.path, where)
        kind, error = _path_type(server.path)
        if error is not None:
            errors.append((f"invalid path for mcpServer ({server.path}): {error}", where))
        if kind != "local":
            errors.append((f"invalid path for mcpServer ({server.path}): only local paths are permitted", where))
        elif not server.path.endswith(".mcpb"):
            errors.append((
                f"invalid path for mcpServer ({server.path}): path must point to a single .mcpb file", where
            ))
        if not server.name:
            errors.append((f"mcpServer with path {server.path} must have a name", where))
        elif server.name in server_names:
            errors.append((f"duplicate mcpServer name {server.name}: names must be unique", where))
        else:
            server_names.add(server.name)

    for path, users in paths.items():
        ids = [user.kit_id for user in users]
        if len(ids) > 1:  # located at the last user: the one that repeats the path
            errors.append((f"{', '.join(ids[:-1])} and {ids[-1]} use the same path {path}", users[-1]))
        if path.startswith("/"):
            errors.append((f"absolute paths are not supported in a Kitfile (path {path} in {ids[0]})", users[0]))
        elif _path_type(path)[0] == "local" and not is_local_path(path):
            errors.append((
                f"paths outside the context directory are not supported in a Kitfile (path {path} in {ids[0]})",
                users[0],
            ))
        for remote_path in remote_dataset_paths:
            if remote_path == path:
                continue
            relative, rel_error = _go_rel(remote_path, path)
            if rel_error is not None:
                errors.append((f"error calculating relative path for remote dataset: {rel_error}", users[0]))
                continue
            if relative != ".." and not relative.startswith("../"):
                errors.append((f"{ids[0]} uses a path ({path}) that is within the path for a remote dataset",
                               users[0]))

    if errors:
        errors.sort(key=lambda error: error[0])  # kit sorts its messages (Go map order is random)
        raise _validation_error(kitfile.source, errors, warnings)
    return warnings


def _kit_id(kind: str, name: str) -> str:
    """kit's ``"model %s"`` / ``"modelpart %s"`` without the dangling space of an unnamed one."""
    return f"{kind} {name}" if name else kind


def _validation_error(source: str, errors: list[tuple[str, _Where]], warnings: list[str]) -> KitfileError:
    problems = [message for message, _ in errors]
    if not source:
        return KitfileError("invalid Kitfile: " + "; ".join(problems), problems=problems, warnings=warnings)
    first_message, first = errors[0]
    head = f"{source}:{first.line}" if first.line else source
    parts = [f"{head}: {first.key}: {first_message}"]
    for message, where in errors[1:]:
        parts.append(f"line {where.line}: {where.key}: {message}" if where.line else f"{where.key}: {message}")
    return KitfileError("; ".join(parts), path=source, line=first.line or None, key=first.key, problems=problems,
                        warnings=warnings)


# --- Go's net/url and path/filepath, as far as validation needs them -----------------------------------------

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@")
_HEX = frozenset("0123456789abcdefABCDEF")


def _go_url_scheme_and_host(raw: str) -> tuple[str, str] | None:
    """Go's ``url.Parse(raw)``: the (lower-cased) scheme and the host, or ``None`` where Parse fails."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        return None
    rest, _, fragment = raw.partition("#")
    if not _valid_escapes(fragment):
        return None
    if rest == "*":
        return "", ""
    scheme = ""
    for index, char in enumerate(rest):
        if char.isascii() and char.isalpha():
            continue
        if char.isascii() and (char.isdigit() or char in "+-."):
            if index == 0:
                break
            continue
        if char == ":":
            if index == 0:
                return None  # "missing protocol scheme"
            scheme, rest = rest[:index].lower(), rest[index + 1 :]
        break
    rest = rest[:-1] if rest.endswith("?") and rest.count("?") == 1 else rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme, ""  # an opaque URL such as "c:\data"
        if ":" in rest.partition("/")[0]:
            return None  # "first path segment in URL cannot contain colon"
    host = ""
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        parsed_host = _go_parse_authority(authority)
        if parsed_host is None:
            return None
        host = parsed_host
    if not _valid_escapes(rest):
        return None
    return scheme, host


def _valid_escapes(text: str, *, host: bool = False) -> bool:
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            code = text[index + 1 : index + 3]
            if len(code) < 2 or not set(code) <= _HEX:
                return False
            if host and int(code[0], 16) < 8 and code != "25":
                return False
            index += 3
            continue
        if host and char.isascii() and char not in _HOST_CHARS:
            return False
        index += 1
    return True


def _go_parse_authority(authority: str) -> str | None:
    userinfo, at, host = authority.rpartition("@")
    if not at:
        host = authority
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0 or not _valid_port(host[close + 1 :]):
            return None
    elif ":" in host and not _valid_port(host[host.rfind(":") :]):
        return None
    if not _valid_escapes(host, host=True):
        return None
    if at and (not set(userinfo) <= _USERINFO_CHARS or not _valid_escapes(userinfo)):
        return None
    return host


def _valid_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= char <= "9" for char in port[1:]))


def _go_rel(base_path: str, target_path: str) -> tuple[str, str | None]:
    """Go's ``filepath.Rel`` on Unix: ``(relative, None)`` or ``("", error message)``."""
    base, target = clean_path(base_path), clean_path(target_path)
    if target == base:
        return ".", None
    if base == ".":
        base = ""
    failure = f"Rel: can't make {target_path} relative to {base_path}"
    if base.startswith("/") != target.startswith("/"):
        return "", failure
    b0 = bi = t0 = ti = 0
    while True:
        while bi < len(base) and base[bi] != "/":
            bi += 1
        while ti < len(target) and target[ti] != "/":
            ti += 1
        if target[t0:ti] != base[b0:bi] or (bi >= len(base) and ti >= len(target)):
            break
        if bi < len(base):
            bi += 1
        if ti < len(target):
            ti += 1
        b0, t0 = bi, ti
    if base[b0:bi] == "..":
        return "", failure
    if b0 != len(base):
        relative = "/".join([".."] * (base[b0:].count("/") + 1))
        if t0 != len(target):
            relative += "/" + target[t0:]
        return relative, None
    return target[t0:], None
