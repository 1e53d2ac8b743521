"""``login``/``logout`` arguments and messages (audit P1, P6, P11, P14): REGISTRY read as docker reads it, one-line
errors with the table's exit codes, ``Not logged in to`` as docker says, and a hint when ``-u`` is missing."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from pymodelkit.cli.main import main
from pymodelkit.errors import InvalidReferenceError
from pymodelkit.registry.login import registry_host
from tests.support.registry import TestRegistry


def _run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = ""
         ) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _saved(host: str, username: str, password: str) -> bytes:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return ('{\n\t"auths": {\n\t\t"' + host + '": {\n\t\t\t"auth": "' + auth + '"\n\t\t}\n\t}\n}').encode()


def _credentials(home: Path) -> Path:
    return home / "kitops" / "credentials.json"


@pytest.mark.parametrize("given", ["http://{host}", "https://{host}/", "HTTP://{host}/team/model", "{host}/demo",
                                   "{host}/v2/"])
def test_login_reads_a_url_or_a_path_as_its_host_as_docker_does(
    registry_basic: TestRegistry, given: str, clean_environ: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username, password = registry_basic.username or "", registry_basic.password or ""
    host = registry_basic.host
    code, out, err = _run(capsys, monkeypatch, "login", given.format(host=host), "-u", username, "--password-stdin",
                          stdin=password + "\n")
    assert (code, out, err) == (0, "Log in successful\n", "")
    assert _credentials(clean_environ).read_bytes() == _saved(host, username, password)
    code, out, err = _run(capsys, monkeypatch, "logout", given.format(host=host))
    assert (code, out, err) == (0, f"Successfully logged out from {host}\n", "")


@pytest.mark.parametrize(("given", "why"), [
    ("UPPER:bad:port", "the port 'bad:port' is not a number from 1 to 65535"),
    ("127.0.0.1:", "the port '' is not a number from 1 to 65535"),
    ("127.0.0.1:99999", "the port '99999' is not a number from 1 to 65535"),
    ("host_name:5000", "not host[:port]"),
    ("user@host", "not host[:port]"),
    ("-bad.example.com", "not host[:port]"),
    ("[::1", "not host[:port]"),
    ("[nope]:5000", "not host[:port]"),
    ("http://", "give host[:port]"),
])
def test_login_and_logout_refuse_a_registry_that_is_not_host_port(
    given: str, why: str, clean_environ: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    message = f"pymodelkit: error: invalid registry {given!r}: {why}\n"
    login_args = ("login", "-u", "x", "--password-stdin", "--", given)
    assert _run(capsys, monkeypatch, *login_args, stdin="y\n") == (4, "", message)
    assert _run(capsys, monkeypatch, "logout", "--", given) == (4, "", message)
    assert not (clean_environ / "kitops").exists()


def test_registry_host_keeps_what_docker_keeps() -> None:
    assert registry_host("registry.example.com") == "registry.example.com"
    assert registry_host("https://Registry.Example.com:5000/v2/") == "Registry.Example.com:5000"
    assert registry_host("localhost:5000/team/model") == "localhost:5000"
    assert registry_host("[::1]:5000") == "[::1]:5000"
    assert registry_host("UPPER/x") == "UPPER"
    with pytest.raises(InvalidReferenceError) as info:
        registry_host("UPPER:bad:port")
    assert info.value.reference == "UPPER:bad:port"


def test_an_empty_password_on_stdin_is_a_usage_error(
    clean_environ: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(capsys, monkeypatch, "login", "127.0.0.1:9", "-u", "modelkit", "--password-stdin", stdin="")
    assert (code, out) == (2, "")
    assert err == ("pymodelkit: error: failed to read password from stdin: got empty string "
                   "(see 'pymodelkit login --help')\n")
    assert not (clean_environ / "kitops").exists()


def test_login_without_a_username_hints_at_u(
    registry_basic: TestRegistry, clean_environ: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = registry_basic.host
    code, out, err = _run(capsys, monkeypatch, "login", host, "--password-stdin", stdin=f"{registry_basic.password}\n")
    assert (code, out) == (12, "")
    assert err == (f"pymodelkit: error: cannot log in to {host} without a username: give -u/--username (a password "
                   "alone is sent as an identity token, and the registry refused it: 401 UNAUTHORIZED)\n")
    assert not _credentials(clean_environ).exists()


def test_logout_says_not_logged_in_when_nothing_was_stored(
    registry_basic: TestRegistry, clean_environ: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _run(capsys, monkeypatch, "logout", "127.0.0.1:9") == (0, "Not logged in to 127.0.0.1:9\n", "")
    assert not (clean_environ / "kitops").exists()
    host, username, password = registry_basic.host, registry_basic.username or "", registry_basic.password or ""
    assert _run(capsys, monkeypatch, "login", host, "-u", username, "--password-stdin", stdin=password)[0] == 0
    assert _run(capsys, monkeypatch, "logout", host) == (0, f"Successfully logged out from {host}\n", "")
    assert _credentials(clean_environ).read_bytes() == b'{\n\t"auths": {}\n}'
    assert _run(capsys, monkeypatch, "logout", host) == (0, f"Not logged in to {host}\n", "")
    assert _run(capsys, monkeypatch, "logout", "UPPER/x") == (0, "Not logged in to UPPER\n", "")
    assert _credentials(clean_environ).read_bytes() == b'{\n\t"auths": {}\n}'
