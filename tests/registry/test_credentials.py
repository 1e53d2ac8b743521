"""Credential sources, the default chain, Docker helpers, and kit's credentials.json written byte for byte."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pymodelkit.errors import AuthError
from pymodelkit.registry.credentials import (
    ChainCredentials,
    Credential,
    CredentialSource,
    DockerConfigCredentials,
    DotenvCredentials,
    EnvironmentCredentials,
    ExplicitCredentials,
    KitCredentials,
    default_credentials,
    remove_credential,
    server_address,
    store_credential,
)

REG = "registry.example.com:5000"
OTHER = "other.example.com"
SECRET = "s3cret-pw"
ALICE = Credential(username="alice", password=SECRET)
ALICE_AUTH = "YWxpY2U6czNjcmV0LXB3"  # base64("alice:s3cret-pw")

HELPER = f"""#!{sys.executable}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
store_path = os.path.join(here, "store.json")
verb, data = sys.argv[1], sys.stdin.read()
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), verb, data]) + "\\n")
store = json.load(open(store_path)) if os.path.exists(store_path) else {{}}
if verb == "get":
    if data in store:
        print(json.dumps(dict(ServerURL=data, **store[data])))
        sys.exit(0)
    print("credentials not found in native keychain")
    sys.exit(1)
if verb == "store":
    entry = json.loads(data)
    store[entry["ServerURL"]] = dict(Username=entry["Username"], Secret=entry["Secret"])
elif verb == "erase":
    if data not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    del store[data]
json.dump(store, open(store_path, "w"))
"""

BROKEN_HELPER = f"""#!{sys.executable}
import sys
sys.stderr.write("keychain is locked\\n")
sys.exit(3)
"""


@dataclass
class Helpers:
    """The fake ``docker-credential-test`` (and ``-broken``) on PATH, with its store and a log of its calls."""

    bin: Path

    def put(self, server: str, username: str, secret: str) -> None:
        path = self.bin / "store.json"
        store = json.loads(path.read_text()) if path.exists() else {}
        store[server] = {"Username": username, "Secret": secret}
        path.write_text(json.dumps(store))

    def stored(self) -> dict[str, dict[str, str]]:
        path = self.bin / "store.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def calls(self) -> list[list[str]]:
        path = self.bin / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker-credential-test", HELPER), ("docker-credential-broken", BROKEN_HELPER)):
        script = bin_dir / name
        script.write_text(text)
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return Helpers(bin_dir)


@pytest.fixture
def home(clean_environ: Path) -> Path:
    return clean_environ


def docker_config(home: Path, content: object) -> Path:
    path = home / ".docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def kit_file(home: Path, content: object) -> Path:
    path = home / "kitops" / "credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


# --- one contract, every source ------------------------------------------------------------------------------------


def _explicit(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    return ExplicitCredentials(ALICE)


def _env_pymodelkit(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    monkeypatch.setenv("PYMODELKIT_USERNAME", "alice")
    monkeypatch.setenv("PYMODELKIT_PASSWORD", SECRET)
    monkeypatch.setenv("PYMODELKIT_REGISTRY", REG)
    return EnvironmentCredentials()


def _env_jozu(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    monkeypatch.setenv("JOZU_USERNAME", "alice")
    monkeypatch.setenv("JOZU_PASSWORD", SECRET)
    monkeypatch.setenv("JOZU_REGISTRY", f"https://{REG}/")
    return EnvironmentCredentials()


def _dotenv(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    project = home / "project"
    project.mkdir()
    (project / ".env").write_text(f"JOZU_USERNAME=alice\nJOZU_PASSWORD='{SECRET}'\nJOZU_REGISTRY={REG}\n")
    monkeypatch.chdir(project)
    return DotenvCredentials()


def _kit(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    kit_file(home, {"auths": {REG: {"auth": ALICE_AUTH}}})
    return KitCredentials()


def _docker_inline(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    docker_config(home, {"auths": {f"https://{REG}/v2/": {"auth": ALICE_AUTH}}})
    return DockerConfigCredentials()


def _docker_cred_helper(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    helpers.put(REG, "alice", SECRET)
    docker_config(home, {"credHelpers": {REG: "test"}})
    return DockerConfigCredentials()


def _docker_creds_store(home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers) -> CredentialSource:
    helpers.put(REG, "alice", SECRET)
    docker_config(home, {"credsStore": "test", "auths": {REG: {}}})
    return DockerConfigCredentials()


SOURCES: dict[str, Callable[[Path, pytest.MonkeyPatch, Helpers], CredentialSource]] = {
    "explicit": _explicit,
    "env-pymodelkit": _env_pymodelkit,
    "env-jozu": _env_jozu,
    "dotenv": _dotenv,
    "kit": _kit,
    "docker-inline": _docker_inline,
    "docker-credHelpers": _docker_cred_helper,
    "docker-credsStore": _docker_creds_store,
}


@pytest.mark.parametrize("name", SOURCES)
def test_source_knows_its_registry(
    name: str, home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = SOURCES[name](home, monkeypatch, helpers)
    assert isinstance(source, CredentialSource)
    assert source.get_credential(REG) == ALICE
    assert SECRET not in repr(source)
    assert SECRET not in caplog.text


@pytest.mark.parametrize("name", [n for n in SOURCES if n != "explicit"])
def test_source_knows_nothing_of_another_registry(
    name: str, home: Path, monkeypatch: pytest.MonkeyPatch, helpers: Helpers
) -> None:
    source = SOURCES[name](home, monkeypatch, helpers)
    assert source.get_credential(OTHER) is None


@pytest.mark.parametrize(
    "name", ["env-pymodelkit", "dotenv", "kit", "docker-inline", "docker-credHelpers", "docker-credsStore"]
)
def test_source_knows_nothing_when_unconfigured(name: str, home: Path) -> None:
    sources: dict[str, CredentialSource] = {
        "env-pymodelkit": EnvironmentCredentials(),
        "dotenv": DotenvCredentials(),
        "kit": KitCredentials(),
    }
    assert sources.get(name, DockerConfigCredentials()).get_credential(REG) is None


# --- Credential ----------------------------------------------------------------------------------------------------


def test_credential_repr_hides_secrets() -> None:
    credential = Credential(username="alice", password=SECRET, identity_token="idtok-123", registry_token="regtok-456")
    for text in (repr(credential), str(credential), repr(ExplicitCredentials(credential))):
        assert text.endswith(
            "Credential(username='alice', password=<redacted>, identity_token=<redacted>, registry_token=<redacted>)"
            + (")" if text.startswith("Explicit") else "")
        )
        assert SECRET not in text and "idtok" not in text and "regtok" not in text
    assert repr(Credential(username="bob")) == "Credential(username='bob')"


def test_server_address_uses_docker_hubs_legacy_key() -> None:
    assert server_address("docker.io") == "https://index.docker.io/v1/"
    assert server_address("registry-1.docker.io") == "https://index.docker.io/v1/"
    assert server_address(REG) == REG


# --- environment and .env ------------------------------------------------------------------------------------------


def test_environment_prefers_pymodelkit_over_jozu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOZU_USERNAME", "jozu")
    monkeypatch.setenv("JOZU_PASSWORD", "jozu-pw")
    monkeypatch.setenv("PYMODELKIT_USERNAME", "alice")
    monkeypatch.setenv("PYMODELKIT_PASSWORD", SECRET)
    assert EnvironmentCredentials().get_credential(REG) == ALICE
    # limited to another registry, PYMODELKIT_* step aside and JOZU_* (unlimited) answer
    monkeypatch.setenv("PYMODELKIT_REGISTRY", OTHER)
    assert EnvironmentCredentials().get_credential(REG) == Credential(username="jozu", password="jozu-pw")
    assert EnvironmentCredentials().get_credential(OTHER) == ALICE


@pytest.mark.parametrize(("present", "missing"), [("USERNAME", "PASSWORD"), ("PASSWORD", "USERNAME")])
def test_environment_with_half_a_pair_raises(monkeypatch: pytest.MonkeyPatch, present: str, missing: str) -> None:
    monkeypatch.setenv(f"PYMODELKIT_{present}", SECRET)
    with pytest.raises(AuthError) as info:
        EnvironmentCredentials().get_credential(REG)
    assert str(info.value) == (
        f"PYMODELKIT_{present} is set in the environment but PYMODELKIT_{missing} is not: set both or neither"
    )
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("present", ["USERNAME", "PASSWORD"])
def test_half_a_jozu_pair_is_ignored_as_pykitops_recipes_set_it(monkeypatch: pytest.MonkeyPatch, present: str) -> None:
    # pykitops' recipes put JOZU_PASSWORD in .env and pass the username to ModelKitManager: not an error.
    monkeypatch.setenv(f"JOZU_{present}", SECRET)
    assert EnvironmentCredentials().get_credential(REG) is None


def test_dotenv_syntax(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".env").write_text(
        "# a comment\n"
        "\n"
        "export PYMODELKIT_USERNAME = alice   # trailing comment\n"
        'PYMODELKIT_PASSWORD="pa ss\\"word\\n#not-a-comment"\n'
        "OTHER_VARIABLE=ignored\n"
    )
    monkeypatch.chdir(home)
    expected = Credential(username="alice", password='pa ss"word\n#not-a-comment')
    assert DotenvCredentials().get_credential(REG) == expected
    assert "PYMODELKIT_USERNAME" not in os.environ  # read, never loaded into the process environment
    assert "OTHER_VARIABLE" not in os.environ


def test_dotenv_single_quotes_are_literal_and_may_span_lines(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".env").write_text("JOZU_USERNAME=alice\nJOZU_PASSWORD='a\\nb $X #c\nsecond line'\n")
    monkeypatch.chdir(home)
    assert DotenvCredentials().get_credential(REG) == Credential(username="alice", password="a\\nb $X #c\nsecond line")


def test_dotenv_can_be_disabled(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".env").write_text("JOZU_USERNAME=alice\nJOZU_PASSWORD=pw\n")
    monkeypatch.chdir(home)
    monkeypatch.setenv("PYTHON_DOTENV_DISABLED", "1")
    assert DotenvCredentials().get_credential(REG) is None


def test_real_environment_beats_dotenv(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pykitops lets .env override the environment (load_dotenv(override=True)); we do not: argument > env > file.
    (home / ".env").write_text("JOZU_USERNAME=from-file\nJOZU_PASSWORD=file-pw\n")
    monkeypatch.chdir(home)
    monkeypatch.setenv("JOZU_USERNAME", "alice")
    monkeypatch.setenv("JOZU_PASSWORD", SECRET)
    assert default_credentials().get_credential(REG) == ALICE
    monkeypatch.delenv("JOZU_USERNAME")
    monkeypatch.delenv("JOZU_PASSWORD")
    assert default_credentials().get_credential(REG) == Credential(username="from-file", password="file-pw")


# --- Docker config: key matching, entry fields, helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com/v2/", "registry.example.com"),
        ("http://registry.example.com", "registry.example.com"),
        ("https://Registry.Example.com:5000/", "registry.example.com:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("https://index.docker.io/v1/", "registry-1.docker.io"),
        ("docker.io", "docker.io"),
    ],
)
def test_docker_keys_match_as_docker_matches_them(home: Path, key: str, registry: str) -> None:
    docker_config(home, {"auths": {key: {"auth": ALICE_AUTH}}})
    assert DockerConfigCredentials().get_credential(registry) == ALICE


def test_docker_key_with_another_port_does_not_match(home: Path) -> None:
    docker_config(home, {"auths": {"registry.example.com:5001": {"auth": ALICE_AUTH}}})
    assert DockerConfigCredentials().get_credential(REG) is None


def test_docker_entry_fields(home: Path) -> None:
    docker_config(
        home,
        {
            "auths": {
                "a.example": {"identitytoken": "refresh-me"},
                "b.example": {"registrytoken": "bearer-me"},
                "c.example": {"username": "legacy", "password": "old"},
                "d.example": {"auth": "dXNlcjpwYTpzczp3b3Jk"},  # user:pa:ss:word, split on the first colon
                "e.example": {},
            }
        },
    )
    source = DockerConfigCredentials()
    assert source.get_credential("a.example") == Credential(identity_token="refresh-me")
    assert source.get_credential("b.example") == Credential(registry_token="bearer-me")
    assert source.get_credential("c.example") == Credential(username="legacy", password="old")
    assert source.get_credential("d.example") == Credential(username="user", password="pa:ss:word")
    assert source.get_credential("e.example") is None


def test_docker_config_in_home_when_docker_config_unset(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_CONFIG")
    docker_config(home, {"auths": {REG: {"auth": ALICE_AUTH}}})
    assert DockerConfigCredentials().get_credential(REG) == ALICE


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        ('["a"]', "is not a Docker config file (expected an object with an 'auths' object)"),
        (
            '{"auths": {"registry.example.com:5000": {"auth": "%%%%"}}}',
            ": the 'auth' field for registry.example.com:5000 is not valid base64",
        ),
        # base64 of the secret alone: must not be echoed back
        (
            '{"auths": {"registry.example.com:5000": {"auth": "czNjcmV0LXB3"}}}',
            ": the 'auth' field for registry.example.com:5000 is not base64 of 'username:password'",
        ),
    ],
)
def test_broken_docker_config_raises_naming_the_file(home: Path, content: str, message: str) -> None:
    path = home / ".docker" / "config.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(AuthError) as info:
        DockerConfigCredentials().get_credential(REG)
    assert str(info.value) == f"{path}{'' if message.startswith(':') else ' '}{message}"
    assert SECRET not in str(info.value)


def test_helper_precedence_cred_helpers_then_creds_store_then_inline(home: Path, helpers: Helpers) -> None:
    helpers.put(REG, "from-helper", "helper-pw")
    docker_config(
        home,
        {
            "credHelpers": {REG: "test"},
            "credsStore": "broken",
            "auths": {REG: {"auth": ALICE_AUTH}, OTHER: {"auth": ALICE_AUTH}},
        },
    )
    source = DockerConfigCredentials()
    assert source.get_credential(REG) == Credential(username="from-helper", password="helper-pw")
    # OTHER has no credHelpers entry: credsStore ("broken") is asked, and its failure is an error, not "anonymous"
    with pytest.raises(AuthError) as info:
        source.get_credential(OTHER)
    assert str(info.value) == (
        "credential helper docker-credential-broken failed to get credentials for other.example.com "
        "(exit status 3): keychain is locked"
    )


def test_helper_not_found_falls_back_to_inline_entry(home: Path, helpers: Helpers) -> None:
    docker_config(home, {"credsStore": "test", "auths": {REG: {"auth": ALICE_AUTH}}})
    assert DockerConfigCredentials().get_credential(REG) == ALICE
    assert helpers.calls() == [["docker-credential-test", "get", REG]]


def test_helper_token_username_means_identity_token(home: Path, helpers: Helpers) -> None:
    helpers.put("https://index.docker.io/v1/", "<token>", "refresh-token-value")
    docker_config(home, {"credsStore": "test"})
    assert DockerConfigCredentials().get_credential("docker.io") == Credential(identity_token="refresh-token-value")
    assert helpers.calls() == [["docker-credential-test", "get", "https://index.docker.io/v1/"]]


def test_missing_helper_is_an_error_naming_it(home: Path, helpers: Helpers) -> None:
    docker_config(home, {"credsStore": "desktop"})
    with pytest.raises(AuthError) as info:
        DockerConfigCredentials().get_credential(REG)
    assert str(info.value) == (
        "credential helper docker-credential-desktop is not on PATH (named in a Docker or kit config file)"
    )


# --- the chain -----------------------------------------------------------------------------------------------------


def test_chain_order_explicit_env_dotenv_kit_docker(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker_config(home, {"auths": {REG: {"auth": "ZG9ja2VyOmQ="}}})  # docker:d
    assert default_credentials().get_credential(REG) == Credential(username="docker", password="d")
    kit_file(home, {"auths": {REG: {"auth": "a2l0Oms="}}})  # kit:k
    assert default_credentials().get_credential(REG) == Credential(username="kit", password="k")
    (home / ".env").write_text("PYMODELKIT_USERNAME=dotenv\nPYMODELKIT_PASSWORD=e\n")
    monkeypatch.chdir(home)
    assert default_credentials().get_credential(REG) == Credential(username="dotenv", password="e")
    monkeypatch.setenv("PYMODELKIT_USERNAME", "env")
    monkeypatch.setenv("PYMODELKIT_PASSWORD", "v")
    assert default_credentials().get_credential(REG) == Credential(username="env", password="v")
    assert default_credentials(username="arg", password="a").get_credential(REG) == Credential("arg", "a")
    assert default_credentials(password="token-only").get_credential(REG) == Credential(identity_token="token-only")
    assert default_credentials().get_credential(OTHER) == Credential(username="env", password="v")


def test_chain_stops_at_a_broken_source(home: Path) -> None:
    path = kit_file(home, {})
    path.write_text("{")
    docker_config(home, {"auths": {REG: {"auth": ALICE_AUTH}}})
    with pytest.raises(AuthError) as info:
        default_credentials().get_credential(REG)
    assert str(info.value).startswith(f"{path} is not valid JSON")


def test_chain_is_anonymous_when_nobody_knows(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pymodelkit.registry.credentials")
    assert default_credentials().get_credential(REG) is None
    assert caplog.messages == [f"no credentials for {REG}: anonymous"]


def test_chain_logs_the_source_never_the_secret(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pymodelkit.registry.credentials")
    chain = ChainCredentials([KitCredentials(), ExplicitCredentials(ALICE)])
    assert chain.get_credential(REG) == ALICE
    assert caplog.messages == [
        f"credentials for {REG} from ExplicitCredentials(Credential(username='alice', password=<redacted>))"
    ]


def test_username_without_password_is_refused() -> None:
    with pytest.raises(AuthError) as info:
        default_credentials(username="alice")
    assert str(info.value) == "a username was given without a password"


# --- writing kit's credentials.json --------------------------------------------------------------------------------


def test_store_writes_kits_exact_bytes_mode_0600_in_a_0700_directory(home: Path) -> None:
    path = store_credential("registry.example.com", Credential(username="user", password="pass"))
    assert path == home / "kitops" / "credentials.json"
    assert path.read_bytes() == (
        b'{\n\t"auths": {\n\t\t"registry.example.com": {\n\t\t\t"auth": "dXNlcjpwYXNz"\n\t\t}\n\t}\n}'
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.json"]  # no temp file left


def test_store_keeps_other_entries_and_unknown_keys_sorted_as_go_writes_them(home: Path) -> None:
    kit_file(home, {})
    path = home / "kitops" / "credentials.json"
    path.write_text(
        '{"zeta": {"b": [1, 2.50, "x<y&z"], "a": null},\n'
        ' "auths": {"z.example": {"auth": "eDp5", "email": "e@x"}, "https://index.docker.io/v1/": {"auth": "YTpi"}},\n'
        ' "credsStore": "",\n'
        ' "alpha": "\\u00e9"}'
    )
    store_credential("docker.io", Credential(username="user", password="pass"))
    store_credential("m.example", Credential(password="", identity_token="refresh"))
    assert path.read_bytes() == (
        b"{\n"
        b'\t"alpha": "\\u00e9",\n'
        b'\t"auths": {\n'
        b'\t\t"https://index.docker.io/v1/": {\n\t\t\t"auth": "dXNlcjpwYXNz"\n\t\t},\n'
        b'\t\t"m.example": {\n\t\t\t"identitytoken": "refresh"\n\t\t},\n'
        b'\t\t"z.example": {\n\t\t\t"auth": "eDp5",\n\t\t\t"email": "e@x"\n\t\t}\n'
        b"\t},\n"
        b'\t"zeta": {\n\t\t"b": [\n\t\t\t1,\n\t\t\t2.50,\n\t\t\t"x\\u003cy\\u0026z"\n\t\t],\n\t\t"a": null\n\t}\n'
        b"}"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KitCredentials().get_credential("docker.io") == Credential(username="user", password="pass")
    assert KitCredentials().get_credential("m.example") == Credential(identity_token="refresh")


def test_store_refuses_a_username_with_a_colon(home: Path) -> None:
    with pytest.raises(AuthError) as info:
        store_credential(REG, Credential(username="a:b", password=SECRET))
    assert str(info.value) == "a username must not contain ':'"
    assert not (home / "kitops" / "credentials.json").exists()


def test_remove_deletes_every_key_for_the_host_and_reports_it(home: Path) -> None:
    path = kit_file(home, {"auths": {REG: {"auth": ALICE_AUTH}, f"https://{REG}/": {"auth": ALICE_AUTH}, "k": {}}})
    assert remove_credential(REG) is True
    assert path.read_bytes() == b'{\n\t"auths": {\n\t\t"k": {}\n\t}\n}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.stat().st_mtime_ns
    assert remove_credential(REG) is False
    assert path.stat().st_mtime_ns == before


def test_remove_without_a_file_is_false_and_creates_nothing(home: Path) -> None:
    assert remove_credential(REG) is False
    assert not (home / "kitops").exists()


def test_store_and_remove_go_to_the_helper_the_kit_file_names(home: Path, helpers: Helpers) -> None:
    path = kit_file(home, {"auths": {}, "credsStore": "test"})
    before = path.read_bytes()
    store_credential(REG, ALICE)
    store_credential("docker.io", Credential(identity_token="refresh"))
    assert path.read_bytes() == before
    assert helpers.stored() == {
        REG: {"Username": "alice", "Secret": SECRET},
        "https://index.docker.io/v1/": {"Username": "<token>", "Secret": "refresh"},
    }
    assert KitCredentials().get_credential(REG) == ALICE
    assert remove_credential(REG) is True
    assert remove_credential(REG) is False
    assert list(helpers.stored()) == ["https://index.docker.io/v1/"]
