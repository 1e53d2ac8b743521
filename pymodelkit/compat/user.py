"""pykitops' ``UserCredentials`` and ``load_environment_variables``: ``JOZU_*`` from arguments, environment, ``.env``.

Fixes over pykitops (spec ``pykitops-api.md`` §4, quirks 6–9): the ``.env`` file is searched from the current
directory upwards (python-dotenv's ``find_dotenv(usecwd=True)``), not from the installed package's folder; it only
fills variables the real environment does not set; it is read without writing anything into ``os.environ``; and each
field is merged on its own (argument, then environment, then ``.env``), so ``UserCredentials(username="me")`` works
with only ``JOZU_PASSWORD`` set. ``PYTHON_DOTENV_DISABLED`` turns ``.env`` reading off, as in python-dotenv.
"""

from __future__ import annotations

import os
from pathlib import Path

from pymodelkit import settings
from pymodelkit.registry.credentials import parse_dotenv

__all__ = ["ENV_VARIABLES", "UserCredentials", "find_dotenv", "load_environment_variables"]

ENV_VARIABLES = {
    "username": "JOZU_USERNAME",
    "password": "JOZU_PASSWORD",
    "registry": "JOZU_REGISTRY",
    "namespace": "JOZU_NAMESPACE",
}
_MISSING_MESSAGE = "Username and password must be provided either as arguments or in environment variables."


def find_dotenv() -> Path | None:
    """The nearest ``.env`` file: in the current directory or one of its parents (``None`` if none, or disabled)."""
    if settings.parse_bool(os.environ.get("PYTHON_DOTENV_DISABLED")):
        return None
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def _environment() -> dict[str, str | None]:
    """The four ``JOZU_*`` values: the process environment first, then the nearest ``.env`` (empty means unset)."""
    path = find_dotenv()
    from_file = parse_dotenv(path.read_text(encoding="utf-8")) if path is not None else {}
    return {
        field: os.environ.get(variable) or from_file.get(variable) or None
        for field, variable in ENV_VARIABLES.items()
    }


def load_environment_variables() -> dict[str, str | None]:
    """``username``, ``password``, ``registry`` and ``namespace`` from ``JOZU_*`` (environment, then ``.env``).

    Raises:
        ValueError: ``JOZU_USERNAME`` or ``JOZU_PASSWORD`` is missing or empty.
    """
    values = _environment()
    if not values["username"] or not values["password"]:
        raise ValueError(
            "Missing JOZU_USERNAME or JOZU_PASSWORD: set both in the environment or in a .env file "
            "(searched from the current directory upwards)."
        )
    return values


def _checked(name: str, value: str | None) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None, not {type(value).__name__}")
    return value


class UserCredentials:
    """A registry login: ``username`` and ``password`` (required), ``registry`` and ``namespace`` (optional).

    Each field is the argument if given (and not empty), else ``JOZU_<FIELD>`` from the environment, else from the
    nearest ``.env``. ``registry`` is the default registry for a ModelKit reference that names none.

    Raises:
        ValueError: no username or no password could be found; a field is set to something other than a ``str``.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        registry: str | None = None,
        namespace: str | None = None,
    ) -> None:
        given = {"username": username, "password": password, "registry": registry, "namespace": namespace}
        for name, value in given.items():
            _checked(name, value)
        found = _environment() if not all(given.values()) else {}
        merged = {name: value or found.get(name) for name, value in given.items()}
        if not merged["username"] or not merged["password"]:
            raise ValueError(_MISSING_MESSAGE)
        self.username = merged["username"]
        self.password = merged["password"]
        self.registry = merged["registry"]
        self.namespace = merged["namespace"]

    @property
    def username(self) -> str | None:
        """The registry username."""
        return self._username

    @username.setter
    def username(self, value: str | None) -> None:
        self._username = _checked("username", value)

    @property
    def password(self) -> str | None:
        """The registry password or token."""
        return self._password

    @password.setter
    def password(self, value: str | None) -> None:
        self._password = _checked("password", value)

    @property
    def registry(self) -> str | None:
        """The default registry host, used only when a reference has none."""
        return self._registry

    @registry.setter
    def registry(self, value: str | None) -> None:
        self._registry = _checked("registry", value)

    @property
    def namespace(self) -> str | None:
        """The namespace (kept for pykitops compatibility; nothing reads it)."""
        return self._namespace

    @namespace.setter
    def namespace(self, value: str | None) -> None:
        self._namespace = _checked("namespace", value)

    def __repr__(self) -> str:
        secret = "<redacted>" if self.password else None
        return (
            f"UserCredentials(username={self.username!r}, password={secret!r}, registry={self.registry!r}, "
            f"namespace={self.namespace!r})"
        )
