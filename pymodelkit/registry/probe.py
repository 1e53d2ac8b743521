"""What unauthenticated ``GET /v2/`` probes say about a registry's server, asked at most once per client and kept:
which scheme it speaks, whether it answers at all, and whether it is an OCI registry (spec ``oci-distribution.md``
§1.0 version check, §1.13 errors).

**Scheme.** A loopback registry with no scheme chosen is asked over https first (as Docker does); one that does not
speak TLS is used over plain http. A certificate failure means it speaks TLS: https stays, and the request says why.
The probe waits at most 10 s; when it times out, a plain-http ``GET /v2/`` gets as long, and if that times out too
the registry is unreachable, which every later call is told again without waiting (a server that accepts connections
and never answers costs about 20 s, not minutes).

**Not a registry.** An error answer without the distribution header (``Docker-Distribution-API-Version``) makes the
client ask ``GET /v2/`` once (unless that is the request at hand): a web server that is no registry (a 404 page there)
fails every request with ``<registry> is not an OCI registry (GET …/v2/ answered 404 text/html)``, exit 11, instead of
a "not found" quoting its HTML (``responses.not_a_registry`` reads the answer). A probe that gets no answer gives no
verdict and is not sent again.

How a probe is sent (unauthenticated, unretried, within the probe timeout) is the client's: :class:`ServerProbe` is
given a function that does it. Thread-safe.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import httpx

from pymodelkit.errors import RegistryError
from pymodelkit.registry.responses import API_VERSION_HEADER, not_a_registry, redact_url

__all__ = ["PROBE_TIMEOUT_S", "ProbeSender", "ServerProbe", "is_certificate_error"]

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0

# Sends ``GET url`` unauthenticated and unretried, waiting at most the probe timeout, and returns the answer with its
# body unread (the caller closes it); raises httpx.TransportError when there is no answer.
ProbeSender = Callable[[str], httpx.Response]


class ServerProbe:
    """The probes of one registry's server and their kept answers (one per :class:`RegistryClient`). Thread-safe.

    Args:
        registry: ``host[:port]`` as the user named it (for messages).
        host: the host the requests go to (``registry-1.docker.io`` for ``docker.io``).
        scheme: ``"http"`` or ``"https"`` when already chosen; ``None``: probe https first on first use.
        timeout_s: the longest wait of each probe, in seconds.
        send: how a probe is sent (:data:`ProbeSender`).
    """

    def __init__(self, registry: str, host: str, *, scheme: str | None, timeout_s: float, send: ProbeSender) -> None:
        self.registry = registry
        self.host = host
        self.timeout_s = timeout_s
        self._send = send
        self._scheme = scheme
        self._scheme_lock = threading.Lock()
        self._unreachable: RegistryError | None = None
        self._verdict_lock = threading.Lock()
        self._verdict_known = False
        self._not_registry: RegistryError | None = None  # what GET /v2/ said, once asked

    def fetch_scheme(self) -> str:
        """``"http"`` or ``"https"``, probing https first on the first call when no scheme was chosen.

        Raises:
            RegistryError: the probe found the registry unreachable (every later call raises it again, at once).
        """
        with self._scheme_lock:
            if self._scheme is None:
                if self._unreachable is not None:
                    raise _fresh(self._unreachable)
                try:
                    self._scheme = self._probe_scheme()
                except RegistryError as exc:
                    self._unreachable = exc  # the threads waiting on the lock do not wait the probe out again
                    raise
            return self._scheme

    def v2_url(self) -> str:
        """``scheme://host/v2/`` (probing the scheme as :meth:`fetch_scheme` does)."""
        return f"{self.fetch_scheme()}://{self.host}/v2/"

    def check_v2_answer(self, response: httpx.Response) -> None:
        """Judge the server by ``response``, its answer to ``GET /v2/`` (the first verdict stays); raise (closing
        ``response``) if it is no OCI registry. Raises RegistryError."""
        self._record_verdict(response)
        self._refuse_if_not_registry(response)

    def check_error_answer(self, response: httpx.Response) -> None:
        """For an error answer of the registry's host: raise (closing it) if the server is no OCI registry.

        An answer carrying the distribution header (or a 401) is a registry's. Otherwise the server's answer to
        ``GET /v2/`` decides: this one if it is that request, else one probe per client, whose verdict is kept. A
        probe that gets no answer gives no verdict (and is not sent again): the error at hand stands.

        Raises:
            RegistryError: ``<registry> is not an OCI registry (GET …/v2/ answered …)``.
        """
        if response.status_code == 401 or API_VERSION_HEADER in response.headers:
            return
        request = response.request
        v2_url = self.v2_url()
        if request.method == "GET" and str(request.url) == v2_url:
            self._record_verdict(response)
        elif not self._verdict_known:
            with self._verdict_lock:
                if not self._verdict_known:
                    try:
                        probe = self._send(v2_url)
                    except httpx.TransportError as exc:
                        logger.debug("GET %s for a verdict failed: %s", redact_url(v2_url), type(exc).__name__)
                        self._verdict_known = True  # no verdict, and no second probe (it could wait as long again)
                        return
                    try:
                        self._record_verdict(probe, locked=True)
                    finally:
                        probe.close()
        self._refuse_if_not_registry(response)

    # ----- internals -------------------------------------------------------------------------------------------

    def _refuse_if_not_registry(self, response: httpx.Response) -> None:
        if self._not_registry is not None:
            response.close()
            raise _fresh(self._not_registry)

    def _record_verdict(self, response: httpx.Response, *, locked: bool = False) -> None:
        """Keep what ``response``, an answer to ``GET /v2/``, says about the server (the first verdict stays)."""
        if not locked:
            with self._verdict_lock:
                self._record_verdict(response, locked=True)
            return
        if not self._verdict_known:
            self._not_registry = not_a_registry(self.registry, response)
            self._verdict_known = True

    def _probe_scheme(self) -> str:
        try:
            self._send(f"https://{self.host}/v2/").close()
        except httpx.TransportError as exc:
            if is_certificate_error(exc):  # it speaks TLS, with a certificate we do not trust: say so, over https
                return "https"
            if isinstance(exc, httpx.TimeoutException):
                return self._probe_plain_http()
            logger.debug("%s does not answer https (%s): using plain http", self.host, type(exc).__name__)
            return "http"
        return "https"

    def _probe_plain_http(self) -> str:
        """After an https probe that timed out: ``GET /v2/`` over http, as long; silent too, the registry is
        unreachable (a server that accepts connections and never answers)."""
        url = f"http://{self.host}/v2/"
        try:
            response = self._send(url)
        except httpx.TimeoutException as exc:
            raise RegistryError(
                f"cannot reach registry {self.registry}: no answer over https or http within "
                f"{self.timeout_s:g} s [GET {redact_url(url)}]",
                method="GET", url=redact_url(url), status=None, detail=type(exc).__name__, is_temporary=True,
            ) from exc
        except httpx.TransportError as exc:
            logger.debug("%s does not answer https (timed out) nor http (%s): using plain http", self.host,
                         type(exc).__name__)
            return "http"
        try:
            self._record_verdict(response)
        finally:
            response.close()
        logger.debug("%s does not answer https (timed out), answers http: using plain http", self.host)
        return "http"


def is_certificate_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the peer speaks TLS and the handshake failed over a certificate: one we do not trust, or
    a TLS alert (it wants a client certificate, or refused ours). A plain-HTTP server sends neither."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        text = str(current)
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return True
        if isinstance(current, ssl.SSLError) and "ALERT" in (current.reason or text).upper():
            return True
        current = current.__cause__ or current.__context__
    return False


def _fresh(error: RegistryError) -> RegistryError:
    """A copy of a kept ``error``, to raise: one instance raised by several threads would share its traceback."""
    return RegistryError(error.message, **error.details)
