"""login/logout against the real registry (Basic and token), the bytes saved, and the CLI commands."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pymodelkit.cli.auth import login_command, logout_command
from pymodelkit.cli.context import CliState
from pymodelkit.cli.main import EXIT_CODES, _kit_spellings
from pymodelkit.errors import AuthError, RegistryError
from pymodelkit.registry.auth import SCOPES_EXTENSION, RegistryAuth
from pymodelkit.registry.credentials import Credential, default_credentials
from pymodelkit.registry.login import login, logout
from tests.support.registry import TestRegistry


def _b64(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _expected_file(host: str, entry: str) -> bytes:
    return ('{\n\t"auths": {\n\t\t"' + host + '": {\n\t\t\t' + entry + "\n\t\t}\n\t}\n}").encode()


def _creds(reg: TestRegistry) -> tuple[str, str]:
    assert reg.username and reg.password
    return reg.username, reg.password


def test_login_checks_the_credential_then_saves_it_as_kit_does(
    registry_basic: TestRegistry, clean_environ: Path
) -> None:
    username, password = _creds(registry_basic)
    login(registry_basic.host, username, password)  # loopback over http: https is tried first and fails
    path = clean_environ / "kitops" / "credentials.json"
    assert path.read_bytes() == _expected_file(registry_basic.host, f'"auth": "{_b64(username, password)}"')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the saved credential is what the default chain now gives, and it works
    assert default_credentials().get_credential(registry_basic.host) == Credential(username, password)
    auth = RegistryAuth(registry_basic.host, default_credentials())
    with httpx.Client(auth=auth, trust_env=False) as client:
        response = client.get(f"{registry_basic.url}/v2/", extensions={SCOPES_EXTENSION: ()})
    assert response.status_code == 200


def test_login_with_a_wrong_password_fails_and_saves_nothing(
    registry_basic: TestRegistry, clean_environ: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        login(registry_basic.host, "modelkit", "wrong-password-123")
    host, url = registry_basic.host, registry_basic.url
    assert str(info.value) == (
        f"cannot log in to {host}: {host} refused the username and password "
        f"(401 UNAUTHORIZED: authentication required) [GET {url}/v2/]"
    )
    assert (info.value.status, info.value.code) == (401, "UNAUTHORIZED")
    assert not (clean_environ / "kitops" / "credentials.json").exists()
    assert "wrong-password-123" not in caplog.text


def test_login_to_a_token_registry(registry_token: TestRegistry, clean_environ: Path) -> None:
    username, password = _creds(registry_token)
    login(registry_token.host, username, password)
    assert registry_token.token_server is not None
    assert [(r.method, r.grant, r.subject, r.status) for r in registry_token.token_server.requests] == [
        ("GET", "basic", username, 200)
    ]
    path = clean_environ / "kitops" / "credentials.json"
    assert path.read_bytes() == _expected_file(registry_token.host, f'"auth": "{_b64(username, password)}"')


def test_login_to_a_token_registry_with_a_wrong_password(registry_token: TestRegistry, clean_environ: Path) -> None:
    with pytest.raises(AuthError) as info:
        login(registry_token.host, "modelkit", "nope-nope")
    assert str(info.value).startswith(
        f"cannot log in to {registry_token.host}: {registry_token.host}: the token server refused access (no scope) "
        "(401 UNAUTHORIZED: authentication required) [GET "
    )
    assert "nope-nope" not in str(info.value)
    assert not (clean_environ / "kitops").exists()


def test_login_with_a_token_only_saves_an_identity_token(registry_token: TestRegistry, clean_environ: Path) -> None:
    server = registry_token.token_server
    assert server is not None
    refresh = server.issue_refresh_token(registry_token.username or "")
    login(registry_token.host, "", refresh)
    assert [(r.method, r.grant, r.client_id) for r in server.requests] == [("POST", "refresh_token", "pymodelkit")]
    path = clean_environ / "kitops" / "credentials.json"
    assert path.read_bytes() == _expected_file(registry_token.host, f'"identitytoken": "{refresh}"')


def test_login_https_only_to_a_plain_http_registry_is_a_connection_error(
    registry_basic: TestRegistry, clean_environ: Path
) -> None:
    username, password = _creds(registry_basic)
    with pytest.raises(RegistryError) as info:
        login(registry_basic.host, username, password, plain_http=False)
    assert not isinstance(info.value, AuthError)
    assert info.value.status is None
    assert str(info.value).startswith(f"cannot reach registry {registry_basic.host}: ")
    assert not (clean_environ / "kitops").exists()


def test_login_refuses_bad_input_without_asking_the_registry() -> None:
    with pytest.raises(AuthError) as info:
        login("registry.invalid", "a:b", "pw")
    assert str(info.value) == "cannot log in to registry.invalid: a username must not contain ':'"
    with pytest.raises(AuthError) as info:
        login("registry.invalid", "a", "")
    assert str(info.value) == "cannot log in to registry.invalid: a password or token is required"


def test_logout_removes_the_credential_once(registry_basic: TestRegistry, clean_environ: Path) -> None:
    username, password = _creds(registry_basic)
    login(registry_basic.host, username, password, plain_http=True)
    assert logout(registry_basic.host) is True
    path = clean_environ / "kitops" / "credentials.json"
    assert path.read_bytes() == b'{\n\t"auths": {}\n}'
    assert logout(registry_basic.host) is False
    assert default_credentials().get_credential(registry_basic.host) is None


# --- the CLI -------------------------------------------------------------------------------------------------------


def test_cli_login_with_password_stdin_and_logout(registry_basic: TestRegistry, tmp_path: Path) -> None:
    username, password = _creds(registry_basic)
    state = CliState(home=tmp_path / "kit-home", verbose=0, quiet=False)
    runner = CliRunner()
    result = runner.invoke(
        login_command, [registry_basic.host, "-u", username, "--password-stdin"], input=f"{password}\n", obj=state
    )
    assert (result.exit_code, result.stdout, result.stderr) == (0, "Log in successful\n", "")
    path = tmp_path / "kit-home" / "credentials.json"
    assert path.read_bytes() == _expected_file(registry_basic.host, f'"auth": "{_b64(username, password)}"')
    result = runner.invoke(logout_command, [registry_basic.host], obj=state)
    assert (result.exit_code, result.stdout) == (0, f"Successfully logged out from {registry_basic.host}\n")
    assert path.read_bytes() == b'{\n\t"auths": {}\n}'


def test_cli_password_flag_warns(registry_basic: TestRegistry, clean_environ: Path) -> None:
    username, password = _creds(registry_basic)
    result = CliRunner().invoke(login_command, [registry_basic.host, "-u", username, "-p", password])
    assert result.exit_code == 0
    assert result.stdout == "Log in successful\n"
    assert result.stderr == ("Warning: Using --password via CLI is insecure. Consider using --password-stdin instead\n")
    assert (clean_environ / "kitops" / "credentials.json").exists()


def test_cli_wrong_password_is_an_auth_error(registry_basic: TestRegistry, clean_environ: Path) -> None:
    result = CliRunner().invoke(
        login_command, [registry_basic.host, "-u", "modelkit", "--password-stdin"], input="bad-password\n"
    )
    assert isinstance(result.exception, AuthError)
    assert dict(EXIT_CODES)[AuthError] == 12
    assert str(result.exception).startswith(f"cannot log in to {registry_basic.host}: ")
    assert "bad-password" not in result.output and "bad-password" not in str(result.exception)
    assert not (clean_environ / "kitops").exists()


def test_cli_password_and_password_stdin_conflict() -> None:
    result = CliRunner().invoke(login_command, ["registry.invalid", "-u", "a", "-p", "x", "--password-stdin"])
    assert result.exit_code == 2
    assert "cannot use both --password and --password-stdin" in result.stderr


def test_cli_without_a_password_off_a_terminal_is_a_usage_error() -> None:
    result = CliRunner().invoke(login_command, ["registry.invalid", "-u", "a"], input="")
    assert result.exit_code == 2
    assert "Error: attempting to read input from non-terminal: use -p or --password-stdin" in result.stderr


def test_cli_empty_password_stdin_is_a_usage_error() -> None:
    result = CliRunner().invoke(login_command, ["registry.invalid", "-u", "a", "--password-stdin"], input="  \n")
    assert result.exit_code == 2
    assert "Error: failed to read password from stdin: got empty string" in result.stderr


def test_cli_plain_http_and_tls_verify_flags(registry_basic: TestRegistry, clean_environ: Path) -> None:
    username, password = _creds(registry_basic)
    # kit's spelling, as the CLI's entry point rewrites it for every command (login included)
    given = [registry_basic.host, "-u", username, "--password-stdin", "--plain-http", "--tls-verify=false"]
    args = _kit_spellings(given)
    assert args[-1] == "--no-tls-verify"
    result = CliRunner().invoke(login_command, args, input=password)
    assert (result.exit_code, result.stdout) == (0, "Log in successful\n")
    assert (clean_environ / "kitops" / "credentials.json").exists()
