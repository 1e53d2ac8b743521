"""The registry half: push and pull ModelKits over the OCI distribution protocol (spec ``oci-distribution.md``).

``push`` and ``pull`` are the entry points; :class:`RegistryClient` is one registry's connection (auth, retry, TLS,
proxies) for callers that need single calls; :class:`RetryPolicy` bounds every retry.
"""

from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.registry.transfer import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CONCURRENCY,
    PullResult,
    PushResult,
    pull,
    push,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_RETRY_POLICY",
    "PullResult",
    "PushResult",
    "RegistryClient",
    "RetryPolicy",
    "pull",
    "push",
]
