"""A Docker registry token server for tests: RS256 JWTs signed by a throwaway key, served by stdlib ``http.server``.

The registry is configured with ``auth: token`` and this server's certificate as ``rootcertbundle``. distribution
(2.8 and 3.x) finds the signing key through the ``x5c`` header (the DER certificate, standard base64) and checks
``iss``, ``aud`` (= service), ``exp``/``nbf`` (each with 60 s of leeway) and the signature; ``access`` grants rights.

Endpoints (both at :attr:`TokenServer.realm`):

* ``GET realm?service=S&scope=A&scope=B[&offline_token=true&client_id=C]`` with optional Basic credentials → JSON
  ``{"token", "access_token", "expires_in", "issued_at"}`` (+ ``"refresh_token"`` with ``offline_token=true``).
* ``POST realm`` (OAuth2 form): ``grant_type=password`` + ``username`` + ``password``, or ``grant_type=refresh_token``
  + ``refresh_token``; ``service``, ``client_id``, ``scope`` (one field, space-separated), ``access_type=offline``
  → JSON ``{"access_token", "scope", "expires_in", "issued_at"}`` + ``"refresh_token"`` (password grant: with
  ``access_type=offline``; refresh grant: always, the same token).

Knobs are plain attributes, changed by tests and put back by :meth:`TokenServer.reset`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["GrantPolicy", "ScopeAccess", "TokenRequest", "TokenServer", "parse_scope"]

REGISTRY_LEEWAY_S = 60
"""distribution accepts a token until ``exp`` + 60 s (``token.Leeway``)."""


@dataclass(frozen=True)
class ScopeAccess:
    """One resource of a scope string: ``repository:team/model:pull,push`` → type, name, actions."""

    type: str
    name: str
    actions: tuple[str, ...]


GrantPolicy = Callable[[str, ScopeAccess], tuple[str, ...]]
"""(subject, requested access) → the actions granted; subject is ``""`` for anonymous requests."""


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered."""

    method: str  # "GET" or "POST"
    grant: str  # "basic", "anonymous", "password", "refresh_token"
    subject: str  # username, "" for anonymous or refused
    scopes: tuple[str, ...]
    status: int
    client_id: str = ""


def parse_scope(scope: str) -> ScopeAccess:
    """Parse one scope: ``type[(class)]:name:actions``; the name may hold a ``host:port`` (split on the last colon)."""
    rtype, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not rtype or not name:
        raise ValueError(f"malformed scope {scope!r}")
    if "(" in rtype:
        rtype = rtype.split("(", 1)[0]
    return ScopeAccess(rtype, name, tuple(a for a in actions.split(",") if a))


def _grant_all(subject: str, access: ScopeAccess) -> tuple[str, ...]:
    return access.actions


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _rfc3339(ts: float) -> str:
    """RFC 3339 with microseconds, as Docker Hub's token server sends (clients must take the fraction)."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Signer:
    key: rsa.RSAPrivateKey
    cert_der: bytes
    cert_pem: bytes

    @classmethod
    def generate(cls, common_name: str) -> _Signer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert.public_bytes(serialization.Encoding.DER), cert.public_bytes(serialization.Encoding.PEM))

    def sign(self, claims: Mapping[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode("ascii")]}
        signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}"
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


@dataclass
class _Defaults:
    token_lifetime_s: int = 300
    require_credentials: bool = True
    compensate_registry_leeway: bool = True
    omit_expires_in: bool = False
    oauth2: bool = True
    grant: GrantPolicy = _grant_all


class TokenServer:
    """Issues registry tokens on ``127.0.0.1`` from a daemon thread. Start with :meth:`start`, end with :meth:`stop`.

    Knobs (attributes): ``token_lifetime_s`` (reported as ``expires_in``); ``compensate_registry_leeway`` (default on:
    the ``exp`` claim is issued + lifetime − 60 s, so the registry refuses the token when ``expires_in`` says it ends,
    not a minute later; ``exp`` is in whole seconds, so that is up to 1 s early, never late); ``omit_expires_in``
    (leave the field out: clients must assume 60 s);
    ``require_credentials`` (anonymous GETs get 401 instead of a token); ``oauth2`` (off: POST answers 404, as token
    servers without OAuth2 do); ``grant`` (a :data:`GrantPolicy`; default grants every requested action).
    Counters: ``requests`` (every :class:`TokenRequest`), ``get_count``, ``post_count``, ``tokens_issued``,
    ``failures``.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        service: str = "pymodelkit-test-registry",
        issuer: str = "pymodelkit-test-token-issuer",
    ) -> None:
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self._signer = _Signer.generate(issuer)
        self._lock = threading.Lock()
        self._refresh_tokens: dict[str, str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[TokenRequest] = []
        defaults = _Defaults()
        self.token_lifetime_s = defaults.token_lifetime_s
        self.require_credentials = defaults.require_credentials
        self.compensate_registry_leeway = defaults.compensate_registry_leeway
        self.omit_expires_in = defaults.omit_expires_in
        self.oauth2 = defaults.oauth2
        self.grant: GrantPolicy = defaults.grant

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> TokenServer:
        """Listen on a free loopback port and serve from a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("token server not started")
        return int(self._httpd.server_address[1])

    @property
    def realm(self) -> str:
        """The token endpoint, as the registry announces it in its ``Bearer realm=`` challenge."""
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def cert_pem(self) -> bytes:
        """The self-signed certificate of the signing key (the registry's ``rootcertbundle``)."""
        return self._signer.cert_pem

    def write_cert(self, path: Path) -> Path:
        path.write_bytes(self.cert_pem)
        return path

    # -- knobs and counters ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Put every knob back to its default and clear the counters (refresh tokens already issued stay valid)."""
        defaults = _Defaults()
        with self._lock:
            self.token_lifetime_s = defaults.token_lifetime_s
            self.require_credentials = defaults.require_credentials
            self.compensate_registry_leeway = defaults.compensate_registry_leeway
            self.omit_expires_in = defaults.omit_expires_in
            self.oauth2 = defaults.oauth2
            self.grant = defaults.grant
            self.requests = []

    def _count(self, predicate: Callable[[TokenRequest], bool]) -> int:
        with self._lock:
            return sum(1 for r in self.requests if predicate(r))

    @property
    def get_count(self) -> int:
        return self._count(lambda r: r.method == "GET")

    @property
    def post_count(self) -> int:
        return self._count(lambda r: r.method == "POST")

    @property
    def tokens_issued(self) -> int:
        return self._count(lambda r: r.status == 200)

    @property
    def failures(self) -> int:
        return self._count(lambda r: r.status != 200)

    # -- tokens ------------------------------------------------------------------------------------------------

    def issue_refresh_token(self, username: str) -> str:
        """A refresh token (Docker "identity token") for ``username``, as a login with ``access_type=offline``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = username
        return token

    def make_token(self, subject: str, scopes: tuple[str, ...], *, lifetime_s: int | None = None) -> str:
        """Sign a token for ``subject`` granting ``scopes`` through the ``grant`` policy."""
        lifetime = self.token_lifetime_s if lifetime_s is None else lifetime_s
        moment = time.time()
        now = int(moment)
        # whole seconds, rounded down: the registry refuses the token by ``lifetime`` s after issue (at most 1 s early)
        exp = math.floor(moment + lifetime) - (REGISTRY_LEEWAY_S if self.compensate_registry_leeway else 0)
        merged: dict[tuple[str, str], list[str]] = {}
        for scope in scopes:
            access = parse_scope(scope)
            actions = merged.setdefault((access.type, access.name), [])
            for action in self.grant(subject, access):
                if action not in actions:
                    actions.append(action)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": exp,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [{"type": t, "name": n, "actions": a} for (t, n), a in merged.items()],
        }
        return self._signer.sign(claims)

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _check_basic(self, header: str | None) -> tuple[bool, str]:
        """(credentials given, valid username or "")."""
        if not header:
            return False, ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return True, ""
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return True, ""
        username, _, password = decoded.partition(":")
        return True, username if self.users.get(username) == password and username else ""

    def handle_get(self, query: str, authorization: str | None) -> tuple[int, dict[str, object]]:
        params = parse_qs(query, keep_blank_values=True)
        scopes = tuple(s for value in params.get("scope", []) for s in value.split(" ") if s)
        client_id = params.get("client_id", [""])[0]
        given, user = self._check_basic(authorization)
        grant = "basic" if given else "anonymous"
        if params.get("service", [""])[0] != self.service:
            self._record(TokenRequest("GET", grant, user, scopes, 400, client_id))
            return 400, {"errors": [{"code": "INVALID_REQUEST", "message": "unknown service"}]}
        if (given and not user) or (not given and self.require_credentials):
            self._record(TokenRequest("GET", grant, "", scopes, 401, client_id))
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        try:
            body = self._token_body(user, scopes, access_token_only=False)
        except ValueError:
            self._record(TokenRequest("GET", grant, user, scopes, 400, client_id))
            return 400, {"errors": [{"code": "INVALID_REQUEST", "message": "malformed scope"}]}
        if params.get("offline_token", [""])[0] == "true" and user:
            body["refresh_token"] = self.issue_refresh_token(user)
        self._record(TokenRequest("GET", grant, user, scopes, 200, client_id))
        return 200, body

    def handle_post(self, form_body: str) -> tuple[int, dict[str, object]]:
        params = parse_qs(form_body, keep_blank_values=True)

        def one(name: str) -> str:
            return params.get(name, [""])[0]

        grant_type = one("grant_type")
        scopes = tuple(s for s in one("scope").split(" ") if s)
        client_id = one("client_id")
        if not self.oauth2:
            self._record(TokenRequest("POST", grant_type, "", scopes, 404, client_id))
            return 404, {"errors": [{"code": "NOT_FOUND", "message": "no OAuth2 here"}]}
        if one("service") != self.service or not client_id:
            self._record(TokenRequest("POST", grant_type, "", scopes, 400, client_id))
            return 400, {"error": "invalid_request"}
        refresh = ""
        if grant_type == "password":
            username = one("username")
            user = username if username and self.users.get(username) == one("password") else ""
            if user and one("access_type") == "offline":
                refresh = self.issue_refresh_token(user)
        elif grant_type == "refresh_token":
            refresh = one("refresh_token")
            with self._lock:
                user = self._refresh_tokens.get(refresh, "")
        else:
            self._record(TokenRequest("POST", grant_type, "", scopes, 400, client_id))
            return 400, {"error": "unsupported_grant_type"}
        if not user:
            self._record(TokenRequest("POST", grant_type, "", scopes, 401, client_id))
            return 401, {"error": "invalid_grant"}
        try:
            body = self._token_body(user, scopes, access_token_only=True)
        except ValueError:
            self._record(TokenRequest("POST", grant_type, user, scopes, 400, client_id))
            return 400, {"error": "invalid_scope"}
        body["scope"] = " ".join(scopes)
        if refresh:
            body["refresh_token"] = refresh
        self._record(TokenRequest("POST", grant_type, user, scopes, 200, client_id))
        return 200, body

    def _token_body(self, subject: str, scopes: tuple[str, ...], *, access_token_only: bool) -> dict[str, object]:
        issued = time.time()
        token = self.make_token(subject, scopes)
        body: dict[str, object] = {"access_token": token, "issued_at": _rfc3339(issued)}
        if not access_token_only:
            body["token"] = token
        if not self.omit_expires_in:
            body["expires_in"] = self.token_lifetime_s
        return body


def _make_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _reply(self, status: int, body: Mapping[str, object]) -> None:
            data = _json(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="pymodelkit-test-token-server"')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            self._reply(*server.handle_get(url.query, self.headers.get("Authorization")))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            if urlsplit(self.path).path != "/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
                return
            self._reply(*server.handle_post(raw.decode("utf-8", "replace")))

    return Handler

