"""The signature policy: which registries and repositories need a signature, and by which keys (``spec/signing.md``
§6 of this project).

A policy is a YAML (or JSON) file at ``$PYMODELKIT_POLICY``, else ``$XDG_CONFIG_HOME/pymodelkit/policy.yaml``
(``~/.config/pymodelkit/policy.yaml``)::

    version: 1
    repositories:
      "*": insecureAcceptAnything             # the default: no signature needed
      "registry.example.com/team": [keys/team.pub, keys/ci.pub]
      "registry.example.com/team/scratch": none

Keys of ``repositories`` are ``*`` or prefixes of ``registry/repository`` matched on whole path components
(``r.example.com/team`` covers ``r.example.com/team`` and ``r.example.com/team/x``, not ``r.example.com/teammate``);
the longest match wins. A value is a list of public key paths (one path alone is allowed), relative to the policy
file's folder, of which any one must have signed; or ``insecureAcceptAnything`` / ``none``: no signature needed. Local
references (no registry host) are never matched. ``pull``, ``unpack`` and ``mlflow`` apply the policy when no
explicit ``verify`` is given. Keys are loaded when a reference needs them, so a missing key file fails the pulls that
need it and no other.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pymodelkit import settings
from pymodelkit.errors import ModelKitError, SignatureError
from pymodelkit.oci.reference import Reference
from pymodelkit.registry.credentials import DOCKER_HUB_HOSTS

if TYPE_CHECKING:
    from pymodelkit.oci.digest import Digest
    from pymodelkit.registry.client import RegistryClient
    from pymodelkit.signing.keys import VerificationKey
    from pymodelkit.signing.verification import ManifestVerifier

__all__ = [
    "ACCEPT_ANYTHING", "DEFAULT_PREFIX", "Policy", "PolicyRule", "load_policy", "normalized_prefix", "policy_verifier",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "*"
ACCEPT_ANYTHING = frozenset({"insecureAcceptAnything", "none"})
_SUPPORTED_VERSIONS = (1,)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One entry: the prefix it covers and the key files any of which must have signed (``None``: no signature
    needed)."""

    prefix: str
    keys: tuple[Path, ...] | None

    @property
    def requires_signature(self) -> bool:
        """Tell whether references under this rule must be signed."""
        return self.keys is not None


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy file: its path and its rules."""

    path: Path
    rules: tuple[PolicyRule, ...]

    def rule_for(self, ref: Reference) -> PolicyRule | None:
        """The rule covering ``ref`` (longest prefix, else ``*``), or ``None`` when none does or ``ref`` is local."""
        if ref.is_local:
            return None
        name = normalized_prefix(ref.repo_key)
        best: PolicyRule | None = None
        for rule in self.rules:
            if rule.prefix == DEFAULT_PREFIX:
                if best is None:
                    best = rule
                continue
            if (name == rule.prefix or name.startswith(rule.prefix + "/")) and (
                best is None or best.prefix == DEFAULT_PREFIX or len(rule.prefix) > len(best.prefix)
            ):
                best = rule
        return best

    def keys_for(self, ref: Reference) -> list[VerificationKey] | None:
        """The public keys one of which must have signed ``ref`` (loaded now), or ``None`` when none is required.

        Raises:
            SigningKeyError: a key file the rule names is missing or not a public key.
        """
        rule = self.rule_for(ref)
        if rule is None or rule.keys is None:
            return None
        from pymodelkit.signing.keys import load_verification_key

        return [load_verification_key(path) for path in rule.keys]


def default_policy_path() -> Path:
    """Where the policy is looked for: ``$PYMODELKIT_POLICY``, else ``<config home>/pymodelkit/policy.yaml``."""
    return settings.policy_path()


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy | None:
    """Read the policy at ``path`` (default: :func:`default_policy_path`); ``None`` when the default file is absent.

    Raises:
        ModelKitError: the file (given, or named by ``PYMODELKIT_POLICY``) is missing, or is not a valid policy.
    """
    explicit = path is not None or settings.policy_is_explicit()
    where = Path(path) if path is not None else default_policy_path()
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ModelKitError(f"signature policy {where} not found", path=str(where)) from None
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ModelKitError(f"signature policy {where} cannot be read: {reason}", path=str(where)) from None
    return _parse_policy(where, text)


class _Default(enum.Enum):
    POLICY = "the default policy file"


def policy_verifier(
    ref: Reference, policy: Policy | _Default | None = _Default.POLICY
) -> ManifestVerifier | None:
    """The verifier the policy demands for ``ref``, or ``None`` when it requires no signature (or there is no policy).

    ``policy`` defaults to :func:`load_policy` (the default file); pass ``None`` for no policy.

    Raises:
        ModelKitError: the policy file is invalid. SigningKeyError: a key file it names for ``ref`` is unusable.
    """
    loaded = load_policy() if policy is _Default.POLICY else policy
    if not isinstance(loaded, Policy):
        return None
    rule = loaded.rule_for(ref)
    if rule is None or rule.keys is None:
        return None
    keys = loaded.keys_for(ref) or []
    from pymodelkit.signing.verification import verify_manifest

    where, prefix = loaded.path, rule.prefix

    def check(client: RegistryClient, reference: Reference, digest: Digest) -> None:
        try:
            verify_manifest(client, reference, digest, keys)
        except SignatureError as exc:
            raise SignatureError(f"{exc.message}; policy {where} requires a signature for {prefix}",
                                 reference=exc.reference) from None

    logger.debug("policy %s requires a signature by %d key(s) for %s", where, len(keys), ref.repo_key)
    return check


# ----- internals ---------------------------------------------------------------------------------------------------


def _parse_policy(path: Path, text: str) -> Policy:
    doc: object
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise _invalid(path, f"not JSON: {exc}") from None
    else:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _invalid(path, f"not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, Mapping):
        raise _invalid(path, "expected a mapping with 'repositories'")
    unknown = sorted(set(doc) - {"version", "repositories"})
    if unknown:
        raise _invalid(path, f"unknown key {unknown[0]!r} (expected 'version' and 'repositories')")
    version = doc.get("version", 1)
    if version not in _SUPPORTED_VERSIONS:
        raise _invalid(path, f"version {version!r} is not supported (expected 1)")
    entries = doc.get("repositories")
    if not isinstance(entries, Mapping):
        raise _invalid(path, "'repositories' must map prefixes to key lists or insecureAcceptAnything")
    rules = tuple(_rule(path, str(prefix), value) for prefix, value in entries.items())
    return Policy(path=path, rules=rules)


def normalized_prefix(text: str) -> str:
    """``registry[/repository…]`` with the registry host as it is matched: lowercase (DNS names are
    case-insensitive), without a default ``:443``, and Docker Hub's names as ``docker.io``. The repository part is
    kept as it is (references refuse upper case there)."""
    if text == DEFAULT_PREFIX:
        return text
    host, sep, rest = text.partition("/")
    host = host.lower()
    if host.endswith(":443"):
        host = host[: -len(":443")]
    if host in DOCKER_HUB_HOSTS:  # another Docker Hub name reaches the same registry
        host = "docker.io"
    return host + sep + rest


def _rule(path: Path, prefix: str, value: object) -> PolicyRule:
    prefix = normalized_prefix(prefix.strip().rstrip("/"))
    if not prefix:
        raise _invalid(path, "an empty prefix (use '*' for the default)")
    if isinstance(value, str) and value in ACCEPT_ANYTHING:
        return PolicyRule(prefix, None)
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise _invalid(path, f"{prefix!r} must name public key files or insecureAcceptAnything, not {value!r}")
    return PolicyRule(prefix, tuple((path.parent / p).resolve() if not Path(p).is_absolute() else Path(p)
                                    for p in paths))


def _invalid(path: Path, problem: str) -> ModelKitError:
    return ModelKitError(f"invalid signature policy {path}: {problem}", path=str(path))
