"""A web server that is no OCI registry is named as such (exit 11), never taken for a registry lacking the thing asked
for (exit 5) and never quoted in HTML; a real registry's 404 stays "not found", also when the distribution header is
stripped on the way (audit P5).

The non-registry is what users hit: Python's ``http.server`` (HTML 404 pages, 501 for POST). The header-stripping
front passes every exchange through to the real test registry unchanged but for that header.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pymodelkit.cli.main import main
from pymodelkit.errors import RegistryError, RegistryNotFoundError
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.responses import API_VERSION_HEADER, check_response, is_temporary_status, not_a_registry
from pymodelkit.registry.retry import RetryPolicy, RetryTransport
from tests.support.registry import TestRegistry

# --- stand-in servers ----------------------------------------------------------------------------------------------


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread; ``seen`` lists ``(method, path)`` of every request."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.seen: list[tuple[str, str]] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.seen = self.seen  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _WebServer(http.server.SimpleHTTPRequestHandler):
    """``python -m http.server`` over an empty directory: HTML 404 pages, 501 to POST/PUT/PATCH/DELETE."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, directory=str(Path(__file__).parent / "no-such-dir"), **kwargs)  # type: ignore[arg-type]

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.server.seen.append((self.command, self.path))  # type: ignore[attr-defined]
        return ok

    def log_message(self, format: str, *args: object) -> None:
        pass


class _StripFront(http.server.BaseHTTPRequestHandler):
    """A reverse proxy to the real registry that drops the distribution header from every answer."""

    protocol_version = "HTTP/1.1"
    upstream = ""

    def _forward(self) -> None:
        self.server.seen.append((self.command, self.path))  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        with httpx.Client(trust_env=False) as client:
            answer = client.request(self.command, self.upstream + self.path, headers=headers, content=body)
        payload = b"" if self.command == "HEAD" else answer.content
        self.send_response(answer.status_code)
        for key, value in answer.headers.multi_items():
            if key.lower() not in (API_VERSION_HEADER.lower(), "content-length", "transfer-encoding", "connection",
                                   "content-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", answer.headers.get("content-length", "0") if self.command == "HEAD"
                         else str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[_Server]:
    server = _Server(_WebServer)
    yield server
    server.close()


@pytest.fixture
def stripped(registry: TestRegistry) -> Iterator[_Server]:
    handler = type("_Front", (_StripFront,), {"upstream": registry.url})
    server = _Server(handler)
    yield server
    server.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _not_a_registry(host: str) -> str:
    return f"pymodelkit: error: {host} is not an OCI registry (GET http://{host}/v2/ answered 404 text/html)\n"


def _store(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def _pack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "m.bin").write_bytes(b"weights")
    (tmp_path / "proj" / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: demo\n"
                                               "model:\n  name: m\n  path: m.bin\n")
    code, _, err = _run(capsys, "pack", str(tmp_path / "proj"), "-t", "demo:v1")
    assert code == 0, err


# --- a web server ----------------------------------------------------------------------------------------------------


def test_the_library_names_a_web_server_as_no_registry(web_server: _Server) -> None:
    with RegistryClient(web_server.host) as client, pytest.raises(RegistryError) as info:
        client.fetch_manifest("demo", "v1")
    error = info.value
    assert type(error) is RegistryError  # not RegistryNotFoundError: nothing says the registry lacks the manifest
    assert str(error) == (f"{web_server.host} is not an OCI registry (GET http://{web_server.host}/v2/ answered 404 "
                          "text/html)")
    assert (error.status, error.method, error.is_temporary) == (404, "GET", False)
    assert ("GET", "/v2/") in web_server.seen


@pytest.mark.parametrize("command", [
    ["pull", "{host}/demo:v1"],
    ["inspect", "-r", "{host}/demo:v1"],
    ["list", "{host}/demo"],
    ["unpack", "{host}/demo:v1", "-d", "{tmp}/out"],
])
def test_reading_commands_say_not_an_oci_registry_with_exit_11(
    web_server: _Server, command: list[str], tmp_path: Path, clean_environ: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [part.format(host=web_server.host, tmp=tmp_path) for part in command]
    code, out, err = _run(capsys, *args)
    assert (code, out, err) == (11, "", _not_a_registry(web_server.host))
    assert "<" not in err
    assert not (clean_environ / "kitops" / "storage").exists() or _store(clean_environ / "kitops") == {}
    assert not (tmp_path / "out").exists()


def test_push_to_a_web_server_fails_at_once_without_uploading(
    web_server: _Server, tmp_path: Path, clean_environ: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pack(capsys, tmp_path)
    before = _store(clean_environ / "kitops")
    code, out, err = _run(capsys, "push", "demo:v1", f"{web_server.host}/demo:v1")
    assert (code, err) == (11, _not_a_registry(web_server.host))
    assert out == ""
    methods = [method for method, _ in web_server.seen]
    assert "POST" not in methods and "PUT" not in methods  # no upload was tried, so no 501 was retried
    assert methods.count("GET") == 1  # the one GET /v2/ that gave the verdict
    assert _store(clean_environ / "kitops") == before


def test_login_to_a_web_server_says_not_an_oci_registry(
    web_server: _Server, clean_environ: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "login", web_server.host, "-u", "u", "-p", "pw")
    assert code == 11
    assert err.splitlines()[-1] + "\n" == _not_a_registry(web_server.host)
    assert web_server.seen == [("GET", "/v2/")]
    assert not (clean_environ / "kitops" / "credentials.json").exists()


# --- real registries -------------------------------------------------------------------------------------------------


def test_a_missing_manifest_in_a_real_registry_is_still_not_found(
    registry: TestRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "inspect", "-r", f"{registry.host}/not-a-registry-test/nothing:v1")
    assert code == 5
    assert err == (f"pymodelkit: error: manifest {registry.host}/not-a-registry-test/nothing:v1 not found (registry "
                   f"answered 404 MANIFEST_UNKNOWN: manifest unknown) [GET {registry.url}/v2/not-a-registry-test/"
                   "nothing/manifests/v1]\n")


def test_a_registry_without_the_distribution_header_is_asked_once_and_stays_a_registry(
    registry: TestRegistry, stripped: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pack(capsys, tmp_path)
    host = stripped.host
    code, _, err = _run(capsys, "push", "demo:v1", f"{host}/stripped/demo:v1")  # HEADs answer 404: blobs absent
    assert code == 0, err
    assert stripped.seen.count(("GET", "/v2/")) == 1  # one verdict per client, for the first 404 without the header
    stripped.seen.clear()
    code, _, err = _run(capsys, "inspect", "-r", f"{host}/stripped/demo:nothing")
    assert code == 5
    assert err.startswith(f"pymodelkit: error: manifest {host}/stripped/demo:nothing not found (registry answered "
                          "404 MANIFEST_UNKNOWN: manifest unknown)")
    assert stripped.seen == [("GET", "/v2/stripped/demo/manifests/nothing"), ("GET", "/v2/")]
    code, _, err = _run(capsys, "inspect", "-r", f"{host}/stripped/demo:v1")
    assert code == 0, err


# --- the verdict and the message, on answers a registry will not give on demand ---------------------------------------


def _answer(status: int, content_type: str | None = None, *, header: bool = False, body: bytes = b"",
            method: str = "GET", url: str = "http://127.0.0.1:5000/v2/") -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    if header:
        headers[API_VERSION_HEADER] = "registry/2.0"
    return httpx.Response(status, headers=headers, content=body, request=httpx.Request(method, url))


@pytest.mark.parametrize(("status", "content_type", "header", "verdict"), [
    (404, "text/html", False, "404 text/html"),
    (405, None, False, "405 with no content type"),
    (400, "text/plain", False, "400 text/plain"),
    (501, "text/html", False, "501 text/html"),
    (200, "text/html; charset=utf-8", False, "200 text/html"),
    (404, "text/html", True, None),          # distribution's header: a registry, whatever else it says
    (200, "application/json", False, None),  # a registry's /v2/
    (401, "application/json", False, None),  # a registry asking for credentials
    (403, "text/html", False, None),
    (429, None, False, None),
    (502, "text/html", False, None),         # a registry behind a proxy may be down: no verdict
    (301, None, False, None),
])
def test_what_an_answer_to_get_v2_says(status: int, content_type: str | None, header: bool, verdict: str | None
                                       ) -> None:
    error = not_a_registry("127.0.0.1:5000", _answer(status, content_type, header=header))
    if verdict is None:
        assert error is None
    else:
        assert error is not None
        assert str(error) == f"127.0.0.1:5000 is not an OCI registry (GET http://127.0.0.1:5000/v2/ answered {verdict})"
        assert (error.status, error.is_temporary) == (status, False)


def test_an_html_error_page_is_never_quoted() -> None:
    page = b"<!DOCTYPE HTML>\n<html><head><title>Error response</title></head><body>Bad gateway</body></html>\n"
    url = "http://127.0.0.1:5000/v2/demo/manifests/v1"
    for response in (_answer(502, "text/html", body=page, url=url), _answer(502, None, body=page, url=url)):
        with pytest.raises(RegistryError) as info:
            check_response(response, 200, subject="manifest 127.0.0.1:5000/demo:v1")
        assert str(info.value) == (
            f"manifest 127.0.0.1:5000/demo:v1: registry answered 502 Bad Gateway (an HTML page) [GET {url}]"
        )


def test_501_is_not_temporary_and_not_retried() -> None:
    assert is_temporary_status(501) is False
    assert is_temporary_status(500) is True and is_temporary_status(503) is True
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(501)

    transport = RetryTransport(httpx.MockTransport(answer), RetryPolicy(attempts=5), sleep=lambda _: None)
    with httpx.Client(transport=transport) as client:
        assert client.get("http://127.0.0.1:5000/v2/").status_code == 501
    assert len(calls) == 1
    with pytest.raises(RegistryNotFoundError):  # and a 404 with an OCI body stays a RegistryNotFoundError
        check_response(_answer(404, "application/json", body=b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'), 200,
                       subject="manifest x")
