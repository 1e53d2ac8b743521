"""Which secret to use for a registry: one documented chain of credential sources, and kit's credentials file.

:func:`default_credentials` asks, in this order, and the first source that knows the registry wins:

1. explicit ``username``/``password`` arguments;
2. the process environment: ``PYMODELKIT_USERNAME``/``PYMODELKIT_PASSWORD`` (limited to ``PYMODELKIT_REGISTRY`` when
   that is set), else pykitops' ``JOZU_USERNAME``/``JOZU_PASSWORD`` (limited to ``JOZU_REGISTRY``);
3. the same variables in ``./.env``. Unlike pykitops, ``.env`` never overrides the real environment: an argument
   beats the environment, which beats a file (``STYLE.md`` rule 7), and the process environment is left untouched;
4. kit's ``$KITOPS_HOME/credentials.json`` (Docker config format, with its ``credHelpers``/``credsStore``);
5. Docker's ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``): ``credHelpers[host]``, then
   ``credsStore``, run through the ``docker-credential-<name> get`` protocol, then the inline ``auths`` entry.

Nothing found means anonymous. A source that is broken (a malformed file, half a username/password pair, a helper
that is missing or fails) raises :class:`~pymodelkit.errors.AuthError` rather than being skipped. Writing
(:func:`store_credential`, :func:`remove_credential`) produces kit's ``credentials.json`` byte for byte (spec
``kitops-modelkit.md`` §5.4). This module is longer than most because the five sources share one file format and
one key-matching rule; turning a credential into an ``Authorization`` header is ``registry.auth``'s job.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from pymodelkit import settings
from pymodelkit._atomic import write_atomic
from pymodelkit.errors import AuthError
from pymodelkit.oci.gojson import Struct, compact_json, go_json_bytes, go_json_string, indent_json

__all__ = [
    "CREDENTIALS_FILE",
    "DOCKER_HUB_HOSTS",
    "DOCKER_HUB_SERVER",
    "HELPER_TIMEOUT_S",
    "ChainCredentials",
    "Credential",
    "CredentialSource",
    "DockerConfigCredentials",
    "DotenvCredentials",
    "EnvironmentCredentials",
    "ExplicitCredentials",
    "KitCredentials",
    "canonical_host",
    "credentials_path",
    "default_credentials",
    "parse_dotenv",
    "remove_credential",
    "server_address",
    "store_credential",
]

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
HELPER_TIMEOUT_S = 60.0
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_TOKEN_USERNAME = "<token>"  # a helper's username meaning "the secret is an identity token"
_NOT_FOUND = "credentials not found"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, repr=False)
class Credential:
    """What a registry login holds. ``repr`` shows the username and which secrets are set, never their values."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # OAuth2 refresh token (Docker "identitytoken"); never sent as Basic
    registry_token: str = ""  # a bearer token sent as is (Docker "registrytoken")

    @property
    def is_empty(self) -> bool:
        """Tell whether nothing at all is set."""
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def __repr__(self) -> str:
        hidden = ", ".join(
            f"{name}=<redacted>" for name in ("password", "identity_token", "registry_token") if getattr(self, name)
        )
        return f"Credential(username={self.username!r}{', ' + hidden if hidden else ''})"

    __str__ = __repr__


@runtime_checkable
class CredentialSource(Protocol):
    """Something that may know the credential for a registry host (``host`` or ``host:port``)."""

    def get_credential(self, registry: str) -> Credential | None:
        """The credential for ``registry``, or ``None`` when this source knows nothing about it."""
        ...


def server_address(registry: str) -> str:
    """The key a registry's credential is stored under: ``https://index.docker.io/v1/`` for Docker Hub, else as is."""
    return DOCKER_HUB_SERVER if canonical_host(registry) == "docker.io" else registry


def credentials_path(home: Path | None = None) -> Path:
    """kit's credentials file: ``<home>/credentials.json``, ``home`` defaulting to the kit home."""
    return (home if home is not None else settings.kitops_home()) / CREDENTIALS_FILE


# --- sources ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ExplicitCredentials:
    """Credentials given by the caller; they apply to whichever registry is asked for."""

    credential: Credential

    def get_credential(self, registry: str) -> Credential | None:
        """The given credential, for any registry."""
        return self.credential

    def __repr__(self) -> str:
        return f"ExplicitCredentials({self.credential!r})"


class EnvironmentCredentials:
    """``PYMODELKIT_USERNAME``/``_PASSWORD``/``_REGISTRY``, else ``JOZU_USERNAME``/``_PASSWORD``/``_REGISTRY``.

    Reads the process environment at each call unless ``variables`` is given. ``origin`` names where the variables
    came from, for error messages.
    """

    def __init__(self, variables: Mapping[str, str] | None = None, *, origin: str = "the environment") -> None:
        self._variables = dict(variables) if variables is not None else None
        self._origin = origin

    def get_credential(self, registry: str) -> Credential | None:
        """The first of the two variable sets that is set and, if limited to one registry, limited to this one."""
        variables = self._variables if self._variables is not None else settings.credential_environ()
        for prefix in ("PYMODELKIT_", "JOZU_"):
            username = variables.get(prefix + "USERNAME", "")
            password = variables.get(prefix + "PASSWORD", "")
            if not username and not password:
                continue
            if not username or not password:
                present, missing = ("USERNAME", "PASSWORD") if username else ("PASSWORD", "USERNAME")
                if prefix == "JOZU_":
                    # pykitops' recipes set JOZU_PASSWORD alone and pass the username to ModelKitManager, which logs
                    # in (storing both in kit's credentials file): half a JOZU_ pair is not a credential, go on.
                    logger.debug("%s%s is set in %s without %s%s: ignored", prefix, present, self._origin, prefix,
                                 missing)
                    continue
                raise AuthError(
                    f"{prefix}{present} is set in {self._origin} but {prefix}{missing} is not: set both or neither"
                )
            limit = variables.get(prefix + "REGISTRY", "")
            if limit and canonical_host(limit) != canonical_host(registry):
                continue
            return Credential(username=username, password=password)
        return None

    def __repr__(self) -> str:
        return f"EnvironmentCredentials(origin={self._origin!r})"


class DotenvCredentials:
    """The credential variables of :class:`EnvironmentCredentials`, read from a ``.env`` file.

    ``path`` defaults to ``.env`` in the current directory at call time (none if ``PYTHON_DOTENV_DISABLED`` is true).
    The file uses python-dotenv's syntax (``KEY=value``, ``export``, quotes, comments) without ``${VAR}`` expansion.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    def get_credential(self, registry: str) -> Credential | None:
        """The credential the ``.env`` file's variables give for ``registry``."""
        path = self._path if self._path is not None else settings.dotenv_path()
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        values = parse_dotenv(text)
        variables = {name: values[name] for name in settings.CREDENTIAL_VARIABLES if values.get(name)}
        return EnvironmentCredentials(variables, origin=str(path)).get_credential(registry)

    def __repr__(self) -> str:
        return f"DotenvCredentials(path={self._path!r})"


class DockerConfigCredentials:
    """Docker's ``config.json``: ``credHelpers[host]``, then ``credsStore``, then the inline ``auths`` entry.

    ``path`` defaults to ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``) at call time. Keys match
    as Docker matches them: exactly, or with the scheme and path stripped (``https://registry.example.com/v2/``);
    Docker Hub is ``https://index.docker.io/v1/``. Helpers run with a timeout of :data:`HELPER_TIMEOUT_S`.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    def config_path(self) -> Path:
        """The file this source reads."""
        return self._path if self._path is not None else settings.docker_config_dir() / "config.json"

    def get_credential(self, registry: str) -> Credential | None:
        """The credential the file (or one of its helpers) holds for ``registry``, or ``None``."""
        path = self.config_path()
        config = _read_config(path)
        if config is None:
            return None
        helper = _match(config.cred_helpers, registry) or config.creds_store
        if helper:
            credential = _helper_get(helper, server_address(registry))
            if credential is not None:
                return credential
        entry = _match(config.auths, registry)
        return None if entry is None else _decode_entry(entry, path, registry)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.config_path()!s})"


class KitCredentials(DockerConfigCredentials):
    """kit's ``<home>/credentials.json`` (same format as Docker's); ``home`` defaults to the kit home at call time."""

    def __init__(self, home: Path | None = None) -> None:
        super().__init__(None)
        self._home = home

    def config_path(self) -> Path:
        """The file this source reads."""
        return credentials_path(self._home)


class ChainCredentials:
    """Ask each source in order; the first that knows the registry wins, and an error from any source propagates."""

    def __init__(self, sources: Iterable[CredentialSource]) -> None:
        self.sources: tuple[CredentialSource, ...] = tuple(sources)

    def get_credential(self, registry: str) -> Credential | None:
        """The first source's answer for ``registry`` that is not ``None``."""
        for source in self.sources:
            credential = source.get_credential(registry)
            if credential is not None and not credential.is_empty:
                logger.debug("credentials for %s from %r", registry, source)
                return credential
        logger.debug("no credentials for %s: anonymous", registry)
        return None

    def __repr__(self) -> str:
        return f"ChainCredentials({list(self.sources)!r})"


def default_credentials(
    *, username: str | None = None, password: str | None = None, home: Path | None = None
) -> CredentialSource:
    """The documented chain (module docstring): explicit, environment, ``.env``, kit's file, Docker's config.

    A ``password`` without a ``username`` is an identity (OAuth2 refresh) token, as ``kit login`` treats it.

    Raises:
        AuthError: a ``username`` without a ``password``.
    """
    sources: list[CredentialSource] = []
    if username or password:
        if not password:
            raise AuthError("a username was given without a password")
        if username:
            sources.append(ExplicitCredentials(Credential(username=username, password=password)))
        else:
            sources.append(ExplicitCredentials(Credential(identity_token=password)))
    sources += [EnvironmentCredentials(), DotenvCredentials(), KitCredentials(home), DockerConfigCredentials()]
    return ChainCredentials(sources)


# --- writing kit's credentials.json ----------------------------------------------------------------------------------


def store_credential(registry: str, credential: Credential, home: Path | None = None) -> Path:
    """Save ``credential`` for ``registry`` in kit's credentials file, exactly as ``kit login`` writes it.

    The file is Docker config JSON, tab-indented, keys sorted, other top-level keys and entries kept; it is replaced
    by temp file and rename with mode 0600, in a directory created with mode 0700. When the file names a helper for
    the registry (``credHelpers`` or ``credsStore``), the secret goes to that helper instead and the file is left as
    is. Returns the file's path.

    Raises:
        AuthError: an empty credential, a username containing ``:``, an unreadable file, or a helper failure.
    """
    if credential.is_empty:
        raise AuthError(f"no credential to store for {registry}")
    if ":" in credential.username:
        raise AuthError("a username must not contain ':'")
    path = credentials_path(home)
    key = server_address(registry)
    content = _read_raw(path)
    helper = _configured_helper(content, registry, path)
    if helper:
        _helper_store(helper, key, credential)
        return path
    auths = _raw_auths(content, path)
    auths[key] = go_json_bytes(_auth_entry(credential)).decode("utf-8")
    _write_raw(path, content, auths)
    return path


def remove_credential(registry: str, home: Path | None = None) -> bool:
    """Remove the credential kit's file (or its helper) holds for ``registry``; ``False`` if there was none.

    Every ``auths`` key naming this host goes (``host``, ``https://host/``, …), not only kit's own key.

    Raises:
        AuthError: an unreadable file or a helper failure.
    """
    path = credentials_path(home)
    content = _read_raw(path)
    helper = _configured_helper(content, registry, path)
    if helper:
        return _helper_erase(helper, server_address(registry))
    auths = _raw_auths(content, path)
    doomed = [key for key in auths if key == server_address(registry) or _same_host(key, registry)]
    if not doomed:
        return False
    for key in doomed:
        del auths[key]
    _write_raw(path, content, auths)
    return True


# --- private: key matching -------------------------------------------------------------------------------------------


def canonical_host(text: str) -> str:
    """``https://Registry.Example.com:5000/v2/`` → ``registry.example.com:5000``; Docker Hub's names → ``docker.io``."""
    text = text.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    host = text.split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def _same_host(key: str, registry: str) -> bool:
    return canonical_host(key) == canonical_host(registry)


def _match(mapping: Mapping[str, _T], registry: str) -> _T | None:
    exact = server_address(registry)
    if exact in mapping:
        return mapping[exact]
    for key in sorted(mapping):
        if _same_host(key, registry):
            return mapping[key]
    return None


# --- private: reading config files -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Config:
    auths: dict[str, object]
    creds_store: str
    cred_helpers: dict[str, str]


def _read_config(path: Path) -> _Config | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        return _Config({}, "", {})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuthError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if data is None:
        return _Config({}, "", {})
    auths = data.get("auths") if isinstance(data, dict) else None
    store = data.get("credsStore") if isinstance(data, dict) else None
    helpers = data.get("credHelpers") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(auths or {}, dict) or not isinstance(store or "", str):
        raise AuthError(f"{path} is not a Docker config file (expected an object with an 'auths' object)")
    if not isinstance(helpers or {}, dict) or not all(isinstance(v, str) for v in (helpers or {}).values()):
        raise AuthError(f"{path}: 'credHelpers' must map registry hosts to helper names")
    return _Config(dict(auths or {}), store or "", dict(helpers or {}))


def _decode_entry(entry: object, path: Path, registry: str) -> Credential | None:
    if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values() if v is not None):
        raise AuthError(f"{path}: the auths entry for {registry} is not an object of strings")
    fields: dict[str, str] = {k: v for k, v in entry.items() if isinstance(v, str)}
    username, password = fields.get("username", ""), fields.get("password", "")
    if fields.get("auth"):
        try:
            decoded = base64.b64decode(fields["auth"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(f"{path}: the 'auth' field for {registry} is not valid base64") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError(f"{path}: the 'auth' field for {registry} is not base64 of 'username:password'")
    credential = Credential(
        username=username,
        password=password,
        identity_token=fields.get("identitytoken", ""),
        registry_token=fields.get("registrytoken", ""),
    )
    return None if credential.is_empty else credential


def parse_dotenv(text: str) -> dict[str, str]:
    """python-dotenv's line syntax: ``[export] KEY=VALUE``, single quotes literal, double quotes with escapes."""
    values: dict[str, str] = {}
    pos, n = 0, len(text)
    while pos < n:
        end = text.find("\n", pos)
        line_end = n if end < 0 else end
        line = text[pos:line_end]
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            pos = line_end + 1
            continue
        name, _, rest = stripped.partition("=")
        name = name.strip().removeprefix("export ").strip()
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            start = pos + line.index("=") + 1
            start = text.index(quote, start) + 1
            value, pos = _dotenv_quoted(text, start, quote)
            pos = text.find("\n", pos)
            pos = n if pos < 0 else pos + 1
        else:
            comment = rest.find(" #")
            value = (rest if comment < 0 else rest[:comment]).strip()
            pos = line_end + 1
        values[name] = value
    return values


_DOUBLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f"}


def _dotenv_quoted(text: str, pos: int, quote: str) -> tuple[str, int]:
    out: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            nxt = text[pos + 1]
            if quote == '"' and nxt in _DOUBLE_ESCAPES:
                out.append(_DOUBLE_ESCAPES[nxt])
                pos += 2
                continue
            if quote == "'" and nxt in ("'", "\\"):
                out.append(nxt)
                pos += 2
                continue
        if ch == quote:
            return "".join(out), pos + 1
        out.append(ch)
        pos += 1
    raise AuthError("a quoted value in .env is not closed")


# --- private: credential helpers -------------------------------------------------------------------------------------


def _run_helper(name: str, verb: str, stdin: str) -> subprocess.CompletedProcess[bytes]:
    program = f"docker-credential-{name}"
    executable = shutil.which(program)
    if executable is None:
        raise AuthError(f"credential helper {program} is not on PATH (named in a Docker or kit config file)")
    try:
        return subprocess.run(
            [executable, verb], input=stdin.encode("utf-8"), capture_output=True, timeout=HELPER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} did not answer '{verb}' within {HELPER_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise AuthError(f"credential helper {program} could not be run: {exc.strerror or exc}") from None


def _helper_failure(name: str, verb: str, server: str, proc: subprocess.CompletedProcess[bytes]) -> AuthError:
    # A helper's error output is a message, not a secret; keep one short line of it anyway.
    said = (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip().splitlines()
    detail = f": {said[0][:200]}" if said and "secret" not in said[0].lower() else ""
    return AuthError(
        f"credential helper docker-credential-{name} failed to {verb} credentials for {server} "
        f"(exit status {proc.returncode}){detail}"
    )


def _is_not_found(proc: subprocess.CompletedProcess[bytes]) -> bool:
    said = (proc.stdout + proc.stderr).decode("utf-8", "replace").lower()
    return _NOT_FOUND in said


def _helper_get(name: str, server: str) -> Credential | None:
    proc = _run_helper(name, "get", server)
    if proc.returncode != 0:
        if _is_not_found(proc):
            return None
        raise _helper_failure(name, "get", server, proc)
    try:
        answer = json.loads(proc.stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("Username", ""), str):
        raise AuthError(f"credential helper docker-credential-{name} gave an answer that is not its JSON for {server}")
    username, secret = answer.get("Username", ""), answer.get("Secret", "")
    if not isinstance(secret, str):
        raise AuthError(f"credential helper docker-credential-{name} gave a non-string secret for {server}")
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret) if secret else None
    credential = Credential(username=username, password=secret)
    return None if credential.is_empty else credential


def _helper_store(name: str, server: str, credential: Credential) -> None:
    if credential.registry_token:
        raise AuthError(f"credential helper docker-credential-{name} cannot hold a registry token")
    if credential.identity_token:
        username, secret = _TOKEN_USERNAME, credential.identity_token
    else:
        username, secret = credential.username, credential.password
    payload = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
    proc = _run_helper(name, "store", payload)
    if proc.returncode != 0:
        raise _helper_failure(name, "store", server, proc)


def _helper_erase(name: str, server: str) -> bool:
    proc = _run_helper(name, "erase", server)
    if proc.returncode == 0:
        return True
    if _is_not_found(proc):
        return False
    raise _helper_failure(name, "erase", server, proc)


# --- private: raw Docker config JSON, written as Go's encoding/json writes map[string]json.RawMessage ------------


def _read_raw(path: Path) -> dict[str, str]:
    """Top-level keys → their values' raw JSON text, compacted as Go compacts a ``json.RawMessage``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        return {}
    try:
        return _raw_object(text, path)
    except ValueError as exc:
        raise AuthError(f"{path} is not a JSON object: {exc}") from None


def _raw_object(text: str, path: Path) -> dict[str, str]:
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text.startswith("null", pos) and not text[pos + 4 :].strip():
        return {}
    if text[pos : pos + 1] != "{":
        raise ValueError("expected '{'")
    members: dict[str, str] = {}
    pos = _skip_ws(text, pos + 1)
    if text[pos : pos + 1] == "}":
        pos += 1
    else:
        while True:
            if text[pos : pos + 1] != '"':
                raise ValueError(f"expected a key at offset {pos}")
            key, pos = scanstring(text, pos + 1)
            pos = _skip_ws(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError(f"expected ':' at offset {pos}")
            pos = _skip_ws(text, pos + 1)
            _, end = decoder.raw_decode(text, pos)
            members[key] = compact_json(text[pos:end])  # a repeated key: the last one counts, as in Go
            pos = _skip_ws(text, end)
            if text[pos : pos + 1] == ",":
                pos = _skip_ws(text, pos + 1)
                continue
            if text[pos : pos + 1] != "}":
                raise ValueError(f"expected ',' or '}}' at offset {pos}")
            pos += 1
            break
    if text[pos:].strip():
        raise ValueError(f"unexpected data after the object at offset {pos}")
    return members


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _configured_helper(content: Mapping[str, str], registry: str, path: Path) -> str:
    try:
        helpers = json.loads(content.get("credHelpers", "null")) or {}
        store = json.loads(content.get("credsStore", "null")) or ""
    except json.JSONDecodeError:  # pragma: no cover - validated by _raw_object
        helpers, store = {}, ""
    if not isinstance(helpers, dict) or not isinstance(store, str):
        raise AuthError(f"{path}: 'credHelpers' or 'credsStore' is malformed")
    helper = _match(helpers, registry) or store
    if not isinstance(helper, str):
        raise AuthError(f"{path}: 'credHelpers' must map registry hosts to helper names")
    return helper


def _raw_auths(content: Mapping[str, str], path: Path) -> dict[str, str]:
    raw = content.get("auths", "null")
    if raw == "null":
        return {}
    try:
        return _raw_object(raw, path)
    except ValueError:
        raise AuthError(f"{path}: 'auths' is not an object") from None


def _auth_entry(credential: Credential) -> Struct:
    # oras-go's AuthConfig field order; empty fields are omitted (omitempty).
    entry = Struct()
    if credential.username or credential.password:
        entry["auth"] = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode("ascii")
    if credential.identity_token:
        entry["identitytoken"] = credential.identity_token
    if credential.registry_token:
        entry["registrytoken"] = credential.registry_token
    return entry


def _write_raw(path: Path, content: dict[str, str], auths: Mapping[str, str]) -> None:
    content = dict(content)
    content["auths"] = _raw_map(auths)
    if content.get("credsStore") is not None and json.loads(content["credsStore"]) in ("", None):
        del content["credsStore"]  # oras-go drops an empty credsStore on save
    data = indent_json(_raw_map(content).encode("utf-8"), "\t")
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o600)


def _raw_map(members: Mapping[str, str]) -> str:
    keys = sorted(members, key=lambda k: k.encode("utf-8", "surrogatepass"))
    return "{" + ",".join(f"{go_json_string(k)}:{members[k]}" for k in keys) + "}"
