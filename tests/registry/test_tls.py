"""The verifying TLS context is built once per configuration and only for https requests (registry/tls.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

import pymodelkit
from pymodelkit.registry import transfer
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.retry import RetryTransport
from pymodelkit.registry.tls import SchemeTransport, ssl_context
from tests.support.registry import TestRegistry


def _answer(label: str, seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{label} {request.url}")
        return httpx.Response(200, text=label)

    return httpx.MockTransport(handler)


def test_http_requests_never_build_the_secure_transport_and_https_builds_it_once() -> None:
    seen: list[str] = []
    built: list[int] = []

    def make_secure() -> httpx.BaseTransport:
        built.append(1)
        return _answer("secure", seen)

    transport = SchemeTransport(_answer("plain", seen), make_secure)
    with httpx.Client(transport=transport) as client:
        assert client.get("http://registry.test/v2/").text == "plain"
        assert client.get("http://registry.test/v2/x").text == "plain"
        assert not transport.secure_built and built == []
        assert client.get("https://storage.test/blob").text == "secure"
        assert client.get("https://storage.test/blob2").text == "secure"
    assert built == [1]
    assert seen == ["plain http://registry.test/v2/", "plain http://registry.test/v2/x",
                    "secure https://storage.test/blob", "secure https://storage.test/blob2"]


def test_concurrent_first_https_requests_build_one_secure_transport() -> None:
    built: list[int] = []
    gate = threading.Barrier(8)

    def make_secure() -> httpx.BaseTransport:
        built.append(1)
        return _answer("secure", [])

    transport = SchemeTransport(_answer("plain", []), make_secure)
    answers: list[str] = []

    def fetch() -> None:
        gate.wait()
        request = httpx.Request("GET", "https://storage.test/blob")
        answers.append(transport.handle_request(request).read().decode())

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1] and answers == ["secure"] * 8


def test_a_closed_transport_refuses_https() -> None:
    transport = SchemeTransport(_answer("plain", []), lambda: _answer("secure", []))
    transport.close()
    with pytest.raises(RuntimeError, match="closed"):
        transport.handle_request(httpx.Request("GET", "https://storage.test/blob"))


def test_ssl_context_is_shared_per_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first = ssl_context(tls_verify=True, ca_bundle=None, trust_env=True)
    assert ssl_context(tls_verify=True, ca_bundle=None, trust_env=True) is first
    unverified = ssl_context(tls_verify=False, ca_bundle=None, trust_env=True)
    assert unverified is not first and not unverified.check_hostname
    assert first.check_hostname
    # SSL_CERT_FILE is part of the configuration: another value gives another context
    import certifi

    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert ssl_context(tls_verify=True, ca_bundle=None, trust_env=True) is not first


def test_a_plain_http_pull_builds_no_verifying_context(registry: TestRegistry, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.bin").write_bytes(b"weights" * 1000)
    (source / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    store = pymodelkit.LocalStore(tmp_path / "home")
    reference = f"{registry.host}/tls/plain:v1"
    packed = pymodelkit.pack(source, tag="tls/plain:v1", store=store)
    transfer.push("tls/plain:v1", reference, store=store, plain_http=True)
    client = RegistryClient(registry.host, plain_http=True)
    try:
        pulled = transfer.pull(reference, store=pymodelkit.LocalStore(tmp_path / "other"), plain_http=True)
        assert pulled.digest == packed.digest
        fetched = client.fetch_manifest(reference.split("/", 1)[1].split(":")[0], "v1")
        assert fetched.digest == packed.digest
        retrying = client._client._transport  # the RetryTransport over our SchemeTransport
        assert isinstance(retrying, RetryTransport)
        assert isinstance(retrying.inner, SchemeTransport) and not retrying.inner.secure_built
    finally:
        client.close()
