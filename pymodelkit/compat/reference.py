"""pykitops' ``ModelKitReference`` and ``parse_modelkit_tag``, parsed with kit's grammar (spec ``pykitops-api.md`` §5).

pykitops splits on ``/`` and wants exactly ``registry/namespace/repository:tag``. Here the text goes through
:func:`pymodelkit.oci.parse_reference`, so digests (``repo@sha256:…``), nested namespaces (``reg/a/b/m:v1``),
``host:port`` registries and tagless references (the command then uses ``latest``) are accepted; ``namespace`` is
everything between the registry and the last path segment. Invalid text still raises ``ValueError``.
"""

from __future__ import annotations

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci.reference import parse_reference

__all__ = ["ModelKitReference", "parse_modelkit_tag"]


def parse_modelkit_tag(modelkit_tag: str) -> dict[str, str | None]:
    """Split a ModelKit reference into ``registry``, ``namespace``, ``model`` (the repository's last segment),
    ``tag``, and, additions to pykitops, ``repository`` (the same as ``model``) and ``digest``.

    A part that is absent is ``None``: no registry host (``ns/model:v1``), no namespace (``host/model:v1``), no tag.

    Raises:
        ValueError: the text is not a valid reference, or has more than one tag.
    """
    if not isinstance(modelkit_tag, str):
        raise ValueError(f"a ModelKit tag must be a string, not {type(modelkit_tag).__name__}")
    try:
        ref, extra = parse_reference(modelkit_tag)
    except InvalidReferenceError as exc:
        raise ValueError(f"invalid ModelKit tag {modelkit_tag!r}: {exc}") from None
    if extra:
        raise ValueError(f"invalid ModelKit tag {modelkit_tag!r}: more than one tag")
    namespace, _, repository = ref.repository.rpartition("/")
    return {
        "registry": None if ref.is_local else ref.registry,
        "namespace": namespace or None,
        "model": repository,
        "repository": repository,
        "tag": ref.tag or None,
        "digest": str(ref.digest) if ref.digest is not None else None,
    }


def _checked(name: str, value: str | None) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None, not {type(value).__name__}")
    return value


class ModelKitReference:
    """A ModelKit reference as its parts: ``registry``, ``namespace``, ``repository``, ``tag`` and ``digest``.

    ``ModelKitReference()`` has every part ``None``; each part can be set (a ``str`` or ``None``, else
    ``ValueError``). ``digest`` is an addition to pykitops' four parts.
    """

    def __init__(self, modelkit_tag: str | None = None) -> None:
        parts = parse_modelkit_tag(modelkit_tag) if modelkit_tag is not None else {}
        self.registry = parts.get("registry")
        self.namespace = parts.get("namespace")
        self.repository = parts.get("model")
        self.tag = parts.get("tag")
        self.digest = parts.get("digest")

    @property
    def registry(self) -> str | None:
        """The registry host (``host[:port]``), or ``None``."""
        return self._registry

    @registry.setter
    def registry(self, value: str | None) -> None:
        self._registry = _checked("registry", value)

    @property
    def namespace(self) -> str | None:
        """The path between the registry and the repository (``team`` or ``org/team``), or ``None``."""
        return self._namespace

    @namespace.setter
    def namespace(self, value: str | None) -> None:
        self._namespace = _checked("namespace", value)

    @property
    def repository(self) -> str | None:
        """The last path segment of the repository, or ``None``."""
        return self._repository

    @repository.setter
    def repository(self, value: str | None) -> None:
        self._repository = _checked("repository", value)

    @property
    def tag(self) -> str | None:
        """The tag, or ``None`` (commands then use ``latest``, or refuse where kit refuses)."""
        return self._tag

    @tag.setter
    def tag(self, value: str | None) -> None:
        self._tag = _checked("tag", value)

    @property
    def digest(self) -> str | None:
        """The manifest digest the reference is pinned to (``sha256:…``), or ``None``."""
        return self._digest

    @digest.setter
    def digest(self, value: str | None) -> None:
        self._digest = _checked("digest", value)

    @property
    def modelkit_tag(self) -> str:
        """``registry/[namespace/]repository[:tag][@digest]``.

        Raises:
            ValueError: no registry or no repository.
        """
        if not self.registry or not self.repository:
            raise ValueError(
                "incomplete ModelKit reference: a registry and a repository are required "
                "(for example 'registry.example.com/team/model:v1')"
            )
        text = "/".join(part for part in (self.registry, self.namespace, self.repository) if part)
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in ("registry", "namespace", "repository", "tag", "digest")
        )
        return f"ModelKitReference({parts})"
