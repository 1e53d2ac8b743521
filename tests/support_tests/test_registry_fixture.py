"""The registry fixtures give a real distribution registry in each variant (checked with plain httpx)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.rawhttp import bearer_token, digest_of, http_client, push_blob, with_digest
from tests.support.registry import (
    HOW_TO_GET_A_REGISTRY,
    RegistryUnavailable,
    TestRegistry,
    parse_registry_address,
    registry_server,
)
from tests.support.tokenserver import ScopeAccess, parse_scope

UNAUTHORIZED_BODY = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}


def _jwt_part(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _token(reg: TestRegistry, *scopes: str) -> str:
    assert reg.token_server is not None and reg.username and reg.password
    with http_client() as client:
        return bearer_token(client, reg.token_server.realm, reg.token_server.service, scopes,
                            (reg.username, reg.password))


def test_anonymous_registry_answers_v2(registry: TestRegistry, request: pytest.FixtureRequest) -> None:
    with http_client() as client:
        response = client.get(f"{registry.url}/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert response.json() == {}
    assert registry.url == f"http://{registry.host}"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", registry.host)
    assert (registry.username, registry.password, registry.auth) == (None, None, "none")
    assert request.node.get_closest_marker("integration") is not None


def test_anonymous_registry_stores_a_blob(registry: TestRegistry) -> None:
    data = b"anonymous blob\n"
    with http_client() as client:
        digest = push_blob(client, registry.url, "fixture/anon", data)
        fetched = client.get(f"{registry.url}/v2/fixture/anon/blobs/{digest}")
    assert digest == "sha256:ac3ce0b563ca034fc1da19ee703b2dcdd407d377bfe48b8f5a1f920e25bd7f9f"
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["Docker-Content-Digest"] == digest


def test_basic_registry_challenges_and_accepts_its_user(registry_basic: TestRegistry) -> None:
    assert registry_basic.username and registry_basic.password
    with http_client() as client:
        anonymous = client.get(f"{registry_basic.url}/v2/")
        good = client.get(f"{registry_basic.url}/v2/", auth=(registry_basic.username, registry_basic.password))
        wrong = client.get(f"{registry_basic.url}/v2/", auth=(registry_basic.username, "not-the-password"))
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="local-registry"'
    assert anonymous.json() == UNAUTHORIZED_BODY
    assert good.status_code == 200
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="local-registry"'


def test_basic_registry_stores_a_blob(registry_basic: TestRegistry) -> None:
    assert registry_basic.username and registry_basic.password
    auth = "Basic " + base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    with http_client() as client:
        digest = push_blob(client, registry_basic.url, "fixture/basic", b"basic", headers={"Authorization": auth})
        fetched = client.get(f"{registry_basic.url}/v2/fixture/basic/blobs/{digest}", headers={"Authorization": auth})
    assert fetched.content == b"basic"


def test_token_registry_challenges_with_its_realm(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None
    with http_client() as client:
        ping = client.get(f"{registry_token.url}/v2/")
        post = client.post(f"{registry_token.url}/v2/fixture/tok/blobs/uploads/")
        head = client.head(f"{registry_token.url}/v2/fixture/tok/blobs/{digest_of(b'x')}")
        basic = client.get(f"{registry_token.url}/v2/", auth=(registry_token.username or "", "anything"))
    assert ts.realm == f"http://127.0.0.1:{ts.port}/token"
    assert ping.status_code == 401
    assert ping.headers["WWW-Authenticate"] == f'Bearer realm="{ts.realm}",service="pymodelkit-test-registry"'
    assert post.status_code == 401
    assert re.fullmatch(
        rf'Bearer realm="{re.escape(ts.realm)}",service="pymodelkit-test-registry",'
        r'scope="repository:fixture/tok:(pull,push|push,pull)"',
        post.headers["WWW-Authenticate"],
    )
    assert head.headers["WWW-Authenticate"].endswith(',scope="repository:fixture/tok:pull"')
    assert basic.status_code == 401  # Basic credentials just get the Bearer challenge again
    assert basic.headers["WWW-Authenticate"].startswith("Bearer ")
    assert ts.get_count == 0


def test_token_push_and_get_blob(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None
    token = _token(registry_token, "repository:fixture/tokpush:pull,push")
    header = _jwt_part(token, 0)
    claims = _jwt_part(token, 1)
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and isinstance(header["x5c"], list)
    assert claims["iss"] == ts.issuer and claims["aud"] == "pymodelkit-test-registry"
    assert claims["sub"] == registry_token.username
    assert claims["access"] == [{"type": "repository", "name": "fixture/tokpush", "actions": ["pull", "push"]}]
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int) and claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 300 - 60  # the registry adds 60 s of leeway back
    data = b"token-auth blob " * 64
    auth = {"Authorization": f"Bearer {token}"}
    with http_client() as client:
        digest = push_blob(client, registry_token.url, "fixture/tokpush", data, headers=auth)
        fetched = client.get(f"{registry_token.url}/v2/fixture/tokpush/blobs/{digest}", headers=auth)
        other_repo = client.get(f"{registry_token.url}/v2/fixture/elsewhere/blobs/{digest}", headers=auth)
    assert fetched.status_code == 200 and fetched.content == data
    assert other_repo.status_code == 401
    assert 'error="insufficient_scope"' in other_repo.headers["WWW-Authenticate"]
    assert (ts.get_count, ts.post_count, ts.tokens_issued, ts.failures) == (1, 0, 1, 0)
    assert ts.requests[0].scopes == ("repository:fixture/tokpush:pull,push",)
    assert ts.requests[0].grant == "basic"


def test_token_get_response_fields(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None and registry_token.username and registry_token.password
    params = httpx.QueryParams([
        ("service", ts.service), ("scope", "repository:a/b:pull"), ("scope", "repository:c/d:pull,push"),
        ("offline_token", "true"), ("client_id", "fixture-test"),
    ])
    with http_client() as client:
        ok = client.get(ts.realm, params=params, auth=(registry_token.username, registry_token.password))
        wrong = client.get(ts.realm, params=params, auth=(registry_token.username, "wrong"))
        anonymous = client.get(ts.realm, params=params)
        ts.require_credentials = False
        anonymous_ok = client.get(ts.realm, params=params)
    body = ok.json()
    assert ok.status_code == 200
    assert set(body) == {"token", "access_token", "expires_in", "issued_at", "refresh_token"}
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["issued_at"])
    assert _jwt_part(body["token"], 1)["access"] == [
        {"type": "repository", "name": "a/b", "actions": ["pull"]},
        {"type": "repository", "name": "c/d", "actions": ["pull", "push"]},
    ]
    assert wrong.status_code == 401 and anonymous.status_code == 401
    assert anonymous_ok.status_code == 200 and "refresh_token" not in anonymous_ok.json()
    assert _jwt_part(anonymous_ok.json()["token"], 1)["sub"] == ""
    assert [(r.grant, r.status, r.client_id) for r in ts.requests] == [
        ("basic", 200, "fixture-test"), ("basic", 401, "fixture-test"), ("anonymous", 401, "fixture-test"),
        ("anonymous", 200, "fixture-test"),
    ]


def test_token_oauth2_post_password_then_refresh(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None and registry_token.username and registry_token.password
    form = {"grant_type": "password", "username": registry_token.username, "password": registry_token.password,
            "service": ts.service, "client_id": "fixture-test", "access_type": "offline",
            "scope": "repository:fixture/oauth:pull,push registry:catalog:*"}
    with http_client() as client:
        first = client.post(ts.realm, data=form)
        refresh = first.json()["refresh_token"]
        second = client.post(ts.realm, data={"grant_type": "refresh_token", "refresh_token": refresh,
                                             "service": ts.service, "client_id": "fixture-test",
                                             "scope": "repository:fixture/oauth:pull"})
        bad_refresh = client.post(ts.realm, data={"grant_type": "refresh_token", "refresh_token": "nope",
                                                  "service": ts.service, "client_id": "fixture-test"})
        bad_password = client.post(ts.realm, data={**form, "password": "wrong"})
        catalog = client.get(f"{registry_token.url}/v2/_catalog",
                             headers={"Authorization": f"Bearer {first.json()['access_token']}"})
        ts.oauth2 = False
        no_oauth = client.post(ts.realm, data=form)
    assert first.status_code == 200
    assert set(first.json()) == {"access_token", "scope", "expires_in", "issued_at", "refresh_token"}
    assert first.json()["scope"] == "repository:fixture/oauth:pull,push registry:catalog:*"
    assert second.status_code == 200 and second.json()["refresh_token"] == refresh
    assert _jwt_part(second.json()["access_token"], 1)["sub"] == registry_token.username
    assert (bad_refresh.status_code, bad_password.status_code, no_oauth.status_code) == (401, 401, 404)
    assert catalog.status_code == 200
    assert ts.post_count == 5 and ts.get_count == 0
    assert ts.issue_refresh_token("someone") != ts.issue_refresh_token("someone")


def test_token_grant_policy_gives_insufficient_scope(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None

    def pull_only(subject: str, access: ScopeAccess) -> tuple[str, ...]:
        return tuple(a for a in access.actions if a == "pull")

    ts.grant = pull_only
    token = _token(registry_token, "repository:fixture/ro:pull,push")
    with http_client() as client:
        post = client.post(f"{registry_token.url}/v2/fixture/ro/blobs/uploads/",
                           headers={"Authorization": f"Bearer {token}"})
    assert _jwt_part(token, 1)["access"] == [{"type": "repository", "name": "fixture/ro", "actions": ["pull"]}]
    assert post.status_code == 401
    assert 'error="insufficient_scope"' in post.headers["WWW-Authenticate"]


def test_token_lifetime_knob_expires_tokens_at_the_registry(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None
    ts.token_lifetime_s = 2
    issued = time.time()
    token = _token(registry_token, "repository:fixture/exp:pull")
    url = f"{registry_token.url}/v2/fixture/exp/tags/list"
    with http_client() as client:
        first = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert first.status_code == 404  # authorised: the repository just does not exist
        deadline = time.monotonic() + 5
        while True:
            later = client.get(url, headers={"Authorization": f"Bearer {token}"})
            if later.status_code == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    refused_after = time.time() - issued
    assert later.status_code == 401
    assert 'error="invalid_token"' in later.headers["WWW-Authenticate"]
    assert 1.0 <= refused_after < 2.6  # by the lifetime, at most 1 s early (exp is whole seconds)


def test_token_server_knobs_reset_between_tests(registry_token: TestRegistry) -> None:
    ts = registry_token.token_server
    assert ts is not None
    assert (ts.token_lifetime_s, ts.require_credentials, ts.oauth2, ts.omit_expires_in) == (300, True, True, False)
    assert ts.requests == []
    ts.omit_expires_in = True
    with http_client() as client:
        token_body = client.get(ts.realm, params={"service": ts.service, "scope": "repository:x:pull"},
                                auth=(registry_token.username or "", registry_token.password or "")).json()
    assert "expires_in" not in token_body


def test_parse_scope() -> None:
    assert parse_scope("repository:team/model:pull,push") == ScopeAccess("repository", "team/model", ("pull", "push"))
    assert parse_scope("repository:127.0.0.1:5000/team/model:pull") == ScopeAccess(
        "repository", "127.0.0.1:5000/team/model", ("pull",)
    )
    assert parse_scope("registry:catalog:*") == ScopeAccess("registry", "catalog", ("*",))
    assert parse_scope("repository(plugin):x:pull") == ScopeAccess("repository", "x", ("pull",))
    with pytest.raises(ValueError, match="malformed scope 'pull'"):
        parse_scope("pull")


def test_deletes_only_where_enabled(registry: TestRegistry, registry_deletes: TestRegistry) -> None:
    with http_client() as client:
        refused_digest = push_blob(client, registry.url, "fixture/nodelete", b"keep me")
        refused = client.delete(f"{registry.url}/v2/fixture/nodelete/blobs/{refused_digest}")
        digest = push_blob(client, registry_deletes.url, "fixture/delete", b"delete me")
        deleted = client.delete(f"{registry_deletes.url}/v2/fixture/delete/blobs/{digest}")
        gone = client.head(f"{registry_deletes.url}/v2/fixture/delete/blobs/{digest}")
    assert refused.status_code == 405
    assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert (deleted.status_code, gone.status_code) == (202, 404)
    assert registry_deletes.delete_enabled and not registry.delete_enabled


def test_restart_keeps_blobs_port_and_upload_sessions(fresh_registry: TestRegistry) -> None:
    assert fresh_registry.restartable and fresh_registry.storage_dir is not None
    url = fresh_registry.url
    with http_client() as client:
        digest = push_blob(client, url, "fixture/restart", b"stored before the restart")
        started = client.post(f"{url}/v2/fixture/restart/blobs/uploads/")
        patched = client.patch(started.headers["Location"], content=b"first half,",
                               headers={"Content-Type": "application/octet-stream"})
    assert patched.status_code == 202 and patched.headers["Range"] == "0-10"
    fresh_registry.restart()
    assert fresh_registry.url == url
    whole = b"first half,second half"
    with http_client() as client:
        kept = client.get(f"{url}/v2/fixture/restart/blobs/{digest}")
        status = client.get(patched.headers["Location"])
        finished = client.put(with_digest(status.headers["Location"], digest_of(whole)), content=b"second half",
                              headers={"Content-Type": "application/octet-stream"})
        fetched = client.get(f"{url}/v2/fixture/restart/blobs/{digest_of(whole)}")
    assert kept.content == b"stored before the restart"
    assert (status.status_code, status.headers["Range"]) == (204, "0-10")
    assert finished.status_code == 201 and fetched.content == whole
    hex_digest = digest.split(":", 1)[1]
    blob_file = fresh_registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
    assert blob_file.read_bytes() == b"stored before the restart"


def test_make_registry_variants_are_private(make_registry: Callable[..., TestRegistry]) -> None:
    token = make_registry(auth="token", delete_enabled=True)
    basic = make_registry(auth="basic")
    assert token.token_server is not None and token.delete_enabled and token.restartable
    assert basic.token_server is None and basic.username == token.username
    token.restart()
    with http_client() as client:
        assert client.get(f"{token.url}/v2/").status_code == 401
        assert client.get(f"{basic.url}/v2/", auth=(basic.username or "", basic.password or "")).status_code == 200
    assert token.host != basic.host


def test_external_registry_address_is_used_as_given(fresh_registry: TestRegistry, tmp_path: Path) -> None:
    for value in (fresh_registry.host, f"http://{fresh_registry.host}/"):
        with registry_server(tmp_path / "unused", external=value) as external:
            assert (external.host, external.url, external.backend) == (fresh_registry.host, fresh_registry.url,
                                                                         "external")
            assert external.storage_dir is None and not external.restartable
            with pytest.raises(RuntimeError, match="restart\\(\\) needs the docker-registry binary backend"):
                external.restart()
    assert parse_registry_address("https://registry.example:5443") == ("registry.example:5443",
                                                                       "https://registry.example:5443")
    with pytest.raises(RegistryUnavailable, match="is not a host:port"):
        parse_registry_address("http://host:5000/path")


def test_unreachable_external_registry_says_so(tmp_path: Path) -> None:
    with pytest.raises(RegistryUnavailable, match=r"PYMODELKIT_TEST_REGISTRY='127\.0\.0\.1:9'.*not ready"), \
            registry_server(tmp_path, external="127.0.0.1:9", external_timeout_s=0.3):
        pass


def test_no_registry_at_all_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(RegistryUnavailable) as caught, \
            registry_server(tmp_path, restartable=True, binary=tmp_path / "no-docker-registry"):
        pass
    assert str(caught.value).endswith(HOW_TO_GET_A_REGISTRY)
    assert "apt-get install docker-registry" in str(caught.value)
    assert "PYMODELKIT_TEST_REGISTRY" in str(caught.value)


def test_registry_log_is_quiet(fresh_registry: TestRegistry) -> None:
    assert fresh_registry.storage_dir is not None
    with http_client() as client:
        for _ in range(3):
            assert client.get(f"{fresh_registry.url}/v2/").status_code == 200
    log = (fresh_registry.storage_dir.parent / "registry.log").read_text()
    assert "GET /v2/" not in log  # access log off, level warn
    config = (fresh_registry.storage_dir.parent / "config.yml").read_text()
    assert "secret: pymodelkit-test-registry-http-secret" in config
    assert httpx.URL(fresh_registry.url).host == "127.0.0.1"
