"""Signing and verifying ModelKits compatibly with cosign (spec ``signing.md``; ``docs/signing.md``).

``sign`` writes cosign's legacy ``sha256-<hex>.sig`` signature (and, with ``bundle=True``, a sigstore bundle as an
OCI 1.1 referrer); ``verify`` checks both kinds against public keys; ``verifier`` and ``policy_verifier`` give the
callables that ``pull`` and ``unpack`` run before writing anything. Names load lazily, so importing
``pymodelkit.signing.policy`` (which every pull and unpack does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymodelkit.signing.keys import (
        SigningKey,
        VerificationKey,
        generate_signing_key,
        load_signing_key,
        load_verification_key,
        write_key_pair,
    )
    from pymodelkit.signing.policy import Policy, PolicyRule, load_policy, policy_verifier
    from pymodelkit.signing.signer import SignResult, sign
    from pymodelkit.signing.verification import ManifestVerifier, VerifiedSignature, VerifyResult, verifier, verify

_LAZY = {
    "pymodelkit.signing.keys": (
        "SigningKey", "VerificationKey", "generate_signing_key", "load_signing_key", "load_verification_key",
        "write_key_pair",
    ),
    "pymodelkit.signing.policy": ("Policy", "PolicyRule", "load_policy", "policy_verifier"),
    "pymodelkit.signing.signer": ("SignResult", "sign"),
    "pymodelkit.signing.verification": ("ManifestVerifier", "VerifiedSignature", "VerifyResult", "verifier", "verify"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "ManifestVerifier",
    "Policy",
    "PolicyRule",
    "SignResult",
    "SigningKey",
    "VerificationKey",
    "VerifiedSignature",
    "VerifyResult",
    "generate_signing_key",
    "load_policy",
    "load_signing_key",
    "load_verification_key",
    "policy_verifier",
    "sign",
    "verifier",
    "verify",
    "write_key_pair",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pymodelkit.signing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
