"""The fault proxy forwards HTTP/1.1 unchanged, and cuts, stalls and injects errors exactly where told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.faultproxy import FaultProxy, ProxiedRequest
from tests.support.rawhttp import digest_of, http_client, push_blob, with_digest
from tests.support.registry import TestRegistry

ProxyFactory = Callable[..., FaultProxy]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return  # connections cut by the proxy are expected here


class _Sink:
    """A loopback HTTP/1.1 upstream recording how many body bytes each request delivered."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, int]] = []
        self.done = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                want = int(self.headers.get("Content-Length") or 0)
                got = b""
                while len(got) < want:
                    chunk = self.rfile.read1(want - len(got))
                    if not chunk:
                        break
                    got += chunk
                sink.received.append((self.command, self.path, len(got)))
                sink.done.set()
                if len(got) < want:
                    self.close_connection = True
                    return
                body = f"received {len(got)}".encode()
                self.send_response(201)
                self.send_header("Location", f"http://{sink.host}/v2/next?_state=abc")
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{sink.host}/token",service="sink"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_PATCH = do_POST = do_GET = _handle

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def wait(self) -> None:
        assert self.done.wait(5), "the upstream saw no request"
        self.done.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def sink() -> Iterator[_Sink]:
    upstream = _Sink()
    try:
        yield upstream
    finally:
        upstream.stop()


def _statuses(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in proxy.requests]


def test_passes_registry_traffic_through(registry: TestRegistry, fault_proxy: ProxyFactory,
                                         request: pytest.FixtureRequest) -> None:
    proxy = fault_proxy(registry.url)
    data = bytes(range(256)) * 40
    with http_client() as client:
        started = client.post(f"{proxy.url}/v2/fixture/proxied/blobs/uploads/")
        digest = push_blob(client, proxy.url, "fixture/proxied", data)
        fetched = client.get(f"{proxy.url}/v2/fixture/proxied/blobs/{digest}")

        def chunks() -> Iterator[bytes]:  # no length: httpx sends Transfer-Encoding: chunked
            yield b"chunked "
            yield b"body"

        patched = client.patch(started.headers["Location"], content=chunks(),
                               headers={"Content-Type": "application/octet-stream"})
        closed = client.put(with_digest(patched.headers["Location"], digest_of(b"chunked body")))
        chunked_blob = client.get(f"{registry.url}/v2/fixture/proxied/blobs/{digest_of(b'chunked body')}")
    assert started.headers["Location"].startswith(f"http://{proxy.host}/v2/fixture/proxied/blobs/uploads/")
    assert fetched.content == data
    assert (patched.status_code, patched.headers["Range"], closed.status_code) == (202, "0-11", 201)
    assert chunked_blob.content == b"chunked body"
    assert _statuses(proxy) == [("POST", 202), ("POST", 202), ("PUT", 201), ("GET", 200), ("PATCH", 202),
                                ("PUT", 201)]
    assert (proxy.cuts, proxy.stalls, proxy.injected, proxy.errors) == (0, 0, 0, [])
    assert request.node.get_closest_marker("faults") is not None


def test_cuts_a_put_body_at_the_offset(sink: _Sink, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(sink.url)
    rule = proxy.cut("PUT", r"/blobs/uploads/", after_bytes=1000)
    body = b"x" * 100_000
    with http_client() as client:
        with pytest.raises(httpx.TransportError):
            client.put(f"{proxy.url}/v2/r/blobs/uploads/u?digest=sha256:00", content=body)
        sink.wait()
        again = client.put(f"{proxy.url}/v2/r/blobs/uploads/u?digest=sha256:00", content=body)
        other = client.patch(f"{proxy.url}/v2/r/blobs/uploads/u", content=body)
    assert sink.received == [("PUT", "/v2/r/blobs/uploads/u?digest=sha256:00", 1000),
                             ("PUT", "/v2/r/blobs/uploads/u?digest=sha256:00", 100_000),
                             ("PATCH", "/v2/r/blobs/uploads/u", 100_000)]
    assert again.status_code == 201 and other.status_code == 201
    assert (proxy.cuts, rule.hits, rule.times) == (1, 1, 0)
    assert proxy.requests[0] == ProxiedRequest("PUT", "/v2/r/blobs/uploads/u?digest=sha256:00", None, ("cut",))


def test_cut_with_a_short_body_loses_the_response(sink: _Sink, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(sink.url)
    proxy.cut(None, r"^/v2/short$", after_bytes=1000, abort=True)
    with http_client() as client, pytest.raises(httpx.TransportError):
        client.post(f"{proxy.url}/v2/short", content=b"0123456789")
    sink.wait()
    assert sink.received == [("POST", "/v2/short", 10)]
    assert proxy.cuts == 1


def test_cut_against_the_registry_leaves_no_blob(registry: TestRegistry, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(registry.url)
    proxy.cut("PUT", r"/v2/fixture/cutput/blobs/uploads/", after_bytes=4096)
    data = b"y" * 50_000
    with http_client() as client:
        started = client.post(f"{proxy.url}/v2/fixture/cutput/blobs/uploads/")
        with pytest.raises(httpx.TransportError):
            client.put(with_digest(started.headers["Location"], digest_of(data)), content=data,
                       headers={"Content-Type": "application/octet-stream"})
        missing = client.head(f"{proxy.url}/v2/fixture/cutput/blobs/{digest_of(data)}")
        digest = push_blob(client, proxy.url, "fixture/cutput", data)
    assert missing.status_code == 404
    assert digest == digest_of(data)
    assert _statuses(proxy) == [("POST", 202), ("PUT", None), ("HEAD", 404), ("POST", 202), ("PUT", 201)]


def test_cuts_a_response_body_at_the_offset(registry: TestRegistry, fault_proxy: ProxyFactory) -> None:
    data = bytes(i % 251 for i in range(20_000))
    with http_client() as client:
        digest = push_blob(client, registry.url, "fixture/cutget", data)
    proxy = fault_proxy(registry.url)
    proxy.cut("GET", r"/blobs/sha256:", after_bytes=4096, direction="response")
    received = b""
    with http_client() as client:
        with pytest.raises(httpx.RemoteProtocolError), \
                client.stream("GET", f"{proxy.url}/v2/fixture/cutget/blobs/{digest}") as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += chunk
        rest = client.get(f"{proxy.url}/v2/fixture/cutget/blobs/{digest}", headers={"Range": "bytes=4096-"})
    assert received == data[:4096]
    assert rest.status_code == 206 and received + rest.content == data
    assert proxy.cuts == 1


def test_injects_k_errors_then_passes_through(registry: TestRegistry, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(registry.url)
    rule = proxy.fail("GET", r"^/v2/$", status=503, times=2, retry_after=1)
    proxy.fail("PUT", r"/uploads/", status=500)
    proxy.fail("HEAD", r"/blobs/", status=503)
    with http_client() as client:
        answers = [client.get(f"{proxy.url}/v2/") for _ in range(3)]
        put = client.put(f"{proxy.url}/v2/fixture/fail/blobs/uploads/x?digest=sha256:00", content=b"z" * 300_000)
        head = client.head(f"{proxy.url}/v2/fixture/fail/blobs/{digest_of(b'')}")
        after = client.get(f"{proxy.url}/v2/")
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[0].json() == {"errors": [{"code": "UNAVAILABLE", "message": "injected by the fault proxy",
                                             "detail": None}]}
    assert answers[2].json() == {} and "Retry-After" not in answers[2].headers
    assert put.status_code == 500 and put.json()["errors"][0]["code"] == "UNKNOWN"
    assert head.status_code == 503 and head.content == b""
    assert after.status_code == 200
    assert (proxy.injected, rule.hits, proxy.errors) == (4, 2, [])
    assert [r.actions for r in proxy.requests] == [("fail",), ("fail",), (), ("fail",), ("fail",), ()]


def test_stalls_before_a_response_and_mid_body(registry: TestRegistry, fault_proxy: ProxyFactory) -> None:
    data = b"s" * 10_000
    with http_client() as client:
        digest = push_blob(client, registry.url, "fixture/stall", data)
    proxy = fault_proxy(registry.url)
    proxy.stall("GET", r"^/v2/$", seconds=0.4)
    proxy.stall("GET", r"/blobs/", seconds=0.3, after_bytes=5000)
    with http_client() as client:
        began = time.monotonic()
        ping = client.get(f"{proxy.url}/v2/")
        stalled_ping = time.monotonic() - began
        began = time.monotonic()
        blob = client.get(f"{proxy.url}/v2/fixture/stall/blobs/{digest}")
        stalled_blob = time.monotonic() - began
    proxy.stall(None, r"^/v2/$", seconds=2.0, direction="request")
    with http_client(timeout_s=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.get(f"{proxy.url}/v2/")
    assert ping.status_code == 200 and stalled_ping >= 0.4
    assert blob.content == data and stalled_blob >= 0.3
    assert proxy.stalls == 3


def test_rewrites_upstream_locations_to_the_proxy(sink: _Sink, fault_proxy: ProxyFactory) -> None:
    rewriting = fault_proxy(sink.url)
    verbatim = fault_proxy(sink.url, rewrite_locations=False)
    with http_client() as client:
        rewritten = client.post(f"{rewriting.url}/v2/x", content=b"")
        kept = client.post(f"{verbatim.url}/v2/x", content=b"")
    assert rewritten.headers["Location"] == f"http://{rewriting.host}/v2/next?_state=abc"
    assert rewritten.headers["WWW-Authenticate"] == f'Bearer realm="http://{rewriting.host}/token",service="sink"'
    assert kept.headers["Location"] == f"http://{sink.host}/v2/next?_state=abc"
    assert rewritten.content == kept.content == b"received 0"


def test_only_loopback_http_upstreams() -> None:
    with pytest.raises(ValueError, match=r"only fronts loopback upstreams, not 'example\.com'"):
        FaultProxy("http://example.com:80")
    with pytest.raises(ValueError, match=r"needs an http://host:port target"):
        FaultProxy("https://127.0.0.1:5000")
    assert FaultProxy("127.0.0.1:5000").target_host == "127.0.0.1:5000"


def test_stop_closes_every_connection(registry: TestRegistry) -> None:
    proxy = FaultProxy(registry.url).start()
    url = proxy.url
    with http_client() as client:
        assert client.get(f"{url}/v2/").status_code == 200  # a kept-alive connection is open now
        proxy.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"{url}/v2/")
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]


def test_an_early_answer_to_a_big_body_reaches_the_client(registry_basic: TestRegistry,
                                                          fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(registry_basic.url)
    with http_client() as client:
        direct = client.put(f"{registry_basic.url}/v2/fixture/early/blobs/uploads/u?digest=sha256:00",
                            content=b"b" * 4_000_000)
        proxied = client.put(f"{proxy.url}/v2/fixture/early/blobs/uploads/u?digest=sha256:00",
                             content=b"b" * 4_000_000)
    assert direct.status_code == proxied.status_code == 401
    assert proxied.headers["WWW-Authenticate"] == 'Basic realm="local-registry"'
    assert _statuses(proxy) == [("PUT", 401)]
    assert proxy.errors == []
