"""The ``modelkit://`` URI grammar of the MLflow artifact-repository plugin (spec ``mlflow.md`` §10.2-§10.3,
``spec/mlflow-plugin.md``).

    modelkit://REGISTRY/REPOSITORY:TAG[/PATH]
    modelkit://REGISTRY/REPOSITORY@sha256:HEX[/PATH]

``REGISTRY`` is the URI's host (and port); ``localhost`` without a port means the local store only, as in kit. The
ModelKit reference ends at the first path segment holding ``:`` (a tag) or ``@`` (a digest), which repository names
cannot contain; what follows is ``PATH``. MLflow splits every URI at its last ``/`` before handing it to a
repository (``modelkit://h/ns/demo:v1`` becomes the repository ``modelkit://h/ns`` asked for ``demo:v1``), so the
repository always parses its own URI joined with the artifact path it is asked for: :func:`parse_modelkit_uri`
takes that joined text.

What ``PATH`` selects (the ModelKit's files as ``unpack`` lays them out) is :mod:`pymodelkit.mlflow.artifact_repo`'s
business; here it is only split off, cleaned, and refused when it would climb out (``..``).
"""

from __future__ import annotations

import posixpath
import urllib.parse
from dataclasses import dataclass

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci.reference import Reference, parse_reference

__all__ = ["SCHEME", "WHOLE_MODELKIT", "ModelKitURI", "join_artifact_path", "parse_modelkit_uri"]

SCHEME = "modelkit"
WHOLE_MODELKIT = "."
"""The ``PATH`` that names every file of the ModelKit (``modelkit://h/ns/demo:v1/.``)."""

_PLACEHOLDER_REGISTRY = "registry.invalid"  # lets parse_reference check repository and tag whatever the host is


@dataclass(frozen=True, slots=True)
class ModelKitURI:
    """A parsed ``modelkit://`` URI: the ModelKit ``reference`` (``None`` while the URI stops before the segment
    that holds the tag or digest, as the roots MLflow builds do) and ``path`` after it: ``""`` for none, ``"."``
    for :data:`WHOLE_MODELKIT`, else a clean relative POSIX path."""

    uri: str
    registry: str
    reference: Reference | None
    path: str

    def require_reference(self) -> Reference:
        """The reference; :class:`InvalidReferenceError` when the URI names no tag or digest."""
        if self.reference is None:
            raise InvalidReferenceError(
                f"{self.uri} names no ModelKit: add :TAG or @sha256:DIGEST after the repository "
                "(modelkit://REGISTRY/REPOSITORY:TAG[/PATH])",
                reference=self.uri,
            )
        return self.reference


def parse_modelkit_uri(uri: str) -> ModelKitURI:
    """Split ``modelkit://REGISTRY/REPOSITORY(:TAG|@DIGEST)[/PATH]``.

    Raises:
        InvalidReferenceError: another scheme, no registry host, a query or fragment, a malformed repository, tag
            or digest, or a ``PATH`` that climbs out with ``..``.
    """
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as err:
        raise InvalidReferenceError(f"invalid modelkit URI: {err}") from None
    if "@" in parts.netloc:  # never echo what may be a password
        shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[1]}{parts.path}"
        raise InvalidReferenceError(f"invalid modelkit URI {shown!r}: credentials do not belong in the URI "
                                    "(they come from the environment or 'pymodelkit login')", reference=shown)
    if parts.scheme != SCHEME:
        raise InvalidReferenceError(f"not a modelkit:// URI: {uri!r}", reference=uri)
    if not parts.netloc:
        raise InvalidReferenceError(
            f"invalid modelkit URI {uri!r}: no registry host (modelkit://REGISTRY/REPOSITORY:TAG)", reference=uri
        )
    if parts.query or parts.fragment:
        raise InvalidReferenceError(
            f"invalid modelkit URI {uri!r}: no query or fragment allowed; a path after the reference selects files",
            reference=uri,
        )
    registry = parts.netloc
    segments = [s for s in parts.path.split("/") if s]
    for index, segment in enumerate(segments):
        if ":" in segment or "@" in segment:
            repository = "/".join(segments[: index + 1])
            reference = _reference(uri, registry, repository)
            rest = segments[index + 1 :]
            return ModelKitURI(uri, registry, reference, _clean_path(uri, rest))
    if segments:  # check what there is of the repository already, so a typo fails early
        _reference(uri, registry, "/".join(segments) + ":latest")
    return ModelKitURI(uri, registry, None, "")


def join_artifact_path(base_uri: str, artifact_path: str | None) -> str:
    """``base_uri`` with ``artifact_path`` appended as MLflow's ``append_to_uri_path`` would (one ``/`` between)."""
    if not artifact_path:
        return base_uri
    return base_uri.rstrip("/") + "/" + artifact_path.lstrip("/")


def _reference(uri: str, registry: str, repository: str) -> Reference:
    try:
        parsed, extra = parse_reference(f"{_PLACEHOLDER_REGISTRY}/{repository}")
    except InvalidReferenceError as err:
        detail = str(err).replace(f"{_PLACEHOLDER_REGISTRY}/", "")
        raise InvalidReferenceError(f"invalid modelkit URI {uri!r}: {detail}", reference=uri) from None
    if extra:
        raise InvalidReferenceError(f"invalid modelkit URI {uri!r}: one tag only", reference=uri)
    try:  # the host must be a valid registry too (port digits, no user info)
        parse_reference(f"{registry}/{parsed.repository}:x" if ":" in registry or "." in registry
                        else f"{registry}.x/{parsed.repository}:x")
    except InvalidReferenceError:
        raise InvalidReferenceError(f"invalid modelkit URI {uri!r}: invalid registry {registry!r}",
                                    reference=uri) from None
    return Reference(registry, parsed.repository, parsed.tag, parsed.digest)


def _clean_path(uri: str, segments: list[str]) -> str:
    if not segments:
        return ""
    if any(s == ".." for s in segments):
        raise InvalidReferenceError(f"invalid modelkit URI {uri!r}: the path after the reference may not use '..'",
                                    reference=uri)
    cleaned = posixpath.normpath("/".join(segments))
    return WHOLE_MODELKIT if cleaned in ("", ".") else cleaned
