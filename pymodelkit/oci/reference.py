"""ModelKit references, parsed exactly as kit's ``ParseReference`` parses them (spec ``format.md``, "References").

The first path component is a registry only if it contains ``.`` or ``:``; otherwise the registry is ``localhost`` and
the whole string is the repository. A bare digest means ``localhost/_@<digest>``. Extra comma-separated tags are
returned verbatim. A reference without a tag leaves the tag empty: each command decides whether to default it to
``latest``. An empty tag after a ``:`` (``demo:``, ``demo:@sha256:…``) is refused, as docker's reference grammar
refuses it (kit reads it as no tag), so that no command can take ``demo:`` for ``demo:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci.digest import Digest, is_digest

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "OTHER_TRANSPORTS",
    "UNTAGGED_REPOSITORY",
    "Reference",
    "host_port_hint",
    "parse_reference",
    "parse_single_reference",
]

DEFAULT_REGISTRY = "localhost"
DEFAULT_TAG = "latest"
UNTAGGED_REPOSITORY = "_"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_WEAK_RE = re.compile(r"[a-z0-9](.*[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Reference:
    """A ModelKit reference: registry, repository, and at most one of tag and digest."""

    registry: str
    repository: str
    tag: str = ""
    digest: Digest | None = None

    @property
    def repo_key(self) -> str:
        """``registry/repository``: the key of the local store's per-repository files."""
        return f"{self.registry}/{self.repository}"

    @property
    def has_reference(self) -> bool:
        """Tell whether a tag or a digest is set."""
        return bool(self.tag) or self.digest is not None

    @property
    def is_local(self) -> bool:
        """Tell whether the registry is the local pseudo-registry ``localhost`` (no port)."""
        return self.registry == DEFAULT_REGISTRY

    def with_default_tag(self) -> Reference:
        """This reference, with the tag ``latest`` when it has neither tag nor digest."""
        return self if self.has_reference else replace(self, tag=DEFAULT_TAG)

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` and no digest."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        """The same repository pinned to ``digest``."""
        return replace(self, tag="", digest=digest)

    def __str__(self) -> str:
        text = self.repo_key
        if self.digest is not None:
            return f"{text}@{self.digest}"
        if self.tag:
            return f"{text}:{self.tag}"
        return text

    def display(self) -> str:
        """The short form kit prints: without ``localhost/``, and without the ``_`` of untagged packs."""
        return format_for_display(str(self))


def format_for_display(text: str) -> str:
    """kit's ``FormatRepositoryForDisplay``: strip ``localhost/``, then a leading ``_``, then a leading ``@``."""
    text = text.removeprefix(DEFAULT_REGISTRY + "/")
    text = text.removeprefix(UNTAGGED_REPOSITORY)
    return text.removeprefix("@")


def parse_reference(text: str) -> tuple[Reference, list[str]]:
    """Parse a reference and its extra comma-separated tags.

    Raises:
        InvalidReferenceError: the text is empty, or the registry, repository, tag or digest is invalid.
    """
    if is_digest(text):
        return Reference(DEFAULT_REGISTRY, UNTAGGED_REPOSITORY, digest=Digest.parse(text)), []
    if not text:
        raise InvalidReferenceError("invalid reference: empty string", reference=text)
    first, *extra = text.split(",")
    registry, remainder = DEFAULT_REGISTRY, first
    if "/" in first:
        head, rest = first.split("/", 1)
        if "." in head or ":" in head:
            registry, remainder = head, rest
    tag = ""
    digest: Digest | None = None
    if "@" in remainder:
        repository, ref = remainder.split("@", 1)
        if repository.endswith(":"):
            raise _empty_tag(text)
        repository = repository.split(":", 1)[0]
        try:
            digest = Digest.parse(ref)
        except InvalidReferenceError:
            raise InvalidReferenceError(
                f"invalid reference {text!r}: {ref!r} is not a valid digest", reference=text
            ) from None
    elif ":" in remainder:
        repository, tag = remainder.split(":", 1)
        if not tag:
            raise _empty_tag(text)
    else:
        repository = remainder
    _check(text, registry, repository, tag)
    return Reference(registry, repository, tag, digest), extra


def parse_single_reference(reference: str | Reference) -> Reference:
    """One reference: a :class:`Reference` as it is, or text parsed by :func:`parse_reference` that names no extra tag.

    Raises:
        InvalidReferenceError: as :func:`parse_reference`, or the text names several tags (``repo:a,b``).
    """
    if isinstance(reference, Reference):
        return reference
    ref, extra = parse_reference(reference)
    if extra:
        raise InvalidReferenceError(f"reference cannot include multiple tags: {reference!r}", reference=reference)
    return ref


def host_port_hint(reference: str | Reference) -> str | None:
    """A one-line warning when ``reference`` reads as a registry ``host:port`` with no repository path, else ``None``.

    ``127.0.0.1:5000``, ``localhost:5000`` or ``reg.example.com:443`` parse, per the grammar, as a local repository
    (``127.0.0.1``) with a numeric tag (``5000``): valid, but rarely what was meant. The repository looks like a
    host when it is one component that contains ``.`` or is ``localhost``, and the tag like a port when it is a
    number from 1 to 65535. Text that does not parse gives ``None`` (the command reports it).
    """
    try:
        ref = reference if isinstance(reference, Reference) else parse_reference(reference)[0]
    except InvalidReferenceError:
        return None
    host, port = ref.repository, ref.tag
    if not ref.is_local or "/" in host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return None
    if "." not in host and host != DEFAULT_REGISTRY:
        return None
    return (
        f"{host}:{port} was read as repository {host!r} with tag {port!r}: a registry reference needs a repository "
        f"path ({host}:{port}/REPOSITORY[:TAG])"
    )


def _empty_tag(text: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid reference {text!r}: the tag after ':' is empty", reference=text)


# containers/image's transports (skopeo's) that pymodelkit does not read or write; ``docker-archive:/x.tar`` would
# otherwise parse as registry ``docker-archive:`` (an empty port, which Go's URL parser accepts).
OTHER_TRANSPORTS = frozenset({"containers-storage:", "dir:", "docker-archive:", "docker-daemon:", "ostree:", "sif:",
                              "tarball:"})


def _check(text: str, registry: str, repository: str, tag: str) -> None:
    if registry in OTHER_TRANSPORTS:
        raise InvalidReferenceError(
            f"invalid reference {text!r}: {registry!r} is another tool's transport, not a registry (pymodelkit reads "
            "registries, oci:DIR and oci-archive:FILE)", reference=text,
        )
    if repository != repository.lower():
        raise InvalidReferenceError(
            f"invalid reference {text!r}: repository name must be lowercase", reference=text
        )
    if not _WEAK_RE.search(repository) or not _REPOSITORY_RE.fullmatch(repository):
        raise InvalidReferenceError(f"invalid reference {text!r}: invalid repository {repository!r}", reference=text)
    try:
        host = urlsplit("dummy://" + registry).netloc
    except ValueError:
        host = ""
    if host != registry or not registry or not _has_valid_port(registry) or "@" in registry:
        raise InvalidReferenceError(f"invalid reference {text!r}: invalid registry {registry!r}", reference=text)
    if tag and not _TAG_RE.fullmatch(tag):
        raise InvalidReferenceError(f"invalid reference {text!r}: invalid tag {tag!r}", reference=text)


def _has_valid_port(registry: str) -> bool:
    """Go's ``url.ParseRequestURI`` port rule: after the host, either nothing or ``:`` and only digits."""
    if registry.startswith("["):
        close = registry.find("]")
        rest = registry[close + 1 :] if close >= 0 else "x"
    else:
        rest = registry[registry.rfind(":") :] if ":" in registry else ""
    return rest == "" or (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()) or rest == ":"
