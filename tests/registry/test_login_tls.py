"""login over TLS to a loopback registry chooses its trust as ``RegistryClient`` does, because it is one: the CA
bundle (certifi's, or ``SSL_CERT_FILE`` from the environment) decides, and an untrusted certificate is the client's
one-line error, with no fall-back to plain HTTP and nothing saved. Against the real Basic-auth test registry behind a
TLS front (``tests/support/tlsfront.py``)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymodelkit.cli.main import main
from pymodelkit.errors import RegistryError
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.credentials import Credential, ExplicitCredentials
from pymodelkit.registry.login import login
from tests.support.registry import TestRegistry
from tests.support.tlsfront import TestPki, tls_front


@pytest.fixture
def https_front(registry_basic: TestRegistry, pki: TestPki) -> Iterator[str]:
    """``127.0.0.1:<port>``: https with a certificate of ``pki``'s CA, in front of the Basic-auth registry."""
    host, port = registry_basic.host.rsplit(":", 1)
    with tls_front((host, int(port)), pki.server()) as front:
        yield front


@pytest.fixture
def no_ca_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``SSL_CERT_FILE``/``SSL_CERT_DIR`` from the outer environment: certifi's bundle, which lacks ``pki``."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _creds(reg: TestRegistry) -> tuple[str, str]:
    assert reg.username and reg.password
    return reg.username, reg.password


def _certificate_error(front: str) -> re.Pattern[str]:
    return re.compile(rf"cannot reach registry {re.escape(front)}: \[SSL: CERTIFICATE_VERIFY_FAILED\] certificate "
                      rf"verify failed: [^\n]* \[GET https://{re.escape(front)}/v2/\]")


def test_login_trusts_the_ca_of_ssl_cert_file_as_the_client_does(
    https_front: str, registry_basic: TestRegistry, pki: TestPki, no_ca_variables: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username, password = _creds(registry_basic)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    credentials = ExplicitCredentials(Credential(username, password))
    with RegistryClient(https_front, credentials=credentials) as client:  # loopback: https probed first, trusted
        client.ping()
        assert client.base_url == f"https://{https_front}"
    home = tmp_path / "kit-home"
    login(https_front, username, password, home=home)
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    assert (home / "credentials.json").read_text() == (
        '{\n\t"auths": {\n\t\t"' + https_front + '": {\n\t\t\t"auth": "' + auth + '"\n\t\t}\n\t}\n}'
    )


def test_login_without_the_ca_is_the_client_s_one_line_certificate_error(
    https_front: str, registry_basic: TestRegistry, no_ca_variables: None, tmp_path: Path
) -> None:
    username, password = _creds(registry_basic)
    with pytest.raises(RegistryError) as by_client, RegistryClient(https_front) as client:
        client.ping()
    home = tmp_path / "kit-home"
    with pytest.raises(RegistryError) as by_login:
        login(https_front, username, password, home=home)
    assert _certificate_error(https_front).fullmatch(str(by_login.value))
    assert str(by_login.value) == str(by_client.value)  # one rule: the client's
    assert by_login.value.status is None and by_login.value.url == f"https://{https_front}/v2/"
    assert not home.exists()  # nothing saved


def test_login_with_another_ca_in_ssl_cert_file_is_refused(
    https_front: str, registry_basic: TestRegistry, other_pki: TestPki, no_ca_variables: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``SSL_CERT_FILE`` replaces the default bundle: a CA that did not issue the registry's certificate fails."""
    monkeypatch.setenv("SSL_CERT_FILE", str(other_pki.ca))
    with pytest.raises(RegistryError) as info:
        login(https_front, *_creds(registry_basic), home=tmp_path / "kit-home")
    assert _certificate_error(https_front).fullmatch(str(info.value))
    assert not (tmp_path / "kit-home").exists()


def test_cli_login_honours_ssl_cert_file(
    https_front: str, registry_basic: TestRegistry, pki: TestPki, no_ca_variables: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    username, password = _creds(registry_basic)
    argv = ["login", "-u", username, "--password-stdin", https_front]
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    code = main(["--config", str(tmp_path / "without"), *argv])
    out, err = capsys.readouterr()
    assert (code, out) == (11, "")
    assert err.endswith("\n") and len(err.splitlines()) == 1
    assert _certificate_error(https_front).fullmatch(err.removeprefix("pymodelkit: error: ").rstrip("\n"))
    assert not (tmp_path / "without").exists()

    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    code = main(["--config", str(tmp_path / "with"), *argv])
    assert (code, capsys.readouterr()) == (0, ("Log in successful\n", ""))
    assert https_front in (tmp_path / "with" / "credentials.json").read_text()

