"""RegistryClient: scheme choice, headers and scopes, manifests (Accept list, digests, size cap), blobs, tags,
redirects without credentials to other hosts. Real registry where it can show the behaviour; ``MockTransport`` only
for answers a real registry:2 does not give (oversized or mis-digested manifests, redirects, TLS hosts)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest

from pymodelkit.errors import DigestMismatchError, RegistryError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import parse_single_reference
from pymodelkit.registry.client import MANIFEST_ACCEPT, USER_AGENT, RegistryClient, is_loopback
from pymodelkit.registry.copy import RegistryEndpoint
from pymodelkit.registry.credentials import Credential, ExplicitCredentials
from pymodelkit.registry.remote import fetch_small_blob
from pymodelkit.registry.retry import NO_RETRY
from pymodelkit.registry.upload import FileSpan, put_blob, start_upload
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

CONFIG = b'{"manifestVersion":"1.0.0"}'
CONFIG_DIGEST = "sha256:" + Digest.from_bytes(CONFIG).hex


def _manifest(config_digest: str = CONFIG_DIGEST, size: int = len(CONFIG)) -> bytes:
    return (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"artifactType":"application/vnd.kitops.modelkit.manifest.v1+json","config":{"mediaType":'
        b'"application/vnd.kitops.modelkit.config.v1+json","digest":"' + config_digest.encode() + b'","size":'
        + str(size).encode() + b'},"layers":[]}'
    )


@pytest.fixture
def client(registry: TestRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.host) as c:
        yield c


@pytest.fixture
def repo(client: RegistryClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A repository holding the config blob."""
    name = f"client/t{secrets.token_hex(4)}"
    path = tmp_path_factory.mktemp("cfg") / "config"
    path.write_bytes(CONFIG)
    with path.open("rb") as handle:
        put_blob(client, start_upload(client, name), Digest.parse(CONFIG_DIGEST),
                 FileSpan(handle.fileno(), 0, len(CONFIG)))
    return name


def test_loopback_registry_falls_back_to_plain_http(client: RegistryClient, registry: TestRegistry) -> None:
    assert client.base_url == registry.url
    client.ping()


def test_https_only_against_a_plain_http_registry_is_a_clean_error(registry: TestRegistry) -> None:
    with RegistryClient(registry.host, plain_http=False) as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert client.base_url == f"https://{registry.host}"
    assert str(info.value).startswith(f"cannot reach registry {registry.host}: ")
    assert (info.value.status, info.value.is_temporary) == (None, False)


def test_non_loopback_hosts_use_https_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RegistryClient("registry.example.com").base_url == "https://registry.example.com"
    assert RegistryClient("registry.example.com", plain_http=True).base_url == "http://registry.example.com"
    assert RegistryClient("docker.io").base_url == "https://registry-1.docker.io"
    monkeypatch.setenv("PYMODELKIT_PLAIN_HTTP", "1")
    assert RegistryClient("registry.example.com:5000").base_url == "http://registry.example.com:5000"
    assert RegistryClient("registry.example.com", plain_http=False).base_url == "https://registry.example.com"


@pytest.mark.parametrize(
    ("registry", "expected"),
    [("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.8.9.10", True),
     ("[::1]:5000", True), ("::1", True), ("10.0.0.1:5000", False), ("registry.example.com", False),
     ("localhost.example.com:5000", False)],
)
def test_is_loopback(registry: str, expected: bool) -> None:
    assert is_loopback(registry) is expected


def test_manifest_round_trip_by_tag_and_digest(client: RegistryClient, repo: str) -> None:
    data = _manifest()
    digest = client.put_manifest(repo, "v1", data, MEDIA_TYPE_MANIFEST)
    assert digest == Digest.from_bytes(data)
    by_tag = client.fetch_manifest(repo, "v1")
    assert (by_tag.data, by_tag.media_type, by_tag.digest) == (data, MEDIA_TYPE_MANIFEST, digest)
    assert client.fetch_manifest(repo, str(digest)).data == data


def test_unknown_tag_is_a_404_naming_the_tag(client: RegistryClient, repo: str, registry: TestRegistry) -> None:
    with pytest.raises(RegistryError) as info:
        client.fetch_manifest(repo, "nope")
    assert str(info.value) == (
        f"manifest {registry.host}/{repo}:nope not found (registry answered 404 MANIFEST_UNKNOWN: manifest unknown) "
        f"[GET {registry.url}/v2/{repo}/manifests/nope]"
    )
    assert (info.value.status, info.value.code) == (404, "MANIFEST_UNKNOWN")


def test_manifest_with_a_missing_blob_is_refused(client: RegistryClient, repo: str) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(RegistryError) as info:
        client.put_manifest(repo, "broken", _manifest(missing, 7), MEDIA_TYPE_MANIFEST)
    assert (info.value.status, info.value.code) == (400, "MANIFEST_BLOB_UNKNOWN")


def test_head_blob_tells_present_from_missing(client: RegistryClient, repo: str) -> None:
    assert client.head_blob(repo, Digest.parse(CONFIG_DIGEST)) == len(CONFIG)
    assert client.head_blob(repo, Digest.from_bytes(b"absent")) is None


def test_has_blob_wants_the_digest_with_its_size(client: RegistryClient, repo: str) -> None:
    assert client.has_blob(repo, Digest.parse(CONFIG_DIGEST), len(CONFIG)) is True
    assert client.has_blob(repo, Digest.parse(CONFIG_DIGEST), len(CONFIG) + 1) is False
    assert client.has_blob(repo, Digest.from_bytes(b"absent"), 6) is False


def test_list_tags(client: RegistryClient, repo: str) -> None:
    for tag in ("b", "a", "v1.0"):
        client.put_manifest(repo, tag, _manifest(), MEDIA_TYPE_MANIFEST)
    assert sorted(client.list_tags(repo)) == ["a", "b", "v1.0"]


def test_open_blob_with_a_range(client: RegistryClient, repo: str) -> None:
    response = client.open_blob(repo, Digest.parse(CONFIG_DIGEST), offset=5)
    try:
        assert response.status_code == 206
        assert response.read() == CONFIG[5:]
    finally:
        response.close()


# ----- answers a real registry:2 does not give ----------------------------------------------------------------


def _mock(handler: Callable[[httpx.Request], httpx.Response], **options: object) -> RegistryClient:
    return RegistryClient("registry.example.com", transport=httpx.MockTransport(handler), retry=NO_RETRY,
                          **options)  # type: ignore[arg-type]


def test_every_request_has_the_user_agent_and_its_scopes() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Type": MEDIA_TYPE_MANIFEST}, content=_manifest())

    with _mock(handler) as client:
        client.fetch_manifest("team/model", "v1")
        client.head_blob("team/model", Digest.parse(CONFIG_DIGEST))
    assert [r.headers["user-agent"] for r in seen] == [USER_AGENT, USER_AGENT]
    assert USER_AGENT == "pymodelkit/0.1.0"
    assert [r.extensions["pymodelkit.scopes"] for r in seen] == [("repository:team/model:pull",)] * 2
    assert seen[0].headers["accept"] == MANIFEST_ACCEPT
    assert MANIFEST_ACCEPT.split(", ") == [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]


def test_manifests_over_4_mib_are_refused() -> None:
    big = b"{" + b" " * (4 << 20) + b"}"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": MEDIA_TYPE_MANIFEST}, content=big)

    with _mock(handler) as client, pytest.raises(RegistryError) as info:
        client.fetch_manifest("team/model", "v1")
    assert str(info.value) == (
        "manifest registry.example.com/team/model:v1 is 4194306 bytes: refusing manifests over the 4 MiB limit"
    )


def test_manifests_over_4_mib_without_content_length_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunks = (b" " * (1 << 20) for _ in range(5))
        return httpx.Response(200, headers={"Content-Type": MEDIA_TYPE_MANIFEST}, content=chunks)

    with _mock(handler) as client, pytest.raises(RegistryError, match="is larger than that: refusing manifests"):
        client.fetch_manifest("team/model", "v1")


def test_a_manifest_not_matching_its_digest_header_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_manifest(), headers={
            "Content-Type": MEDIA_TYPE_MANIFEST, "Docker-Content-Digest": "sha256:" + "1" * 64})

    with _mock(handler) as client, pytest.raises(DigestMismatchError) as info:
        client.fetch_manifest("team/model", "v1")
    assert info.value.expected == "sha256:" + "1" * 64
    assert info.value.actual == str(Digest.from_bytes(_manifest()))


def test_a_manifest_not_matching_the_requested_digest_is_refused() -> None:
    wanted = "sha256:" + "2" * 64

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_manifest(), headers={"Content-Type": MEDIA_TYPE_MANIFEST})

    with _mock(handler) as client, pytest.raises(DigestMismatchError, match="not the requested digest"):
        client.fetch_manifest("team/model", wanted)


def test_blob_redirects_never_carry_credentials_to_another_host() -> None:
    hops: list[tuple[str, str, bool]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append((request.url.host, request.url.path, "authorization" in request.headers))
        if request.url.host == "cdn.example.net":
            return httpx.Response(200, content=CONFIG)
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.url.path.endswith("/moved"):
            return httpx.Response(307, headers={"Location": "https://cdn.example.net/blob?X-Amz-Signature=s"})
        return httpx.Response(307, headers={"Location": "/v2/team/model/moved"})

    credentials = ExplicitCredentials(Credential(username="user", password="pw"))
    with _mock(handler, credentials=credentials) as client:
        response = client.open_blob("team/model", Digest.parse(CONFIG_DIGEST))
        assert response.read() == CONFIG
        response.close()
    assert hops == [
        ("registry.example.com", f"/v2/team/model/blobs/{CONFIG_DIGEST}", False),
        ("registry.example.com", f"/v2/team/model/blobs/{CONFIG_DIGEST}", True),
        ("registry.example.com", "/v2/team/model/moved", True),
        ("cdn.example.net", "/blob", False),
    ]


def test_blob_head_follows_redirects() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example.net":
            return httpx.Response(200, headers={"Content-Length": "27"})
        return httpx.Response(307, headers={"Location": "https://cdn.example.net/blob"})

    with _mock(handler) as client:
        assert client.head_blob("team/model", Digest.parse(CONFIG_DIGEST)) == 27


def test_every_blob_get_asks_for_the_bytes_unencoded() -> None:
    """A proxy that gzipped a blob body would break its size and digest check: each blob GET says identity."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        ranged = "range" in request.headers
        return httpx.Response(206 if ranged else 200, content=CONFIG[5:] if ranged else CONFIG,
                              headers={"Content-Range": f"bytes 5-{len(CONFIG) - 1}/{len(CONFIG)}"} if ranged else {})

    blob = Descriptor("application/vnd.kitops.modelkit.config.v1+json", Digest.parse(CONFIG_DIGEST), len(CONFIG))
    with _mock(handler) as client:
        assert fetch_small_blob(client, "team/model", blob) == CONFIG
        client.open_blob("team/model", blob.digest, offset=5).close()
        endpoint = RegistryEndpoint(client, parse_single_reference("registry.example.com/team/model"))
        assert b"".join(endpoint.open_blob(blob, 5)) == CONFIG[5:]
    assert [r.headers.get("range") for r in seen] == [None, "bytes=5-", f"bytes=5-{len(CONFIG) - 1}"]
    assert [r.headers["accept-encoding"] for r in seen] == ["identity"] * 3


def test_redirect_loops_end() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/v2/again"})

    with _mock(handler) as client, pytest.raises(RegistryError, match="more than 10 redirects"):
        client.head_blob("team/model", Digest.parse(CONFIG_DIGEST))


def test_unknown_host_is_a_clean_error() -> None:
    with RegistryClient("nonexistent.invalid:5000") as client, pytest.raises(RegistryError) as info:
        client.ping()
    assert str(info.value).startswith("cannot reach registry nonexistent.invalid:5000: ")
    assert (info.value.status, info.value.is_temporary) == (None, False)


def test_proxies_come_from_the_environment(
    registry: TestRegistry, monkeypatch: pytest.MonkeyPatch, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry.url)  # forwards every request, absolute-form included, to the registry
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    with RegistryClient("registry.example.com", plain_http=True) as client:
        client.ping()
    assert [(r.method, r.target) for r in proxy.requests] == [("GET", "http://registry.example.com/v2/")]
    with RegistryClient("direct.invalid", plain_http=True) as client, pytest.raises(RegistryError,
                                                                                    match="cannot reach registry"):
        client.ping()
    with RegistryClient("registry.example.com", plain_http=True, trust_env=False) as client, pytest.raises(
            RegistryError, match="cannot reach registry"):
        client.ping()
    assert len(proxy.requests) == 1
