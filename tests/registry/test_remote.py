"""Remote ``list``, ``inspect``, ``info`` and ``remove`` against the real registry: rows, documents and deletions as
the registry shows them afterwards, tags across pages, no layer fetched, and kit's messages for what registry:2
refuses."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

import pymodelkit
from pymodelkit.catalog import ListedModelKit, format_list_table
from pymodelkit.errors import AuthError, InvalidReferenceError, RegistryError, RegistryNotFoundError
from pymodelkit.kitfile import dump_kitfile
from pymodelkit.registry import push
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.credentials import Credential, ExplicitCredentials
from pymodelkit.registry.remote import info_remote, inspect_remote, list_remote, remove_remote
from pymodelkit.store import Removal
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

KITFILE = """manifestVersion: 1.0.0
package:
  name: {name}
  authors: [Ada, Grace]
model:
  name: {name}
  path: model
docs:
  - path: README.md
"""


def _repo(name: str) -> str:
    return f"remote/{name}-{secrets.token_hex(4)}"


def _publish(
    host: str, repo: str, tags: list[str], root: Path, *, name: str = "churn", weights: bytes = b"w" * 5000,
    credentials: ExplicitCredentials | None = None, plain_http: bool | None = None,
) -> pymodelkit.PackResult:
    """Pack a small ModelKit and push it to ``host/repo`` under every tag; returns the pack result."""
    src = root / f"src-{secrets.token_hex(3)}"
    (src / "model").mkdir(parents=True)
    (src / "model" / "weights.bin").write_bytes(weights)
    (src / "README.md").write_text(f"# {name}\n")
    (src / "Kitfile").write_text(KITFILE.format(name=name))
    store = pymodelkit.LocalStore(root / f"publisher-{secrets.token_hex(3)}")
    first = f"{host}/{repo}:{tags[0]}"
    packed = pymodelkit.pack(src, tag=",".join([first, *tags[1:]]), store=store)
    for tag in tags:
        push(f"{host}/{repo}:{tag}", store=store, credentials=credentials, plain_http=plain_http)
    return packed


def _remote_tags(registry: TestRegistry, repo: str) -> list[str]:
    with RegistryClient(registry.host) as client:
        return sorted(client.list_tags(repo))


class _PagingFront:
    """A front for the registry that pages ``tags/list`` as the distribution spec says (``n``, ``last``, a relative
    ``Link``; registry:2 v2.8 ignores ``n``) and passes every other GET and HEAD through unchanged."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tag_requests: list[str] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                front.handle(self, "GET")

            def do_HEAD(self) -> None:
                front.handle(self, "HEAD")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        match = re.fullmatch(r"/v2/(.+)/tags/list", parts.path)
        with httpx.Client(base_url=self.upstream, trust_env=False) as client:
            if method == "GET" and match is not None:
                self.tag_requests.append(handler.path)
                answer = client.get(parts.path)
                headers = {"Content-Type": "application/json"}
                body = answer.content
                if answer.status_code == 200:
                    query = parse_qs(parts.query)
                    tags = sorted(answer.json().get("tags") or [])
                    last = query.get("last", [""])[0]
                    remaining = [t for t in tags if t > last]
                    size = int(query["n"][0]) if "n" in query else len(remaining)
                    page = remaining[:size]
                    if len(remaining) > size:
                        following = f"/v2/{match.group(1)}/tags/list?n={size}&last={quote(page[-1])}"
                        headers["Link"] = f'<{following}>; rel="next"'
                    body = json.dumps({"name": match.group(1), "tags": page}).encode()
                status = answer.status_code
            else:
                forwarded = {k: v for k, v in handler.headers.items() if k.lower() in ("accept", "range")}
                answer = client.request(method, handler.path, headers=forwarded)
                status, body = answer.status_code, answer.content
                headers = {k: v for k, v in answer.headers.items()
                           if k.lower() not in ("content-length", "transfer-encoding", "connection")}
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(body)

    def __enter__(self) -> _PagingFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def paging_front(registry: TestRegistry) -> Iterator[_PagingFront]:
    with _PagingFront(registry.url) as front:
        yield front


# ----- list ---------------------------------------------------------------------------------------------------


def test_list_remote_has_a_row_per_tag_with_name_author_size_and_digest(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("list")
    first = _publish(registry.host, repo, ["v1", "stable"], tmp_path, name="churn", weights=b"a" * 3000)
    second = _publish(registry.host, repo, ["v2"], tmp_path, name="fraud", weights=b"b" * 7000)
    rows = sorted(list_remote(f"{registry.host}/{repo}"), key=lambda row: row.tags)

    def size(packed: pymodelkit.PackResult) -> int:
        return sum(layer.size for layer in packed.manifest.layers or ())

    assert rows == [
        ListedModelKit(repo, first.digest, ("stable",), "churn", "Ada", size(first)),
        ListedModelKit(repo, first.digest, ("v1",), "churn", "Ada", size(first)),
        ListedModelKit(repo, second.digest, ("v2",), "fraud", "Ada", size(second)),
    ]
    table = format_list_table(rows).splitlines()
    assert table[1].split() == [repo, "stable", "Ada", "churn", "7.0", "KiB", str(first.digest)]


def test_list_remote_of_one_tag_lists_that_tag_only(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("one")
    packed = _publish(registry.host, repo, ["v1", "v2"], tmp_path)
    [row] = list_remote(f"{registry.host}/{repo}:v2")
    assert (row.repo, row.tags, row.digest) == (repo, ("v2",), packed.digest)
    [by_digest] = list_remote(f"{registry.host}/{repo}@{packed.digest}")
    assert (by_digest.tags, by_digest.digest) == ((str(packed.digest),), packed.digest)


def test_list_remote_follows_link_pages_of_n_tags(
    registry: TestRegistry, paging_front: _PagingFront, tmp_path: Path
) -> None:
    repo = _repo("paged")
    tags = ["a1", "b2", "c3", "d4", "e5"]
    packed = _publish(registry.host, repo, tags, tmp_path)
    rows = list_remote(f"{paging_front.host}/{repo}", page_size=2, plain_http=True)
    assert [row.tags[0] for row in rows] == tags
    assert {row.digest for row in rows} == {packed.digest}
    assert paging_front.tag_requests == [
        f"/v2/{repo}/tags/list?n=2",
        f"/v2/{repo}/tags/list?n=2&last=b2",
        f"/v2/{repo}/tags/list?n=2&last=d4",
    ]


def test_registry_2_8_ignores_n_and_sends_every_tag_in_one_page(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("unpaged")
    _publish(registry.host, repo, ["x", "y", "z"], tmp_path)
    with RegistryClient(registry.host) as client:
        assert sorted(client.list_tags(repo, page_size=1)) == ["x", "y", "z"]


def test_list_remote_skips_tags_that_are_not_modelkits(registry: TestRegistry, tmp_path: Path) -> None:
    from pymodelkit.registry.upload import FileSpan, put_blob, start_upload

    repo = _repo("mixed")
    packed = _publish(registry.host, repo, ["model"], tmp_path)
    config = tmp_path / "image-config"
    config.write_bytes(b"{}")
    digest = pymodelkit.Digest.from_bytes(b"{}")
    image = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(digest), "size": 2},
        "layers": [],
    }).encode()
    with RegistryClient(registry.host) as client, config.open("rb") as handle:
        put_blob(client, start_upload(client, repo), digest, FileSpan(handle.fileno(), 0, 2))
        client.put_manifest(repo, "image", image, "application/vnd.oci.image.manifest.v1+json")
    assert [(row.tags, row.digest) for row in list_remote(f"{registry.host}/{repo}")] == [(("model",), packed.digest)]
    with pytest.raises(pymodelkit.ModelKitError, match=f"reference {registry.host}/{repo}:image does not refer"):
        list_remote(f"{registry.host}/{repo}:image")


def test_list_remote_of_an_unknown_repository_is_not_found(registry: TestRegistry) -> None:
    repo = _repo("nothing")
    with pytest.raises(RegistryNotFoundError) as info:
        list_remote(f"{registry.host}/{repo}")
    assert info.value.status == 404
    assert str(info.value).startswith(f"repository {registry.host}/{repo} not found")


def test_remote_commands_need_a_registry() -> None:
    with pytest.raises(InvalidReferenceError, match="registry is required when listing a remote repository"):
        list_remote("team/model")
    with pytest.raises(InvalidReferenceError, match="registry is required when inspecting a remote ModelKit"):
        inspect_remote("team/model:v1")
    with pytest.raises(InvalidReferenceError, match="missing tag or digest from ModelKit reference"):
        info_remote("127.0.0.1:5000/team/model")
    with pytest.raises(InvalidReferenceError, match=r"tag or digest is required when removing \(127"):
        remove_remote("127.0.0.1:5000/team/model")


# ----- inspect and info ---------------------------------------------------------------------------------------


def test_inspect_and_info_remote_match_the_local_ones_without_fetching_a_layer(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(registry.url)
    repo = _repo("inspect")
    src_store = pymodelkit.LocalStore(tmp_path / "local")
    packed = _publish(proxy.host, repo, ["v1"], tmp_path, plain_http=True)
    pymodelkit.pull(f"{proxy.host}/{repo}:v1", store=src_store, plain_http=True)
    before = proxy.settled_count()

    document = inspect_remote(f"{proxy.host}/{repo}:v1", plain_http=True)
    kitfile = info_remote(f"{proxy.host}/{repo}@{packed.digest}", plain_http=True)

    assert document == pymodelkit.inspect(f"{proxy.host}/{repo}:v1", src_store)
    assert json.loads(document)["digest"] == str(packed.digest)
    assert dump_kitfile(kitfile) == dump_kitfile(pymodelkit.info(f"{proxy.host}/{repo}:v1", src_store))
    assert kitfile.model is not None and kitfile.model.digest == ""
    layers = {str(layer.digest) for layer in packed.manifest.layers or ()}
    seen = [(r.method, r.target) for r in proxy.requests_since(before)]
    assert not [target for _, target in seen if any(digest in target for digest in layers)]
    blob_gets = [target for method, target in seen if method == "GET" and "/blobs/" in target]
    assert blob_gets == [f"/v2/{repo}/blobs/{packed.manifest.config.digest}"] * 2


def test_inspect_remote_of_a_missing_tag_names_it(registry: TestRegistry) -> None:
    repo = _repo("gone")
    with pytest.raises(RegistryNotFoundError) as info:
        inspect_remote(f"{registry.host}/{repo}:v9")
    assert str(info.value).startswith(f"manifest {registry.host}/{repo}:v9 not found (registry answered 404")


def test_inspect_remote_with_basic_auth(registry_basic: TestRegistry, tmp_path: Path) -> None:
    assert registry_basic.username is not None and registry_basic.password is not None
    credentials = ExplicitCredentials(Credential(username=registry_basic.username, password=registry_basic.password))
    repo = _repo("auth")
    packed = _publish(registry_basic.host, repo, ["v1"], tmp_path, credentials=credentials)
    document = inspect_remote(f"{registry_basic.host}/{repo}:v1", credentials=credentials)
    assert json.loads(document)["digest"] == str(packed.digest)
    [row] = list_remote(f"{registry_basic.host}/{repo}", credentials=credentials)
    assert row.digest == packed.digest
    wrong = ExplicitCredentials(Credential(username=registry_basic.username, password="wrong-password"))
    with pytest.raises(AuthError) as info:
        inspect_remote(f"{registry_basic.host}/{repo}:v1", credentials=wrong)
    assert info.value.status == 401 and "wrong-password" not in str(info.value)


# ----- remove -------------------------------------------------------------------------------------------------


def test_untagging_on_registry_2_8_is_refused_with_kits_message(registry_deletes: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("untag")
    _publish(registry_deletes.host, repo, ["v1", "v2"], tmp_path)
    with pytest.raises(RegistryError) as info:
        remove_remote(f"{registry_deletes.host}/{repo}:v1")
    # registry:2 v2.8 deletes manifests by digest only: a tag DELETE is "400 DIGEST_INVALID".
    assert (info.value.status, info.value.code) == (400, "DIGEST_INVALID")
    assert str(info.value).startswith(
        "failed to untag ModelKit in remote: remote registry does not support untagging (removing by digest, or "
        "with force, deletes the ModelKit and every tag pointing at it) [registry answered 400 DIGEST_INVALID to "
        f"DELETE http://{registry_deletes.host}/v2/{repo}/manifests/v1]"
    )
    assert _remote_tags(registry_deletes, repo) == ["v1", "v2"]


def test_force_removal_through_a_tag_deletes_the_manifest_and_all_its_tags(
    registry_deletes: TestRegistry, tmp_path: Path
) -> None:
    repo = _repo("force")
    packed = _publish(registry_deletes.host, repo, ["v1", "v2"], tmp_path)
    other = _publish(registry_deletes.host, repo, ["other"], tmp_path, name="other")
    removal = remove_remote(f"{registry_deletes.host}/{repo}:v1", force=True)
    assert removal == Removal(f"{registry_deletes.host}/{repo}", packed.digest, "v1", untagged_only=False)
    assert _remote_tags(registry_deletes, repo) == ["other"]
    with pytest.raises(RegistryNotFoundError):
        inspect_remote(f"{registry_deletes.host}/{repo}@{packed.digest}")
    assert json.loads(inspect_remote(f"{registry_deletes.host}/{repo}:other"))["digest"] == str(other.digest)


def test_removal_by_digest_deletes_the_manifest(registry_deletes: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("bydigest")
    packed = _publish(registry_deletes.host, repo, ["v1"], tmp_path)
    removal = remove_remote(f"{registry_deletes.host}/{repo}@{packed.digest}")
    assert removal == Removal(f"{registry_deletes.host}/{repo}", packed.digest, None, untagged_only=False)
    assert _remote_tags(registry_deletes, repo) == []
    with pytest.raises(RegistryNotFoundError) as info:
        remove_remote(f"{registry_deletes.host}/{repo}@{packed.digest}")
    assert str(info.value).startswith(f"manifest {registry_deletes.host}/{repo}@{packed.digest} not found")


def test_removal_where_deletes_are_disabled_says_so(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("nodelete")
    packed = _publish(registry.host, repo, ["v1"], tmp_path)
    with pytest.raises(RegistryError) as forced:
        remove_remote(f"{registry.host}/{repo}:v1", force=True)
    assert (forced.value.status, forced.value.code) == (405, "UNSUPPORTED")
    assert str(forced.value) == (
        f"removing models is unsupported by registry {registry.host} [registry answered 405 UNSUPPORTED to "
        f"DELETE http://{registry.host}/v2/{repo}/manifests/{packed.digest}]"
    )
    with pytest.raises(RegistryError, match="remote registry does not support untagging") as untag:
        remove_remote(f"{registry.host}/{repo}:v1")
    assert untag.value.status == 405
    assert _remote_tags(registry, repo) == ["v1"]


def test_removing_a_missing_tag_is_not_found(registry_deletes: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("missing")
    _publish(registry_deletes.host, repo, ["v1"], tmp_path)
    with pytest.raises(RegistryNotFoundError) as info:
        remove_remote(f"{registry_deletes.host}/{repo}:nope", force=True)
    assert str(info.value).startswith(f"manifest {registry_deletes.host}/{repo}:nope not found")
    assert _remote_tags(registry_deletes, repo) == ["v1"]


def test_remote_commands_ask_the_token_server_for_the_scopes_they_need(
    registry_token: TestRegistry, tmp_path: Path
) -> None:
    assert registry_token.username is not None and registry_token.password is not None
    assert registry_token.token_server is not None
    credentials = ExplicitCredentials(Credential(username=registry_token.username, password=registry_token.password))
    repo = _repo("token")
    packed = _publish(registry_token.host, repo, ["v1"], tmp_path, credentials=credentials)
    registry_token.token_server.reset()
    [row] = list_remote(f"{registry_token.host}/{repo}", credentials=credentials)
    assert row.digest == packed.digest
    with pytest.raises(RegistryError) as info:  # the token grants delete; this registry has deletes off
        remove_remote(f"{registry_token.host}/{repo}:v1", force=True, credentials=credentials)
    assert (info.value.status, info.value.code) == (405, "UNSUPPORTED")
    asked = {scope for request in registry_token.token_server.requests for scope in request.scopes}
    assert asked == {f"repository:{repo}:pull", f"repository:{repo}:delete,pull"}
    assert {request.status for request in registry_token.token_server.requests} == {200}
