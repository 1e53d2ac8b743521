"""Challenge-driven registry auth as an ``httpx.Auth``: Basic, and Docker bearer tokens cached per scope set
(spec ``oci-distribution.md`` §3, traps 13, 17-19; STYLE rule 4).

The flow: send (with a cached or freshly fetched token for the request's scopes once the registry is known to want
tokens) → on a 401 parse ``WWW-Authenticate`` → Basic: resend with the credential, to the registry's host only;
Bearer: ``GET realm?service=…&scope=…`` (Basic credentials, or anonymous), or the OAuth2 ``POST`` when an identity
token is held → cache → resend. A resend that is refused again raises :class:`~pymodelkit.errors.AuthError`.
Which secret to use is ``registry.credentials``' job; retries of failed connections are ``registry.retry``'s.

Request bodies are never buffered here (``requires_request_body`` is off). A request is resent after a 401 only if
its body can be sent again: no body, ``bytes``, or a body object (an ``httpx.SyncByteStream``, or an iterable given
as ``content=``) whose ``__iter__`` restarts from the beginning and that says so with a true ``replayable``
attribute. Any other streamed body (a generator, a file object) is not resent: the token is fetched and cached and
the 401 is returned, so the caller resends the request with a fresh body and the token goes out with it up front.
Authenticating a body-less request first (the upload POST) avoids even that.

The module is longer than most because the token exchange (GET, OAuth2 POST, answers and refusals) cannot be
separated from the flow that drives it through the same generator.
"""

from __future__ import annotations

import base64
import datetime as _dt
import inspect
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from pymodelkit.errors import AuthError, RegistryError
from pymodelkit.registry.challenge import Challenge, parse_challenges
from pymodelkit.registry.credentials import Credential, CredentialSource, canonical_host
from pymodelkit.registry.responses import error_from_response, redact_url

__all__ = [
    "DEFAULT_TOKEN_LIFETIME_S",
    "OAUTH2_CLIENT_ID",
    "RENEW_MARGIN_S",
    "SCOPES_EXTENSION",
    "RegistryAuth",
    "Token",
    "clean_scopes",
]

logger = logging.getLogger(__name__)

SCOPES_EXTENSION = "pymodelkit.scopes"
DEFAULT_TOKEN_LIFETIME_S = 60.0  # when the token server does not say (distribution's token spec)
RENEW_MARGIN_S = 10.0  # renew this long before expiry (at most a fifth of the token's lifetime)
OAUTH2_CLIENT_ID = "pymodelkit"
MAX_TOKEN_RESPONSE_BYTES = 1 << 20
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))", re.ASCII
)

_Key = tuple[str, str, tuple[str, ...]]  # (realm, service, cleaned scopes)


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """A bearer token and when to stop using it (``renew_at``, on the ``time.monotonic`` clock)."""

    value: str
    scopes: tuple[str, ...]
    renew_at: float

    def __repr__(self) -> str:
        return f"Token(<redacted>, scopes={self.scopes!r}, renew_at={self.renew_at:.1f})"


def clean_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes merged per resource and sorted: ``repository:a:push`` and ``repository:a:pull`` → ``…:pull,push``.

    The resource name may hold ``host:port`` (the actions follow the last colon); ``*`` absorbs the other actions.
    Scopes that do not parse are kept verbatim.
    """
    merged: dict[tuple[str, str], set[str]] = {}
    verbatim: set[str] = set()
    for scope in scopes:
        rtype, sep, rest = scope.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not rtype or not name:
            if scope:
                verbatim.add(scope)
            continue
        merged.setdefault((rtype, name), set()).update(a for a in actions.split(",") if a)
    out = []
    for (rtype, name), granted in sorted(merged.items()):
        listed = ["*"] if "*" in granted else sorted(granted)
        out.append(f"{rtype}:{name}:{','.join(listed)}")
    return (*out, *sorted(verbatim))


class RegistryAuth(httpx.Auth):
    """Challenge-driven auth for one registry: Basic or Docker bearer tokens, one token per scope set, cached,
    renewed before expiry and on 401. Thread-safe: the token cache is locked, and one scope set is fetched once.

    Args:
        registry: ``host[:port]`` of the registry; requests to other hosts pass through untouched.
        credentials: where the secret comes from (asked once, on first need); ``None``: anonymous.
        oauth2_password_grant: fetch tokens with the OAuth2 password grant (``POST``) instead of ``GET`` with Basic
            credentials; a token server that answers the ``POST`` with 404 or 405 gets ``GET`` from then on.
        clock: monotonic seconds (tests).

    A request names the scopes it needs in ``request.extensions["pymodelkit.scopes"]`` (a tuple of strings); without
    it the 401 challenge's scope is used. A request that already has an ``Authorization`` header is left alone.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        registry: str,
        credentials: CredentialSource | None,
        *,
        oauth2_password_grant: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._host = canonical_host(registry)
        self._credentials = credentials
        self._password_grant = oauth2_password_grant
        self._clock = clock
        self._lock = threading.Lock()
        self._credential: Credential | None = None
        self._scheme = ""  # "basic" or "bearer" once the registry has said
        self._bearer: Challenge | None = None
        self._tokens: dict[_Key, Token] = {}
        self._fetch_locks: dict[_Key, threading.Lock] = {}
        self._refresh_token = ""  # a newer refresh token than the credential's, if the token server sent one
        self._oauth2_unsupported = False
        self._widened: dict[_Key, _Key] = {}  # requested scopes → the larger set the registry asked for
        self._refusals: dict[_Key, int] = {}  # 401s in a row for a token sent up front (non-replayable bodies)
        self.token_fetches = 0  # how many tokens this auth has fetched (diagnostics)

    def __repr__(self) -> str:
        return f"RegistryAuth({self.registry!r}, scheme={self._scheme or None!r}, tokens={len(self._tokens)})"

    # ----- the flow ----------------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send ``request``, authenticating as the registry asks; see the class docstring."""
        if "authorization" in request.headers or not self._is_registry(request.url):
            yield request
            return
        requested = _requested_scopes(request)
        credential = self._get_credential()
        sent: _Key | None = None
        sent_basic = False
        with self._lock:
            scheme, bearer = self._scheme, self._bearer
        if credential.registry_token:
            request.headers["Authorization"] = f"Bearer {credential.registry_token}"
        elif scheme == "basic" and _has_basic(credential):
            request.headers["Authorization"] = _basic_header(credential)
            sent_basic = True
        elif scheme == "bearer" and bearer is not None and requested is not None:
            sent = _key(bearer, requested)
            with self._lock:
                sent = self._widened.get(sent, sent)
            token = yield from self._token_for(sent, request, refused=None)
            request.headers["Authorization"] = f"Bearer {token.value}"

        response = yield request
        if response.status_code != 401 or not self._is_registry(response.request.url):
            if sent is not None:
                self._clear_refusals(sent)
            return
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        by_scheme = {c.scheme: c for c in reversed(challenges)}  # the first challenge of each scheme
        replayable = _is_replayable(request)

        if "bearer" in by_scheme:
            challenge = by_scheme["bearer"]
            with self._lock:
                self._scheme, self._bearer = "bearer", challenge
            if credential.registry_token:
                raise _refused(response, f"{self.registry} refused the registry token from the credential store")
            key = _key(challenge, (*(requested or ()), *challenge.scopes))
            refused = None
            if key == sent:
                refused = request.headers.get("authorization", "")[len("Bearer ") :]
                with self._lock:
                    refusals = self._refusals[key] = self._refusals.get(key, 0) + 1
                if refusals >= 2:  # a fresh token for these scopes was refused too: stop
                    with self._lock:
                        self._refusals.pop(key, None)
                    raise _refused(response, f"{self.registry} refused access to {_describe_scopes(key[2])}")
            if requested is not None and key != _key(challenge, requested):
                with self._lock:  # the registry wants more than asked for: ask for that up front next time
                    self._widened[_key(challenge, requested)] = key
            if not replayable:
                # The caller resends with a fresh body, and the token is fetched up front for it. (Fetching it
                # here would make the token server's answer, not this 401, the response the caller gets.)
                if refused is not None:
                    self._forget(key, refused)
                return
            token = yield from self._token_for(key, request, refused=refused)
            request.headers["Authorization"] = f"Bearer {token.value}"
            response = yield request
            if response.status_code == 401:
                self._clear_refusals(key)
                raise _refused(response, f"{self.registry} refused access to {_describe_scopes(key[2])}")
            self._clear_refusals(key)
            return

        if "basic" in by_scheme:
            with self._lock:
                self._scheme = "basic"
            if sent_basic:
                raise _refused(response, f"{self.registry} refused the username and password")
            if not _has_basic(credential):
                return  # nothing to answer with: the 401 is the caller's
            request.headers["Authorization"] = _basic_header(credential)
            if not replayable:
                return
            response = yield request
            if response.status_code == 401:
                raise _refused(response, f"{self.registry} refused the username and password")

    # ----- tokens ------------------------------------------------------------------------------------------------

    def _token_for(
        self, key: _Key, request: httpx.Request, *, refused: str | None
    ) -> Generator[httpx.Request, httpx.Response, Token]:
        """The cached token for ``key`` if still fresh (and not the one just ``refused``), else a new one."""
        with self._lock:
            lock = self._fetch_locks.setdefault(key, threading.Lock())
        with lock:  # one fetch per scope set; other threads wanting it wait here, then find it cached
            with self._lock:
                cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.renew_at and cached.value != refused:
                return cached
            token = yield from self._fetch_token(key, request)
            with self._lock:
                self._tokens[key] = token
                self.token_fetches += 1
            return token

    def _fetch_token(self, key: _Key, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, Token]:
        realm, service, scopes = key
        try:
            realm_url = httpx.URL(realm)
        except httpx.InvalidURL:
            realm_url = httpx.URL("invalid:")
        if realm_url.scheme not in ("http", "https") or not realm_url.host:
            raise AuthError(f"{self.registry} announced an unusable token realm {realm!r}", url=redact_url(realm))
        credential = self._get_credential()
        with self._lock:
            refresh_token = self._refresh_token or credential.identity_token
            password_grant = self._password_grant and _has_basic(credential) and not self._oauth2_unsupported
        secret_allowed = (
            realm_url.scheme == "https" or request.url.scheme == "http" or _is_loopback_host(realm_url.host)
        )
        if (refresh_token or _has_basic(credential)) and not secret_allowed:
            raise AuthError(
                f"{self.registry}: refusing to send credentials to the plain-http token realm {redact_url(realm_url)}",
                url=redact_url(realm_url),
            )
        timeout = request.extensions.get("timeout")
        extensions: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        fields = {"service": service, "client_id": OAUTH2_CLIENT_ID, "scope": " ".join(scopes)}
        if refresh_token:
            fields |= {"grant_type": "refresh_token", "refresh_token": refresh_token}
        elif password_grant:
            fields |= {"grant_type": "password", "username": credential.username, "password": credential.password}
        if refresh_token or password_grant:
            post = httpx.Request("POST", realm_url, data=fields, extensions=extensions)
            logger.debug("OAuth2 %s token for %s from %s", fields["grant_type"], scopes, redact_url(realm_url))
            response = yield post
            if not (password_grant and response.status_code in (404, 405)):
                return self._parse_token(response, scopes, refresh=bool(refresh_token))
            logger.debug("%s has no OAuth2 endpoint: falling back to GET", redact_url(realm_url))
            with self._lock:
                self._oauth2_unsupported = True
        params: list[tuple[str, str | int | float | bool | None]] = [("service", service)] if service else []
        params += [("scope", scope) for scope in scopes]
        headers = {"Authorization": _basic_header(credential)} if _has_basic(credential) else {}
        get = httpx.Request("GET", realm_url, params=params, headers=headers, extensions=extensions)
        logger.debug(
            "%s token for %s from %s", "authenticated" if headers else "anonymous", scopes, redact_url(realm_url)
        )
        response = yield get
        return self._parse_token(response, scopes, refresh=False)

    def _parse_token(self, response: httpx.Response, scopes: tuple[str, ...], *, refresh: bool) -> Token:
        where = redact_url(response.request.url)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_TOKEN_RESPONSE_BYTES:
            raise AuthError(f"the token server {where} sent a {length}-byte answer", url=where)
        body = response.read()
        if response.status_code != 200:
            what = f"{self.registry}: the token server refused {_describe_scopes(scopes)}"
            raise _token_refused(response, body, what)
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            doc = None
        value = ""
        if isinstance(doc, dict):
            for field in ("access_token", "token"):
                if isinstance(doc.get(field), str) and doc[field]:
                    value = doc[field]
                    break
        if not isinstance(doc, dict) or not value:
            raise AuthError(
                f"{self.registry}: the token server's answer has no token [{response.request.method} {where}]",
                method=response.request.method,
                url=where,
                status=response.status_code,
            )
        lifetime = doc.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME_S
        remaining = float(lifetime) - _age_s(doc.get("issued_at"), float(lifetime))
        renew_at = self._clock() + max(0.0, remaining - min(RENEW_MARGIN_S, float(lifetime) / 5))
        new_refresh = doc.get("refresh_token")
        if refresh and isinstance(new_refresh, str) and new_refresh:
            with self._lock:
                self._refresh_token = new_refresh
        return Token(value, scopes, renew_at)

    # ----- helpers -----------------------------------------------------------------------------------------------

    def _forget(self, key: _Key, value: str) -> None:
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.value == value:
                del self._tokens[key]

    def _clear_refusals(self, key: _Key) -> None:
        with self._lock:
            self._refusals.pop(key, None)

    def _get_credential(self) -> Credential:
        with self._lock:
            if self._credential is not None:
                return self._credential
        found = self._credentials.get_credential(self.registry) if self._credentials is not None else None
        with self._lock:
            self._credential = found if found is not None else Credential()
            return self._credential

    def _is_registry(self, url: httpx.URL) -> bool:
        port = url.port
        default = {"http": 80, "https": 443}.get(url.scheme)
        host = url.host.lower()
        if ":" in host:
            host = f"[{host}]"
        candidates = {canonical_host(host if port is None else f"{host}:{port}")}
        if port is None and default is not None:
            candidates.add(canonical_host(f"{host}:{default}"))
        return self._host in candidates


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _requested_scopes(request: httpx.Request) -> tuple[str, ...] | None:
    value = request.extensions.get(SCOPES_EXTENSION)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(scope) for scope in value)


def _key(challenge: Challenge, scopes: Iterable[str]) -> _Key:
    return (challenge.realm, challenge.service, clean_scopes(scopes))


def _has_basic(credential: Credential) -> bool:
    # An identity token is a refresh token for the OAuth2 POST: never Basic (trap 18).
    return bool(credential.username) and not credential.identity_token


def _basic_header(credential: Credential) -> str:
    pair = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _is_replayable(request: httpx.Request) -> bool:
    stream = request.stream
    if isinstance(stream, httpx.ByteStream) or getattr(stream, "replayable", False) is True:
        return True
    # An iterable passed as ``content=`` is wrapped by httpx, which iterates it afresh on a resend.
    inner = getattr(stream, "_stream", None)
    if inner is not None and not inspect.isgenerator(inner) and getattr(inner, "replayable", False) is True:
        return True
    try:
        request.content  # noqa: B018 - raises RequestNotRead for an unread stream
    except httpx.RequestNotRead:
        return False
    return True


def _describe_scopes(scopes: tuple[str, ...]) -> str:
    return " ".join(scopes) if scopes else "access (no scope)"


def _age_s(issued_at: object, lifetime: float) -> float:
    """How long ago ``issued_at`` (RFC 3339) was, if that is plausible; 0 when absent, in the future or too old."""
    if not isinstance(issued_at, str):
        return 0.0
    match = _RFC3339_RE.fullmatch(issued_at.strip())
    if match is None:
        return 0.0
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = float("0." + match.group(7)) if match.group(7) else 0.0
    offset = 0
    if match.group(9):
        offset = (int(match.group(10)) * 60 + int(match.group(11))) * 60 * (1 if match.group(9) == "+" else -1)
    try:
        issued = _dt.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=_dt.timezone.utc)
    except ValueError:
        return 0.0
    age = time.time() - (issued.timestamp() - offset + fraction)
    return age if 0.0 <= age < lifetime else 0.0


def _refused(response: httpx.Response, what: str) -> AuthError:
    """The AuthError for a registry answer that refuses what was sent, with the registry's own code and message."""
    base = error_from_response(response)
    said = f"{base.status}" + (f" {base.code}: {base.oci_message}" if base.code else "")
    method, url = response.request.method, redact_url(response.request.url)
    return AuthError(
        f"{what} ({said}) [{method} {url}]",
        method=method,
        url=url,
        status=base.status,
        code=base.code,
        oci_message=base.oci_message,
        detail=base.detail,
        errors=base.errors,
        is_temporary=False,
    )


def _token_refused(response: httpx.Response, body: bytes, what: str) -> RegistryError:
    """A token server's refusal: OCI ``errors``, OAuth2 ``error``/``error_description`` or Docker's ``details``."""
    errors: list[tuple[str, str]] = []
    try:
        doc = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        entries = doc.get("errors")
        if isinstance(entries, list):
            errors = [
                (str(e.get("code") or ""), " ".join(str(e.get("message") or "").split()))
                for e in entries
                if isinstance(e, dict)
            ]
        elif isinstance(doc.get("error"), str):
            errors = [(doc["error"], " ".join(str(doc.get("error_description") or "").split()))]
        elif isinstance(doc.get("details"), str):
            errors = [("", " ".join(doc["details"].split()))]
    code, message = errors[0] if errors else ("", "")
    said = " ".join(part for part in (str(response.status_code), f"{code}:" if code else "", message) if part)
    method, url = response.request.method, redact_url(response.request.url)
    cls = AuthError if response.status_code in (400, 401, 403) else RegistryError
    return cls(
        f"{what} ({said.rstrip(':')}) [{method} {url}]",
        method=method,
        url=url,
        status=response.status_code,
        code=code or None,
        oci_message=message or None,
        errors=tuple(errors),
        is_temporary=response.status_code in (408, 429) or response.status_code >= 500,
    )
