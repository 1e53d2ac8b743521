"""Every environment variable pymodelkit reads, read here and only here, at call time.

| variable | meaning |
|---|---|
| ``KITOPS_HOME`` | kit's home holding ``storage/``; else ``$XDG_DATA_HOME/kitops``, else ``~/.local/share/kitops`` |
| ``XDG_DATA_HOME``, ``HOME`` | the defaults above |
| ``SOURCE_DATE_EPOCH`` | Unix seconds for the manifest's ``org.opencontainers.image.created`` (reproducible packs) |
| ``PYMODELKIT_LOG_LEVEL`` | the CLI's default log level (``debug``, ``info``, ``warning``, ``error``) |
| ``PYMODELKIT_USERNAME``, ``PYMODELKIT_PASSWORD`` | registry credentials, both or neither (``registry.credentials``) |
| ``PYMODELKIT_REGISTRY`` | limits ``PYMODELKIT_USERNAME``/``PASSWORD`` to this registry host (else: every registry) |
| ``JOZU_USERNAME``, ``_PASSWORD``, ``_REGISTRY`` | pykitops' names for the three above, used if those are unset |
| ``PYTHON_DOTENV_DISABLED`` | true: ignore ``./.env`` (which otherwise fills in the credential variables above) |
| ``DOCKER_CONFIG`` | directory of Docker's ``config.json`` (else ``~/.docker``), a read-only credential source |
| ``PYMODELKIT_PLAIN_HTTP`` | true: talk plain HTTP to every registry (as ``--plain-http``) |
| ``PYMODELKIT_TIMEOUT`` | seconds a registry request waits to connect, then for each read or write (default 30) |
| ``PYMODELKIT_GZIP_BACKEND`` | ``zlib`` or ``isal``: the deflate library of gzip layers (default: isal if installed) |
| ``PYMODELKIT_KEY_PASSWORD``, ``COSIGN_PASSWORD`` | the signing-key password (the first one set, even empty, wins) |
| ``PYMODELKIT_POLICY`` | the signature policy file; else ``$XDG_CONFIG_HOME/pymodelkit/policy.yaml`` if present |
| ``PYMODELKIT_DIRECT_IO`` | false: write large blobs through the page cache, not with ``O_DIRECT`` (default true) |
| ``KITOPS_CLIENT_CERT``, ``_KEY`` | the TLS client certificate and key files (PEM); override ``--cert``/``--key`` |
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import sys
from pathlib import Path

from pymodelkit.errors import ModelKitError

__all__ = [
    "CREDENTIAL_VARIABLES",
    "DEFAULT_REGISTRY_TIMEOUT_S",
    "KEY_PASSWORD_VARIABLES",
    "client_certificate_files",
    "created_time",
    "credential_environ",
    "direct_io",
    "docker_config_dir",
    "dotenv_path",
    "gzip_backend",
    "key_password",
    "kitops_home",
    "parse_bool",
    "plain_http",
    "policy_is_explicit",
    "policy_path",
    "registry_timeout",
    "source_date_epoch",
]

_EPOCH_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)


def parse_bool(value: str | None, *, default: bool = False, name: str | None = None) -> bool:
    """The one boolean parser for environment values: 1/true/yes/on and 0/false/no/off (any case); ``name``, the
    variable's, goes in the error message."""
    if value is None or value.strip() == "":
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ModelKitError(f"invalid {name or 'boolean value'} {value!r}: use 1/0, true/false, yes/no or on/off")


def kitops_home() -> Path:
    """The kit home directory, resolved as kit resolves it (``KITOPS_HOME``, else the platform data dir)."""
    explicit = os.environ.get("KITOPS_HOME")
    if explicit:
        return Path(explicit).absolute()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "kitops"
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        if local:
            return Path(local) / "kitops"
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "kitops"
    home = os.environ.get("HOME")
    if not home:
        raise ModelKitError("cannot find the kit home: set KITOPS_HOME or HOME")
    return Path(home) / ".local" / "share" / "kitops"


def source_date_epoch() -> str | None:
    """``SOURCE_DATE_EPOCH`` as set (``None`` when unset or empty): the time reproducible packs record."""
    return os.environ.get("SOURCE_DATE_EPOCH") or None


def created_time() -> _dt.datetime:
    """The creation time for a new manifest: ``SOURCE_DATE_EPOCH`` when set (integer seconds), else now (UTC)."""
    raw = source_date_epoch()
    if raw is None:
        return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    if not _EPOCH_RE.fullmatch(raw) or not -(2**63) <= int(raw) < 2**63:
        raise ModelKitError(
            f'error creating manifest: invalid SOURCE_DATE_EPOCH "{raw}": must be integer Unix seconds'
        )
    try:
        return _dt.datetime.fromtimestamp(int(raw), _dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ModelKitError(
            f'error creating manifest: SOURCE_DATE_EPOCH "{raw}" is out of the range of dates this system handles'
        ) from None


CREDENTIAL_VARIABLES = (
    "PYMODELKIT_USERNAME",
    "PYMODELKIT_PASSWORD",
    "PYMODELKIT_REGISTRY",
    "JOZU_USERNAME",
    "JOZU_PASSWORD",
    "JOZU_REGISTRY",
)


def credential_environ() -> dict[str, str]:
    """The :data:`CREDENTIAL_VARIABLES` set to a non-empty value in the process environment."""
    return {name: os.environ[name] for name in CREDENTIAL_VARIABLES if os.environ.get(name)}


def dotenv_path() -> Path | None:
    """``.env`` in the current directory (at call time), or ``None`` if absent or ``PYTHON_DOTENV_DISABLED`` is true."""
    if parse_bool(os.environ.get("PYTHON_DOTENV_DISABLED")):
        return None
    path = Path.cwd() / ".env"
    return path if path.is_file() else None


def docker_config_dir() -> Path:
    """The directory of Docker's ``config.json``: ``DOCKER_CONFIG``, else ``~/.docker``."""
    explicit = os.environ.get("DOCKER_CONFIG")
    if explicit:
        return Path(explicit)
    return Path.home() / ".docker"


def plain_http() -> bool:
    """``PYMODELKIT_PLAIN_HTTP``: whether every registry is reached over plain HTTP (default false)."""
    return parse_bool(os.environ.get("PYMODELKIT_PLAIN_HTTP"))


DEFAULT_REGISTRY_TIMEOUT_S = 30.0


def registry_timeout() -> float:
    """``PYMODELKIT_TIMEOUT``: the seconds a registry request waits for a connection, then for each read of the
    answer and each write of the body (default 30, kit's connect and response-header timeouts). It bounds every wait,
    not a whole transfer: a large blob takes as long as it takes while bytes keep moving. Raises ModelKitError for a
    value that is not a positive number."""
    raw = os.environ.get("PYMODELKIT_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_REGISTRY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ModelKitError(f"invalid PYMODELKIT_TIMEOUT {raw!r}: give a positive number of seconds")
    return value


KEY_PASSWORD_VARIABLES = ("PYMODELKIT_KEY_PASSWORD", "COSIGN_PASSWORD")


def key_password() -> bytes | None:
    """The signing-key password: ``PYMODELKIT_KEY_PASSWORD``, else ``COSIGN_PASSWORD``, else ``None``.

    A variable that is set counts even when empty (cosign reads ``COSIGN_PASSWORD=""`` as the empty password). The
    value is returned as the bytes the environment holds (``os.fsencode``).
    """
    for name in KEY_PASSWORD_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            return os.fsencode(value)
    return None


def policy_path() -> Path:
    """The signature policy file: ``PYMODELKIT_POLICY``, else ``$XDG_CONFIG_HOME/pymodelkit/policy.yaml`` (the config
    home defaulting to ``~/.config``)."""
    explicit = os.environ.get("PYMODELKIT_POLICY")
    if explicit:
        return Path(explicit).absolute()
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config) if config else Path.home() / ".config"
    return base / "pymodelkit" / "policy.yaml"


def policy_is_explicit() -> bool:
    """Whether ``PYMODELKIT_POLICY`` names the policy file (then a missing file is an error, not "no policy")."""
    return bool(os.environ.get("PYMODELKIT_POLICY"))


def gzip_backend() -> str | None:
    """``PYMODELKIT_GZIP_BACKEND``: ``zlib``, ``isal``, or ``None`` when unset or empty (pack picks isal when it is
    installed). Raises ModelKitError for any other value."""
    raw = os.environ.get("PYMODELKIT_GZIP_BACKEND", "").strip().lower()
    if not raw:
        return None
    if raw not in ("zlib", "isal"):
        raise ModelKitError(f"invalid PYMODELKIT_GZIP_BACKEND {raw!r}: use zlib or isal")
    return raw


def direct_io() -> bool:
    """``PYMODELKIT_DIRECT_IO``: whether large blobs are written with ``O_DIRECT`` where the platform allows it
    (default true; ``0``/``false`` turns it off)."""
    return parse_bool(os.environ.get("PYMODELKIT_DIRECT_IO"), default=True, name="PYMODELKIT_DIRECT_IO")


def client_certificate_files() -> tuple[str | None, str | None]:
    """``KITOPS_CLIENT_CERT`` and ``KITOPS_CLIENT_KEY`` (kit's names): the TLS client certificate file and its key
    file, each ``None`` when unset or empty. kit lets each one, when set, replace ``--cert``/``--key``."""
    return os.environ.get("KITOPS_CLIENT_CERT") or None, os.environ.get("KITOPS_CLIENT_KEY") or None
