"""One registry, one ``httpx.Client``: auth, the transport stack, and the manifest, blob and tag calls (spec
``oci-distribution.md`` §1.1, §1.9, §1.11, §2; STYLE rule 4).

Auth (``pymodelkit.registry.auth.RegistryAuth``, an ``httpx.Auth``) sits over the transport stack of
``registry/transport.py`` (retry over a transport per scheme, environment proxies); logging is an event hook. Every
request carries the scopes it needs in ``request.extensions["pymodelkit.scopes"]``. Blob GET and HEAD follow
redirects by hand and never send credentials to another host. Uploads are in ``upload.py``, downloads in
``download.py``; this module only knows single exchanges. What ``GET /v2/`` probes say about the server — the scheme
a loopback registry speaks, whether it answers, whether it is an OCI registry at all — is ``registry/probe.py``'s.

The TLS files (CA files, client certificate) are checked when the client is made if it may speak https to the
registry: always, except with plain HTTP (``plain_http=True``, ``PYMODELKIT_PLAIN_HTTP``), which reads no TLS file
unless an https request is made after all (a redirect to https storage, an https token server).

Every wait of a request (to connect, then for each read and write) is bounded by ``timeout_s``, default
``PYMODELKIT_TIMEOUT`` (30 s), and a timed-out request is not retried; a probe waits at most 10 s.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx

from pymodelkit import settings
from pymodelkit._version import __version__
from pymodelkit.errors import DigestMismatchError, RegistryError
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES
from pymodelkit.oci.mediatypes import MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST
from pymodelkit.registry.probe import PROBE_TIMEOUT_S, ServerProbe, is_certificate_error
from pymodelkit.registry.responses import check_response, redact_url, transport_failure
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, NO_RETRY_EXTENSION, RetryPolicy
from pymodelkit.registry.tls import CaBundle, ClientCert, deferred_tls_options
from pymodelkit.registry.transport import is_loopback, registry_transports

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource

__all__ = [
    "BLOB_GET_HEADERS",
    "MANIFEST_ACCEPT",
    "SCOPES_EXTENSION",
    "USER_AGENT",
    "FetchedManifest",
    "RegistryClient",
    "delete_scope",
    "is_certificate_error",  # (from registry/probe.py; importable here as before)
    "is_loopback",  # (from registry/transport.py, as registry_transports)
    "pull_scope",
    "push_scope",
    "registry_transports",
]

logger = logging.getLogger(__name__)

SCOPES_EXTENSION = "pymodelkit.scopes"
USER_AGENT = f"pymodelkit/{__version__}"
MEDIA_TYPE_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join(
    (MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST)
)
# Every blob GET sends these. Blobs are compressed or not by their media type, never by HTTP: the body must be the
# blob's bytes as stored, so a proxy that would gzip it cannot break the size and digest checks.
BLOB_GET_HEADERS: Mapping[str, str] = MappingProxyType({"Accept-Encoding": "identity"})
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def pull_scope(repository: str) -> str:
    """The token scope for reading ``repository``."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """The token scope for writing ``repository`` (push always asks for pull too)."""
    return f"repository:{repository}:pull,push"


def delete_scope(repository: str) -> str:
    """The token scope for deleting manifests or tags of ``repository`` (as kit asks: delete and pull)."""
    return f"repository:{repository}:delete,pull"


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest as the registry sent it: the exact bytes, the media type it was served as, and its digest."""

    data: bytes
    media_type: str
    digest: Digest


class RegistryClient:
    """A connection to one registry. Thread-safe; use it as a context manager or call :meth:`close`.

    Args:
        registry: ``host[:port]`` as in a reference (``docker.io`` is reached at ``registry-1.docker.io``).
        credentials: where secrets come from; default: the documented chain of
            ``pymodelkit.registry.credentials.default_credentials`` (anonymous when there is none).
        plain_http: ``True`` for http, ``False`` for https only; ``None``: https, except that loopback registries
            fall back to http when they do not speak TLS (as Docker does), and ``PYMODELKIT_PLAIN_HTTP=1`` means http.
        tls_verify: verify the server certificate. ca_bundle: PEM file(s) of CA certificates trusted besides the
            default ones. client_cert: the client certificate for mutual TLS, one PEM file holding certificate and
            key or ``(certificate file, key file)``. Without them, those of an enclosing
            :func:`~pymodelkit.registry.tls.use_tls_options` block; the client certificate then defaults to
            ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY``. The files are checked here (NotFoundError, ModelKitError:
            one line naming the file), before any request; with plain HTTP only when an https request needs them.
        timeout_s: the longest wait of each request, in seconds: to connect, then for each read of the answer and
            each write of the body (not a bound on a whole transfer); default ``PYMODELKIT_TIMEOUT``, else 30. A
            request that times out is not retried.
        retry: the request-level retry policy of idempotent requests.
        transport: replaces the HTTP transport (tests); retry still wraps it.
        trust_env: use ``HTTP(S)_PROXY``/``NO_PROXY`` and ``SSL_CERT_FILE`` from the environment.
    """

    def __init__(
        self,
        registry: str,
        *,
        credentials: CredentialSource | None = None,
        plain_http: bool | None = None,
        tls_verify: bool = True,
        ca_bundle: CaBundle | None = None,
        client_cert: ClientCert | None = None,
        timeout_s: float | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self.registry = registry
        self.host = "registry-1.docker.io" if registry == "docker.io" else registry
        self.timeout_s = settings.registry_timeout() if timeout_s is None else timeout_s
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be a positive number of seconds")
        if plain_http is None and settings.plain_http():
            plain_http = True
        scheme: str | None = None if plain_http is None else ("http" if plain_http else "https")
        if scheme is None and not is_loopback(self.host):
            scheme = "https"
        tls_files = deferred_tls_options(ca_bundle=ca_bundle, client_cert=client_cert)
        if scheme != "http":
            tls_files()  # https to the registry (or a probe of it): check the files now, before any request
        base, mounts = registry_transports(self.host, tls_files=tls_files, tls_verify=tls_verify,
                                           trust_env=trust_env, retry=retry, transport=transport)
        self._client = httpx.Client(
            auth=_make_auth(registry, credentials),
            transport=base,
            mounts=mounts,
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=False,
            trust_env=trust_env,
            event_hooks={"request": [_log_request], "response": [_log_response]},
        )
        probe_timeout_s = min(PROBE_TIMEOUT_S, self.timeout_s)
        # the sender holds the httpx client, not this one: no reference cycle keeps an unclosed client's pool alive
        self._probe = ServerProbe(registry, self.host, scheme=scheme, timeout_s=probe_timeout_s,
                                  send=functools.partial(_send_probe, self._client, probe_timeout_s))

    # ----- plumbing ----------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``scheme://host``, probing https first for a loopback registry on first use.

        Raises RegistryError when the probe found the registry unreachable (every later call raises it again)."""
        return f"{self._probe.fetch_scheme()}://{self.host}"

    def url(self, path: str) -> str:
        """The absolute URL of ``/v2/<path>``."""
        return f"{self.base_url}/v2/{path}"

    def send(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        stream: bool = False,
        retry: bool = True,
        authenticate: bool = True,
        answer_wait_s: float | None = None,
    ) -> httpx.Response:
        """Send one request with the scopes it needs; no redirect is followed.

        Args:
            retry: ``False`` marks it ``pymodelkit.no_retry`` (its caller retries at a higher level).
            authenticate: ``False`` sends no credentials (a redirect to another host).
            stream: leave the body unread; the caller must close the response.
            answer_wait_s: the longest wait for each read of the answer, when longer than ``timeout_s`` (a blob's
                closing PUT, which the registry may answer only once it has re-read or moved the whole blob).

        Raises:
            RegistryError: no answer (``status`` is ``None``); the server is not an OCI registry (an error answer
                without the distribution header, and ``GET /v2/`` says so); AuthError from the auth layer.
        """
        extensions: dict[str, Any] = {SCOPES_EXTENSION: scopes}
        if not retry:
            extensions[NO_RETRY_EXTENSION] = True
        timeout: httpx.Timeout | Any = httpx.USE_CLIENT_DEFAULT
        if answer_wait_s is not None and answer_wait_s > self.timeout_s:
            timeout = httpx.Timeout(self.timeout_s, read=answer_wait_s)
        request = self._client.build_request(method, url, headers=headers, content=content, extensions=extensions,
                                             timeout=timeout)
        if getattr(content, "replayable", False) is True:
            # A body that can be iterated again (a FileSpan): say so, so the auth layer resends it after a 401.
            request.stream = _ReplayableStream(content)
        try:
            if authenticate:
                response = self._client.send(request, stream=stream)
            else:
                response = self._client.send(request, stream=stream, auth=None)
        except httpx.TransportError as exc:
            raise transport_failure(exc, registry=self.registry) from exc
        if authenticate and response.status_code >= 400:  # (not for an answer from another host: a redirect's)
            self._probe.check_error_answer(response)
        return response

    def send_following(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send a body-less request and follow up to 10 redirects; credentials go to the registry's origin only."""
        origin = _origin(httpx.URL(self.base_url))
        for _ in range(MAX_REDIRECTS + 1):
            same_origin = _origin(httpx.URL(url)) == origin
            response = self.send(
                method, url, scopes=scopes, headers=headers, stream=stream, retry=retry, authenticate=same_origin
            )
            location = response.headers.get("location")
            if response.status_code not in _REDIRECT_STATUSES or not location:
                return response
            response.close()
            if response.status_code == 303 and method != "HEAD":
                method = "GET"
            url = urljoin(str(response.url), location)
            logger.debug("redirected to %s", redact_url(url))
        raise RegistryError(
            f"{method} {redact_url(url)}: more than {MAX_REDIRECTS} redirects", method=method, url=redact_url(url)
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- registry calls ----------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: check that the registry answers and accepts us. Raises RegistryError or AuthError."""
        response = self.send("GET", self.url(""), scopes=())
        if response.is_success:
            self._probe.check_v2_answer(response)  # a web page at /v2/ is no registry either
        check_response(response, 200, subject=f"registry {self.registry}")
        response.close()

    def fetch_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """GET a manifest by tag or digest, with the full OCI + Docker ``Accept`` list, verified and at most 4 MiB.

        Raises:
            RegistryError: not found (404, naming the reference), too large, or another error status.
            DigestMismatchError: the bytes do not match the requested digest or ``Docker-Content-Digest``.
        """
        subject = f"manifest {self._display(repository, reference)}"
        response = self.send(
            "GET", self.url(f"{repository}/manifests/{reference}"), scopes=(pull_scope(repository),),
            headers={"Accept": MANIFEST_ACCEPT}, stream=True,
        )
        try:
            check_response(response, 200, subject=subject)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
                raise self._too_large(subject, response, int(declared))
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise self._too_large(subject, response, None)
        except httpx.TransportError as exc:
            raise transport_failure(exc, registry=self.registry) from exc
        finally:
            response.close()
        data = bytes(body)
        digest = _verify_manifest_digest(subject, data, reference, response.headers.get("docker-content-digest"))
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return FetchedManifest(data=data, media_type=media_type, digest=digest)

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> Digest:
        """PUT the exact manifest bytes under a tag or digest, ``Content-Type`` = ``media_type``; returns the digest.

        Raises:
            RegistryError: the registry refused it (e.g. 400 MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN).
            DigestMismatchError: the registry reports another digest than the bytes have.
        """
        digest = Digest.from_bytes(data)
        response = self.send(
            "PUT", self.url(f"{repository}/manifests/{reference}"), scopes=(push_scope(repository),),
            headers={"Content-Type": media_type}, content=data,
        )
        check_response(response, 201, subject=f"manifest {self._display(repository, reference)}")
        reported = response.headers.get("docker-content-digest")
        if reported and reported != str(digest):
            raise DigestMismatchError(
                f"registry stored manifest {self._display(repository, reference)} as {reported}, expected {digest}",
                expected=str(digest), actual=reported,
            )
        return digest

    def head_blob(self, repository: str, digest: Digest) -> int | None:
        """HEAD a blob (following redirects): its size when the repository has it, ``None`` when it does not, ``-1``
        when it has it but the answer carries no ``Content-Length``."""
        response = self.send_following("HEAD", self.url(f"{repository}/blobs/{digest}"),
                                       scopes=(pull_scope(repository),))
        response.close()
        if response.status_code == 404:
            return None
        check_response(response, 200, subject=f"blob {digest} in {self.registry}/{repository}")
        length = response.headers.get("content-length")
        return int(length) if length is not None and length.isdigit() else -1

    def has_blob(self, repository: str, digest: Digest, size: int) -> bool:
        """Tell whether the repository has the blob with ``size`` bytes (HEAD, as :meth:`head_blob`).

        A 200 without a ``Content-Length`` (:meth:`head_blob`'s ``-1``: the size is not said) counts as having it: the
        digest names the bytes. A 200 with another size counts as not having it.
        """
        return self.head_blob(repository, digest) in (size, -1)

    def open_blob(self, repository: str, digest: Digest, *, offset: int = 0) -> httpx.Response:
        """GET a blob as a stream (``Range: bytes=<offset>-`` when ``offset`` > 0), following redirects.

        Not retried here: ``download.py`` resumes. The caller closes the response; a 200 to a ranged request means
        the registry sends the whole blob again. Sends :data:`BLOB_GET_HEADERS`: the body is the blob's bytes.

        Raises:
            RegistryError: no answer, not found (naming the digest), or another error status.
        """
        headers = dict(BLOB_GET_HEADERS)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.send_following("GET", self.url(f"{repository}/blobs/{digest}"),
                                       scopes=(pull_scope(repository),), headers=headers, stream=True, retry=False)
        return check_response(response, 200, 206, subject=f"blob {digest} in {self.registry}/{repository}")

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository``, following ``Link: <…>; rel="next"`` pages, in the registry's order.

        ``page_size`` asks for pages of at most that many tags (``?n=``); registries may ignore it (v2.8 does).

        Raises:
            RegistryNotFoundError: no such repository. RegistryError, AuthError: as :meth:`send`.
        """
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1")
        url = self.url(f"{repository}/tags/list")
        if page_size is not None:
            url += f"?n={page_size}"
        tags: list[str] = []
        for _ in range(10_000):
            response = self.send("GET", url, scopes=(pull_scope(repository),))
            check_response(response, 200, subject=f"repository {self.registry}/{repository}")
            doc = response.json()
            page = doc.get("tags") if isinstance(doc, dict) else None
            tags += [str(tag) for tag in page or ()]
            match = _LINK_NEXT_RE.search(response.headers.get("link", ""))
            if match is None:
                return tags
            url = urljoin(str(response.url), match.group(1))
        raise RegistryError(f"tag list of {self.registry}/{repository} does not end", url=redact_url(url))

    def delete_manifest(self, repository: str, reference: str) -> None:
        """``DELETE /v2/<repository>/manifests/<tag or digest>``, expecting ``202 Accepted``.

        Registries may refuse: deletes disabled (405 ``UNSUPPORTED``), or tag deletion not implemented (registry:2
        v2.8 answers a tag with 400 ``DIGEST_INVALID``); the error's ``status`` and ``code`` say which.

        Raises:
            RegistryNotFoundError: no such manifest (404). RegistryError: any other refusal. AuthError: 401/403.
        """
        response = self.send(
            "DELETE", self.url(f"{repository}/manifests/{reference}"), scopes=(delete_scope(repository),)
        )
        check_response(response, 202, subject=f"manifest {self._display(repository, reference)}")
        response.close()

    # ----- internals ---------------------------------------------------------------------------------------------

    def _display(self, repository: str, reference: str) -> str:
        separator = "@" if ":" in reference else ":"
        return f"{self.registry}/{repository}{separator}{reference}"

    def _too_large(self, subject: str, response: httpx.Response, size: int | None) -> RegistryError:
        said = f"{size} bytes" if size is not None else "larger than that"
        return RegistryError(
            f"{subject} is {said}: refusing manifests over the 4 MiB limit",
            method=response.request.method, url=redact_url(response.request.url), status=response.status_code,
        )



def _send_probe(client: httpx.Client, timeout_s: float, url: str) -> httpx.Response:
    """An unauthenticated, unretried ``GET`` of ``url`` waiting at most ``timeout_s``; its body unread."""
    request = client.build_request("GET", url, extensions={SCOPES_EXTENSION: (), NO_RETRY_EXTENSION: True},
                                   timeout=timeout_s)
    return client.send(request, auth=None, stream=True)


class _ReplayableStream(httpx.SyncByteStream):
    """A request body each iteration of which starts over (``replayable`` is what the auth layer looks for)."""

    replayable = True

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body


def _verify_manifest_digest(subject: str, data: bytes, reference: str, header: str | None) -> Digest:
    computed = {"sha256": Digest.from_bytes(data)}
    for label, claimed in (("requested", reference if ":" in reference else None), ("Docker-Content-Digest", header)):
        if not claimed:
            continue
        try:
            wanted = Digest.parse(claimed)
        except ValueError:
            if label == "requested":
                raise
            continue
        actual = computed.get(wanted.algorithm)
        if actual is None:
            actual = Digest(wanted.algorithm, hashlib.new(wanted.algorithm, data).hexdigest())
            computed[wanted.algorithm] = actual
        if actual != wanted:
            raise DigestMismatchError(
                f"{subject}: the bytes received hash to {actual}, not the {label} digest {wanted}",
                expected=str(wanted), actual=str(actual),
            )
    return computed["sha256"]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port if url.port is not None else default


def _make_auth(registry: str, credentials: CredentialSource | None) -> httpx.Auth | None:
    if credentials is None:
        try:
            credentials_module = importlib.import_module("pymodelkit.registry.credentials")
        except ModuleNotFoundError as exc:
            if exc.name != "pymodelkit.registry.credentials":
                raise
        else:
            credentials = credentials_module.default_credentials()
    try:
        auth_module = importlib.import_module("pymodelkit.registry.auth")
    except ModuleNotFoundError as exc:
        if exc.name != "pymodelkit.registry.auth":
            raise
        logger.debug("pymodelkit.registry.auth is not available: requests to %s are anonymous", registry)
        return None
    auth: httpx.Auth = auth_module.RegistryAuth(registry, credentials)
    return auth


def _log_request(request: httpx.Request) -> None:
    logger.debug("%s %s", request.method, redact_url(request.url))


def _log_response(response: httpx.Response) -> None:
    logger.debug("%s %s -> %d", response.request.method, redact_url(response.request.url), response.status_code)
