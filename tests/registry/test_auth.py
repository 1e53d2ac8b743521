"""RegistryAuth against the real registry (Basic and token variants, the token server's counters), and the protocol
corners a registry:2 will not produce (``httpx.MockTransport``)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from pymodelkit.errors import AuthError, RegistryError
from pymodelkit.registry.auth import SCOPES_EXTENSION, RegistryAuth, clean_scopes
from pymodelkit.registry.credentials import Credential, ExplicitCredentials
from tests.support.registry import TestRegistry
from tests.support.tokenserver import ScopeAccess, TokenRequest, TokenServer


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _auth(reg: TestRegistry, credential: Credential | None = None, **options: object) -> RegistryAuth:
    source = ExplicitCredentials(credential) if credential is not None else None
    return RegistryAuth(reg.host, source, **options)  # type: ignore[arg-type]


def _user(reg: TestRegistry) -> Credential:
    assert reg.username and reg.password
    return Credential(username=reg.username, password=reg.password)


class Recorder:
    """Every (method, path, status) the client saw from the registry, through a response event hook."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def __call__(self, response: httpx.Response) -> None:
        if response.request.url.path.startswith("/v2/"):  # not the token server
            self.seen.append((response.request.method, response.request.url.path, response.status_code))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_client(recorder: Recorder) -> Iterator[Callable[[TestRegistry, RegistryAuth], httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(reg: TestRegistry, auth: RegistryAuth) -> httpx.Client:
        client = httpx.Client(
            auth=auth, base_url=reg.url, trust_env=False, timeout=30, event_hooks={"response": [recorder]}
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _get(client: httpx.Client, path: str, *scopes: str) -> httpx.Response:
    return client.get(path, extensions={SCOPES_EXTENSION: scopes})


def _token_server(reg: TestRegistry) -> TokenServer:
    assert reg.token_server is not None
    return reg.token_server


def _repo() -> str:
    return f"auth/t{secrets.token_hex(4)}"


# --- the token flow against the real registry ----------------------------------------------------------------------


def test_token_flow_one_token_per_scope_set_reused_across_requests(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client], recorder: Recorder
) -> None:
    server = _token_server(registry_token)
    client = make_client(registry_token, _auth(registry_token, _user(registry_token)))
    repo, other = _repo(), _repo()
    assert _get(client, "/v2/").status_code == 200
    for _ in range(3):
        response = _get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull")
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"  # authorized: the repository is just empty
    assert _get(client, f"/v2/{other}/tags/list", f"repository:{other}:pull").status_code == 404
    user = registry_token.username or ""
    assert server.requests == [
        TokenRequest("GET", "basic", user, (), 200),
        TokenRequest("GET", "basic", user, (f"repository:{repo}:pull",), 200),
        TokenRequest("GET", "basic", user, (f"repository:{other}:pull",), 200),
    ]
    # only the very first request met a 401: every later one carried its token up front
    assert [status for _, _, status in recorder.seen] == [401, 200, 404, 404, 404, 404]


def test_anonymous_token_when_there_are_no_credentials(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)
    server.require_credentials = False
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token))
    assert _get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull").status_code == 404
    assert server.requests == [TokenRequest("GET", "anonymous", "", (f"repository:{repo}:pull",), 200)]


def test_wrong_password_is_an_auth_error_with_the_token_servers_code(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-" + secrets.token_hex(4)
    client = make_client(registry_token, _auth(registry_token, Credential(username="modelkit", password=wrong)))
    with pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    error = info.value
    service = _token_server(registry_token).service
    assert str(error) == (
        f"{registry_token.host}: the token server refused access (no scope) (401 UNAUTHORIZED: authentication "
        f"required) [GET {_token_server(registry_token).realm}?service={service}]"
    )
    assert (error.status, error.code, error.oci_message) == (401, "UNAUTHORIZED", "authentication required")
    assert wrong not in str(error) and wrong not in repr(error.details) and wrong not in caplog.text


def test_token_renewed_before_it_expires(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client], recorder: Recorder
) -> None:
    server = _token_server(registry_token)
    server.token_lifetime_s = 30  # renewed 6 s (a fifth of it, at most 10 s) before the end
    clock = Clock()
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token), clock=clock))
    scope = f"repository:{repo}:pull"
    assert _get(client, f"/v2/{repo}/tags/list", scope).status_code == 404
    clock.now += 22.9  # issued_at has whole seconds: the token may be up to 1 s older than it seems
    assert _get(client, f"/v2/{repo}/tags/list", scope).status_code == 404
    assert len(server.requests) == 1
    clock.now += 1.2
    assert _get(client, f"/v2/{repo}/tags/list", scope).status_code == 404
    assert len(server.requests) == 2
    assert [status for _, _, status in recorder.seen] == [401, 404, 404, 404]  # renewed up front, no 401


def test_token_lifetime_is_60_s_when_the_server_does_not_say(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)
    server.omit_expires_in = True
    clock = Clock()
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token), clock=clock))
    scope = f"repository:{repo}:pull"
    _get(client, f"/v2/{repo}/tags/list", scope)
    clock.now += 48.9  # renewed 10 s before the end; issued_at has whole seconds
    _get(client, f"/v2/{repo}/tags/list", scope)
    assert server.tokens_issued == 1
    clock.now += 1.2
    _get(client, f"/v2/{repo}/tags/list", scope)
    assert server.tokens_issued == 2


def _start_upload(client: httpx.Client, repo: str) -> str:
    response = client.post(
        f"/v2/{repo}/blobs/uploads/",
        headers={"Content-Length": "0"},
        extensions={SCOPES_EXTENSION: (f"repository:{repo}:pull,push",)},
    )
    assert response.status_code == 202
    return response.headers["location"]


def _patch(client: httpx.Client, location: str, repo: str, content: object) -> httpx.Response:
    return client.patch(
        location,
        content=content,  # type: ignore[arg-type]
        headers={"Content-Type": "application/octet-stream"},
        extensions={SCOPES_EXTENSION: (f"repository:{repo}:pull,push",)},
    )


def test_expired_token_mid_upload_is_renewed_and_the_chunk_resent(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client], recorder: Recorder
) -> None:
    server = _token_server(registry_token)
    server.token_lifetime_s = 2  # the registry refuses it after 2 s; our frozen clock never notices
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token), clock=Clock()))
    location = _start_upload(client, repo)
    time.sleep(3.2)  # whole-second exp claims: refused 2 to 3 s after issue
    response = _patch(client, location, repo, b"hello")
    assert response.status_code == 202
    assert response.headers["range"] == "0-4"
    assert server.tokens_issued == 2
    assert [status for method, _, status in recorder.seen if method == "PATCH"] == [401, 202]


def test_streamed_chunk_refused_once_comes_back_and_its_resend_carries_the_new_token(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client], recorder: Recorder
) -> None:
    server = _token_server(registry_token)
    server.token_lifetime_s = 2
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token), clock=Clock()))
    location = _start_upload(client, repo)
    time.sleep(3.2)  # whole-second exp claims: refused 2 to 3 s after issue

    def chunk() -> Iterator[bytes]:
        yield b"hel"
        yield b"lo"

    first = _patch(client, location, repo, chunk())
    assert first.status_code == 401  # a generator cannot be sent twice: the 401 is the caller's to resend
    assert first.headers["www-authenticate"].endswith('error="invalid_token"')
    assert server.tokens_issued == 1
    second = _patch(client, location, repo, chunk())  # goes out with a new token fetched up front
    assert second.status_code == 202
    assert second.headers["range"] == "0-4"
    assert server.tokens_issued == 2
    assert [status for method, _, status in recorder.seen if method == "PATCH"] == [401, 202]


def test_a_streamed_chunk_refused_twice_with_fresh_tokens_is_an_auth_error(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)

    def pull_only(subject: str, access: ScopeAccess) -> tuple[str, ...]:
        return tuple(action for action in access.actions if action == "pull")

    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token)))
    assert _get(client, "/v2/").status_code == 200  # the registry is now known to want tokens
    server.grant = pull_only

    def chunk() -> Iterator[bytes]:
        yield b"data"

    url = f"/v2/{repo}/blobs/uploads/any"
    assert _patch(client, url, repo, chunk()).status_code == 401  # refused once: the caller may resend
    with pytest.raises(AuthError) as info:
        _patch(client, url, repo, chunk())  # refused again, with a token fetched for it: stop
    assert str(info.value) == (
        f"{registry_token.host} refused access to repository:{repo}:pull,push (401 UNAUTHORIZED: authentication "
        f"required) [PATCH {registry_token.url}{url}]"
    )
    assert server.tokens_issued == 3


def test_insufficient_scope_raises_auth_error_with_the_registrys_code(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)

    def pull_only(subject: str, access: ScopeAccess) -> tuple[str, ...]:
        return tuple(action for action in access.actions if action == "pull")

    server.grant = pull_only
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token)))
    with pytest.raises(AuthError) as info:
        _start_upload(client, repo)
    error = info.value
    assert str(error) == (
        f"{registry_token.host} refused access to repository:{repo}:pull,push (401 UNAUTHORIZED: authentication "
        f"required) [POST {registry_token.url}/v2/{repo}/blobs/uploads/]"
    )
    assert (error.status, error.code) == (401, "UNAUTHORIZED")
    assert server.tokens_issued == 1


def test_identity_token_uses_the_oauth2_refresh_grant(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)
    user = registry_token.username or ""
    refresh = server.issue_refresh_token(user)
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, Credential(identity_token=refresh)))
    assert _get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull").status_code == 404
    assert server.requests == [
        TokenRequest("POST", "refresh_token", user, (f"repository:{repo}:pull",), 200, "pymodelkit")
    ]


def test_password_grant_falls_back_to_get_without_oauth2(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)
    user = registry_token.username or ""
    repo, other = _repo(), _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token), oauth2_password_grant=True))
    assert _get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull").status_code == 404
    assert server.requests == [TokenRequest("POST", "password", user, (f"repository:{repo}:pull",), 200, "pymodelkit")]
    server.reset()
    server.oauth2 = False
    assert _get(client, f"/v2/{other}/tags/list", f"repository:{other}:pull").status_code == 404
    assert _get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull,push").status_code == 404
    assert server.requests == [
        TokenRequest("POST", "password", "", (f"repository:{other}:pull",), 404, "pymodelkit"),
        TokenRequest("GET", "basic", user, (f"repository:{other}:pull",), 200),
        TokenRequest("GET", "basic", user, (f"repository:{repo}:pull,push",), 200),  # no second POST
    ]


def test_concurrent_requests_for_one_scope_fetch_one_token(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    server = _token_server(registry_token)
    repo = _repo()
    client = make_client(registry_token, _auth(registry_token, _user(registry_token)))
    assert _get(client, "/v2/").status_code == 200
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        statuses.append(_get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull").status_code)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [404] * 8
    assert [r.scopes for r in server.requests] == [(), (f"repository:{repo}:pull",)]


def test_no_secret_in_logs_of_a_token_flow(
    registry_token: TestRegistry, make_client: Callable[..., httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    credential = _user(registry_token)
    client = make_client(registry_token, _auth(registry_token, credential))
    repo = _repo()
    _get(client, f"/v2/{repo}/tags/list", f"repository:{repo}:pull")
    basic = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
    assert caplog.text
    for secret in (credential.password, basic, "Bearer ey", "Basic "):
        assert secret not in caplog.text


# --- Basic auth against the real registry --------------------------------------------------------------------------


def test_basic_auth_answers_the_challenge_then_goes_up_front(
    registry_basic: TestRegistry, make_client: Callable[..., httpx.Client], recorder: Recorder
) -> None:
    client = make_client(registry_basic, _auth(registry_basic, _user(registry_basic)))
    assert _get(client, "/v2/").status_code == 200
    assert _get(client, "/v2/_catalog").status_code == 200
    assert recorder.seen == [("GET", "/v2/", 401), ("GET", "/v2/", 200), ("GET", "/v2/_catalog", 200)]


def test_basic_wrong_password_is_an_auth_error(
    registry_basic: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    client = make_client(registry_basic, _auth(registry_basic, Credential(username="modelkit", password="wrong-pw")))
    with pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value) == (
        f"{registry_basic.host} refused the username and password (401 UNAUTHORIZED: authentication required) "
        f"[GET {registry_basic.url}/v2/]"
    )
    assert info.value.code == "UNAUTHORIZED"
    assert "wrong-pw" not in repr(info.value.details)


def test_basic_without_credentials_leaves_the_401_to_the_caller(
    registry_basic: TestRegistry, make_client: Callable[..., httpx.Client]
) -> None:
    client = make_client(registry_basic, _auth(registry_basic))
    response = _get(client, "/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic realm=")


# --- protocol corners (MockTransport) ------------------------------------------------------------------------------

REGISTRY = "registry.test"
REALM = "https://auth.test/token"


def _bearer_401(scope: str = "") -> httpx.Response:
    challenge = f'Bearer realm="{REALM}",service="svc"' + (f',scope="{scope}"' if scope else "")
    return httpx.Response(
        401,
        headers={"WWW-Authenticate": challenge, "Content-Type": "application/json"},
        json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
    )


class FakeRegistry:
    """A registry wanting ``Bearer good-token`` and a token server answering with ``token_body``."""

    def __init__(self, token_body: dict[str, object] | None = None, *, realm: str = REALM) -> None:
        self.token_body = token_body if token_body is not None else {"token": "good-token"}
        self.token_status = 200
        self.realm = realm
        self.valid = {"good-token"}
        self.seen: list[httpx.Request] = []  # copies: the auth sets headers on the request it resends

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(
            httpx.Request(request.method, request.url, headers=dict(request.headers), content=request.read())
        )
        if request.url.path == "/token":
            return httpx.Response(self.token_status, json=self.token_body)
        if request.url.host != REGISTRY:
            return httpx.Response(200)
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.valid:
            return httpx.Response(200)
        challenge = f'Bearer realm="{self.realm}",service="svc"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})


def _mock_client(fake: FakeRegistry, credential: Credential | None = None, **options: object) -> httpx.Client:
    source = ExplicitCredentials(credential) if credential is not None else None
    auth = RegistryAuth(REGISTRY, source, **options)  # type: ignore[arg-type]
    return httpx.Client(auth=auth, transport=httpx.MockTransport(fake), base_url=f"https://{REGISTRY}")


@pytest.mark.parametrize(
    "body",
    [{"token": "good-token"}, {"access_token": "good-token"}, {"access_token": "good-token", "token": "stale-token"}],
)
def test_token_or_access_token_access_token_preferred(body: dict[str, object]) -> None:
    fake = FakeRegistry(body)
    with _mock_client(fake) as client:
        assert _get(client, "/v2/").status_code == 200
    assert fake.seen[-1].headers["authorization"] == "Bearer good-token"


def test_issued_at_in_the_past_shortens_the_token_lifetime() -> None:
    issued = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=55)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fake = FakeRegistry({"token": "good-token", "expires_in": 60, "issued_at": issued})
    clock = Clock()
    with _mock_client(fake, clock=clock) as client:
        _get(client, "/v2/x", "repository:x:pull")
        _get(client, "/v2/x", "repository:x:pull")  # 5 s left, less than the renewal margin: fetched again
    assert [r.url.path for r in fake.seen] == ["/v2/x", "/token", "/v2/x", "/token", "/v2/x"]


def test_token_request_parameters_and_basic_credentials_go_to_the_realm() -> None:
    fake = FakeRegistry()
    with _mock_client(fake, Credential(username="u", password="p")) as client:
        _get(client, "/v2/x/blobs/uploads/", "repository:x:push", "repository:y:pull", "repository:x:pull")
    token_request = fake.seen[1]
    assert str(token_request.url) == (
        "https://auth.test/token?service=svc&scope=repository%3Ax%3Apull%2Cpush&scope=repository%3Ay%3Apull"
    )
    assert token_request.headers["authorization"] == "Basic dTpw"
    assert "authorization" not in fake.seen[0].headers


def test_credentials_never_go_to_another_host() -> None:
    fake = FakeRegistry()
    with _mock_client(fake, Credential(username="u", password="p")) as client:
        _get(client, "/v2/")
        client.get("https://storage.test/blob", extensions={SCOPES_EXTENSION: ("repository:x:pull",)})
        client.get(f"https://{REGISTRY}:8443/v2/", extensions={SCOPES_EXTENSION: ()})
    assert [(r.url.host, "authorization" in r.headers) for r in fake.seen[-2:]] == [
        ("storage.test", False),
        (REGISTRY, False),  # another port is another registry
    ]


def test_plain_http_realm_on_another_host_gets_no_credentials() -> None:
    fake = FakeRegistry(realm="http://auth.test/token")
    with _mock_client(fake, Credential(username="u", password="p")) as client, pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value) == (
        "registry.test: refusing to send credentials to the plain-http token realm http://auth.test/token"
    )
    assert [r.url.path for r in fake.seen] == ["/v2/"]


def test_registry_token_is_sent_as_is_and_its_refusal_is_an_auth_error() -> None:
    fake = FakeRegistry()
    with _mock_client(fake, Credential(registry_token="good-token")) as client:
        assert _get(client, "/v2/").status_code == 200
    assert [r.headers.get("authorization") for r in fake.seen] == ["Bearer good-token"]
    with _mock_client(fake, Credential(registry_token="revoked")) as client, pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value) == (
        "registry.test refused the registry token from the credential store (401) [GET https://registry.test/v2/]"
    )


def test_token_server_failure_is_temporary_registry_error() -> None:
    fake = FakeRegistry({"errors": [{"code": "UNAVAILABLE", "message": "try later"}]})
    fake.token_status = 503
    with _mock_client(fake) as client, pytest.raises(RegistryError) as info:
        _get(client, "/v2/x", "repository:x:pull")
    assert not isinstance(info.value, AuthError)
    assert info.value.is_temporary
    assert str(info.value) == (
        "registry.test: the token server refused repository:x:pull (503 UNAVAILABLE: try later) "
        "[GET https://auth.test/token?service=svc&scope=repository%3Ax%3Apull]"
    )


@pytest.mark.parametrize("body", [{"expires_in": 60}, {"token": ""}, {"token": 42}])
def test_token_answer_without_a_token_is_an_auth_error(body: dict[str, object]) -> None:
    with _mock_client(FakeRegistry(body)) as client, pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value) == (
        "registry.test: the token server's answer has no token [GET https://auth.test/token?service=svc]"
    )


def test_oauth2_error_body_names_the_oauth_error() -> None:
    fake = FakeRegistry({"error": "invalid_grant", "error_description": "refresh token expired"})
    fake.token_status = 400
    with _mock_client(fake, Credential(identity_token="old-refresh")) as client, pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value) == (
        "registry.test: the token server refused access (no scope) (400 invalid_grant: refresh token expired) "
        "[POST https://auth.test/token]"
    )
    form = fake.seen[1].content.decode()
    assert form == "service=svc&client_id=pymodelkit&scope=&grant_type=refresh_token&refresh_token=old-refresh"
    assert "old-refresh" not in str(info.value)


def test_a_request_with_its_own_authorization_is_left_alone() -> None:
    fake = FakeRegistry()
    with _mock_client(fake, Credential(username="u", password="p")) as client:
        response = client.get("/v2/", headers={"Authorization": "Bearer mine"})
    assert response.status_code == 401
    assert [r.headers["authorization"] for r in fake.seen] == ["Bearer mine"]


def test_unusable_realm_is_an_auth_error() -> None:
    with _mock_client(FakeRegistry(realm="ftp://auth.test/token")) as client, pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value) == "registry.test announced an unusable token realm 'ftp://auth.test/token'"


def test_auth_repr_and_token_repr_show_no_token() -> None:
    fake = FakeRegistry()
    auth = RegistryAuth(REGISTRY, None)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(fake), base_url=f"https://{REGISTRY}") as client:
        _get(client, "/v2/x", "repository:x:pull")
    assert repr(auth) == "RegistryAuth('registry.test', scheme='bearer', tokens=1)"
    assert "good-token" not in repr(auth._tokens)


def test_clean_scopes_merges_and_sorts() -> None:
    assert clean_scopes(
        [
            "repository:b:push",
            "repository:a:pull",
            "repository:b:pull",
            "registry:catalog:*",
            "repository:localhost:5000/c:pull",
            "repository:d:pull,*",
            "junk",
        ]
    ) == (
        "registry:catalog:*",
        "repository:a:pull",
        "repository:b:pull,push",
        "repository:d:*",
        "repository:localhost:5000/c:pull",
        "junk",
    )


def test_oversized_token_answer_is_refused() -> None:
    fake = FakeRegistry({"token": "good-token", "padding": "x" * (1 << 20)})
    with _mock_client(fake) as client, pytest.raises(AuthError) as info:
        _get(client, "/v2/")
    assert str(info.value).startswith("the token server https://auth.test/token?service=svc sent a 10")
    assert str(info.value).endswith("-byte answer")
