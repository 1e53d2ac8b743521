"""The one exception tree of pymodelkit.

Every error the library raises derives from :class:`ModelKitError`. A subclass exists only for a condition a caller
branches on, and it also inherits the builtin it honestly matches (``ValueError``, ``FileNotFoundError``), so code that
does not know pymodelkit still catches it sensibly. Messages are one line, say what failed and where, and never carry
secrets. Errors are picklable: extra attributes are keyword arguments kept in ``__reduce__``.

    ModelKitError
    ├── KitfileError (ValueError)           a Kitfile that cannot be parsed or does not validate
    ├── InvalidReferenceError (ValueError)  a ModelKit reference or digest string that does not parse
    ├── NotFoundError (FileNotFoundError)   a ModelKit, tag, blob or path that is not there
    ├── DigestMismatchError (ValueError)    bytes whose size or digest differ from what was expected
    ├── UnsafeArchiveError (ValueError)     a layer entry that would land outside the target, or is not allowed
    ├── PackError                           a ModelKit that cannot be packed from the given files
    ├── UnpackError                         files that cannot be written where unpack was asked to write them
    ├── StoreError                          the local store is unusable or an operation on it is refused
    └── RegistryError                       a registry answered with an error, or could not be reached
        ├── AuthError (PermissionError)     credentials missing, wrong, or without the access needed
        └── RegistryNotFoundError           the registry has no such repository, tag, manifest or blob (404);
                                            also a NotFoundError
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AuthError",
    "DigestMismatchError",
    "InvalidReferenceError",
    "KitfileError",
    "ModelKitError",
    "NotFoundError",
    "PackError",
    "RegistryError",
    "RegistryNotFoundError",
    "SignatureError",
    "SigningKeyError",
    "StoreError",
    "UnpackError",
    "UnsafeArchiveError",
]


class ModelKitError(Exception):
    """Base class of every error pymodelkit raises. ``str(err)`` is a one-line message."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        for key, value in details.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[ModelKitError], message: str, details: dict[str, Any]) -> ModelKitError:
    return cls(message, **details)


class KitfileError(ModelKitError, ValueError):
    """A Kitfile that cannot be parsed or fails validation.

    Attributes (when known): ``path`` (the Kitfile's file name), ``line`` (1-based), ``key``, and ``problems`` (the
    list of every validation problem, each one line).
    """

    path: str | None = None
    line: int | None = None
    key: str | None = None
    problems: Sequence[str] = ()
    warnings: Sequence[str] = ()


class InvalidReferenceError(ModelKitError, ValueError):
    """A ModelKit reference, tag or digest string that does not parse. Attribute ``reference``."""

    reference: str | None = None


class NotFoundError(ModelKitError, FileNotFoundError):
    """A ModelKit, tag, blob or file that does not exist. Attribute ``reference`` or ``path`` when known."""

    reference: str | None = None
    path: str | None = None


class DigestMismatchError(ModelKitError, ValueError):
    """Content whose digest or size differs from the expected one. Attributes ``expected`` and ``actual``."""

    expected: str | None = None
    actual: str | None = None


class UnsafeArchiveError(ModelKitError, ValueError):
    """A layer entry that would escape the target directory or is of a refused type. Attribute ``entry``."""

    entry: str | None = None


class PackError(ModelKitError):
    """A ModelKit that cannot be packed: a missing path, a file that is not regular, an invalid bundle."""


class UnpackError(ModelKitError):
    """A file that cannot be written: it exists already, or is in the way of a directory."""


class StoreError(ModelKitError):
    """The local store refuses an operation or is found in a state it cannot work with."""


class RegistryError(ModelKitError):
    """A registry request that failed: an error status, or no answer after the retry budget.

    Attributes: ``method``, ``url`` (credentials and tokens redacted), ``status`` (``None`` when there was no
    answer), ``code``, ``oci_message`` and ``detail`` (the first entry of the registry's OCI error body, if any),
    ``errors`` (every entry, as ``(code, message)`` pairs) and ``is_temporary`` (worth retrying later).
    """

    method: str | None = None
    url: str | None = None
    status: int | None = None
    code: str | None = None
    oci_message: str | None = None
    detail: object = None
    errors: Sequence[tuple[str, str]] = ()
    is_temporary: bool = False


class AuthError(RegistryError, PermissionError):
    """Authentication or authorization failed (401/403, a token request refused, no credentials for a registry)."""


class RegistryNotFoundError(RegistryError, NotFoundError):
    """The registry answered 404: no such repository, tag, manifest or blob. Also a :class:`NotFoundError`."""


class SigningKeyError(ModelKitError, ValueError):
    """A key that cannot be used: a malformed or unsupported key file, a wrong password. Attribute ``path``."""

    path: str | None = None


class SignatureError(ModelKitError):
    """A signature that is missing or does not verify: an unsigned ModelKit under verification, a wrong key, a
    payload naming another manifest. Attribute ``reference``."""

    reference: str | None = None
