"""Retry of single idempotent requests: a transport that wraps the HTTP transport (STYLE rules 4 and 5).

GET, HEAD, PUT (manifests) and DELETE with a replayable body are retried on connection errors and on 408/429/5xx
(but 501), with exponential backoff and jitter, honouring ``Retry-After``, bounded in attempts and in time. A timeout
is not retried: the request has already waited its full limit (``PYMODELKIT_TIMEOUT``), and a server that accepts
connections and never answers would otherwise hold a command for several times that. A request marked
``request.extensions["pymodelkit.no_retry"] = True`` passes straight through: blob uploads retry as a whole session
one level up (``registry/transfer.py``), and blob downloads resume with ``Range`` (``registry/download.py``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pymodelkit.registry.responses import (
    is_temporary_status,
    is_temporary_transport_error,
    parse_retry_after,
    redact_url,
)

__all__ = ["DEFAULT_RETRY_POLICY", "NO_RETRY", "NO_RETRY_EXTENSION", "RetryPolicy", "RetryTransport"]

logger = logging.getLogger(__name__)

NO_RETRY_EXTENSION = "pymodelkit.no_retry"
_RETRIED_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one operation is retried.

    ``attempts`` counts every try, the first included; ``budget_s`` bounds the time spent waiting and retrying since
    the first try (for resumable transfers: since the last progress). The n-th retry waits
    ``min(max_delay_s, base_delay_s * 2**(n-1))`` scaled by a random factor in [0.5, 1), or what ``Retry-After`` says.
    """

    attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    budget_s: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.budget_s < 0:
            raise ValueError("RetryPolicy delays and budget must not be negative")

    def delay_s(
        self, retry: int, *, retry_after_s: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); ``retry_after_s`` from the server wins."""
        if retry_after_s is not None:
            return retry_after_s
        backoff: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(0, retry - 1))
        return backoff * (0.5 + 0.5 * rand())

    def allows(self, attempt: int, elapsed_s: float, delay_s: float) -> bool:
        """Tell whether another try may follow try number ``attempt`` after ``elapsed_s`` and a wait of ``delay_s``."""
        return attempt < self.attempts and elapsed_s + delay_s <= self.budget_s


DEFAULT_RETRY_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1, budget_s=0.0)


class RetryTransport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` that retries temporary failures of idempotent requests on ``inner``.

    Thread-safe when ``inner`` is (``httpx.HTTPTransport`` is). ``sleep`` and ``clock`` may be replaced in tests.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self._sleep = sleep
        self._clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying it while the policy allows and the failure is temporary."""
        if not _is_retryable(request):
            return self.inner.handle_request(request)
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                delay = self.policy.delay_s(attempt)
                if isinstance(exc, httpx.TimeoutException):
                    raise  # it waited the whole timeout already: once is the bound (the module docstring)
                if not is_temporary_transport_error(exc) or not self.policy.allows(
                    attempt, self._clock() - start, delay
                ):
                    raise
                logger.debug("%s %s failed (%s); retry %d in %.2fs", request.method, redact_url(request.url),
                             type(exc).__name__, attempt, delay)
                self._sleep(delay)
                continue
            if not is_temporary_status(response.status_code):
                return response
            delay = self.policy.delay_s(attempt, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
            if not self.policy.allows(attempt, self._clock() - start, delay):
                return response
            logger.debug("%s %s answered %d; retry %d in %.2fs", request.method, redact_url(request.url),
                         response.status_code, attempt, delay)
            response.close()
            self._sleep(delay)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


def _is_retryable(request: httpx.Request) -> bool:
    if request.extensions.get(NO_RETRY_EXTENSION) or request.method not in _RETRIED_METHODS:
        return False
    # Only bodies held in memory can be sent again; a streamed body belongs to a session-level retry.
    return isinstance(request.stream, httpx.ByteStream)
