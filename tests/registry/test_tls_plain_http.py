"""Plain HTTP reads no TLS file (registry/tls.py ``deferred_tls_options``): a ``RegistryClient`` or ``login`` with
``plain_http=True`` (or ``PYMODELKIT_PLAIN_HTTP=1``) works against the real plain-HTTP registries whatever junk its
TLS files are, and reads them only if it makes an https request after all; one that may speak https (``False``, or
``None`` for a loopback registry, which is probed over https first) still fails in one line before any request."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pymodelkit.errors import ModelKitError
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.login import login
from pymodelkit.registry.tls import TlsOptions, deferred_tls_options, use_tls_options
from tests.support.registry import TestRegistry
from tests.support.tlsfront import TestPki

UNUSED = "127.0.0.1:1"  # nothing listens there


@pytest.fixture
def junk(tmp_path: Path) -> tuple[Path, Path]:
    """A text file where a PEM certificate belongs, and an empty one where its key belongs."""
    text, empty = tmp_path / "notes.pem", tmp_path / "empty.pem"
    text.write_text("not a certificate\n")
    empty.write_bytes(b"")
    return text, empty


def _one_line(error: pytest.ExceptionInfo[ModelKitError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_plain_http_client_ignores_junk_tls_files_and_an_https_one_refuses_them(
    registry: TestRegistry, junk: tuple[Path, Path], clean_environ: Path
) -> None:
    text, empty = junk
    with RegistryClient(registry.host, plain_http=True, ca_bundle=[text, empty], client_cert=(text, empty)) as client:
        client.ping()
        assert client.base_url == f"http://{registry.host}"
    for plain_http in (False, None):  # None: a loopback registry is probed over https first
        with pytest.raises(ModelKitError) as refused:
            RegistryClient(registry.host, plain_http=plain_http, ca_bundle=text)
        assert _one_line(refused) == f"cannot use the CA certificate file {text}: no CA certificate in it"
        with pytest.raises(ModelKitError) as refused:
            RegistryClient(registry.host, plain_http=plain_http, client_cert=(text, empty))
        assert _one_line(refused) == f"cannot use the client certificate file {text}: no PEM certificate in it"


def test_plain_http_reads_neither_variable_nor_scope(
    registry: TestRegistry, junk: tuple[Path, Path], clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, empty = junk
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(text))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(empty))
    with use_tls_options(TlsOptions(ca_files=(str(empty),), names=("--tls-cert", "--cert", "--key"))):
        with RegistryClient(registry.host, plain_http=True) as client:
            client.ping()
        with pytest.raises(ModelKitError) as refused:
            RegistryClient(registry.host, plain_http=False)
        assert _one_line(refused) == f"cannot use the --tls-cert file {empty}: it is empty"
    with pytest.raises(ModelKitError) as refused:
        RegistryClient(registry.host)
    assert _one_line(refused) == f"cannot use the KITOPS_CLIENT_CERT file {text}: no PEM certificate in it"
    monkeypatch.setenv("PYMODELKIT_PLAIN_HTTP", "1")  # the library's plain HTTP by the environment
    with RegistryClient(registry.host) as client:
        client.ping()
    monkeypatch.delenv("KITOPS_CLIENT_CERT")  # the variable's key alone, refused over https, is not read either
    with RegistryClient(registry.host) as client:
        client.ping()


def test_a_plain_http_client_reads_its_files_at_its_first_https_request(junk: tuple[Path, Path]) -> None:
    """A plain-HTTP registry may send a client to https (a redirect to storage, a token server): the files are
    resolved then, from the use_tls_options block the client was made in, and checked as ever."""
    text, _ = junk
    with use_tls_options(TlsOptions(ca_files=(str(text),), names=("--tls-cert", "--cert", "--key"))):
        client = RegistryClient(UNUSED, plain_http=True)
    with client, pytest.raises(ModelKitError) as refused:
        client.send("GET", f"https://{UNUSED}/v2/", scopes=())
    assert _one_line(refused) == f"cannot use the --tls-cert file {text}: no CA certificate in it"


def test_deferred_tls_options_resolve_once_with_the_block_they_were_made_in(pki: TestPki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not yet\n")
    with use_tls_options(TlsOptions(ca_files=(str(ca),), environment=False)):
        options = deferred_tls_options()
    with pytest.raises(ModelKitError):
        options()  # not kept: the next call tries again
    ca.write_bytes(pki.ca.read_bytes())
    found: list[TlsOptions] = []
    thread = threading.Thread(target=lambda: found.append(options()))
    thread.start()
    thread.join()
    assert found == [TlsOptions(ca_files=(str(ca),))]
    ca.write_text("broken after the check\n")
    assert options() is found[0]  # resolved once


def test_login_over_plain_http_ignores_junk_tls_files_and_over_https_refuses_them(
    registry_basic: TestRegistry, junk: tuple[Path, Path], clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry_basic.username and registry_basic.password
    text, empty = junk
    credentials = clean_environ / "kitops" / "credentials.json"
    for plain_http in (False, None):
        with pytest.raises(ModelKitError) as refused:
            login(registry_basic.host, registry_basic.username, registry_basic.password, plain_http=plain_http,
                  ca_bundle=[text], client_cert=(text, empty))
        assert _one_line(refused) == f"cannot use the CA certificate file {text}: no CA certificate in it"
        assert not credentials.exists()
    login(registry_basic.host, registry_basic.username, registry_basic.password, plain_http=True,
          ca_bundle=[text], client_cert=(text, empty))
    assert registry_basic.host in credentials.read_text()
    credentials.unlink()
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(text))
    monkeypatch.setenv("PYMODELKIT_PLAIN_HTTP", "1")
    login(registry_basic.host, registry_basic.username, registry_basic.password)
    assert registry_basic.host in credentials.read_text()
