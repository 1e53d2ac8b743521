"""The signature policy file: parsing, longest-prefix matching, errors; and ``pull``/``unpack`` obeying it against a
real registry without any key on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.errors import ModelKitError
from pymodelkit.oci.reference import parse_reference
from pymodelkit.signing.keys import generate_signing_key, write_key_pair
from pymodelkit.signing.policy import Policy, load_policy, policy_verifier
from tests.support.registry import TestRegistry
from tests.support.trees import write_source_tree

KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: p\nmodel:\n  name: m\n  path: model\ncode:\n  - path: src\n" \
    "datasets:\n  - name: train\n    path: data/train.csv\n"


def _ref(text: str) -> pymodelkit.Reference:
    return parse_reference(text)[0]


def _policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Policy:
    path = tmp_path / name
    path.write_text(text)
    policy = load_policy(path)
    assert policy is not None
    return policy


def test_the_longest_prefix_on_whole_components_wins(tmp_path: Path) -> None:
    policy = _policy(tmp_path, """
version: 1
repositories:
  "*": insecureAcceptAnything
  "r.example.com": keys/registry.pub
  "r.example.com/team": [keys/team.pub, /abs/ci.pub]
  "r.example.com/team/scratch": none
""")
    def keys_of(text: str) -> tuple[str, tuple[Path, ...] | None] | None:
        rule = policy.rule_for(_ref(text))
        return None if rule is None else (rule.prefix, rule.keys)

    team = (tmp_path / "keys" / "team.pub", Path("/abs/ci.pub"))
    assert keys_of("r.example.com/team/model:v1") == ("r.example.com/team", team)
    assert keys_of("r.example.com/team/deep/model:v1") == ("r.example.com/team", team)
    assert keys_of("r.example.com/teammate/model:v1") == ("r.example.com", (tmp_path / "keys" / "registry.pub",))
    assert keys_of("r.example.com/team/scratch/x:v1") == ("r.example.com/team/scratch", None)
    assert keys_of("other.example.com/team/model:v1") == ("*", None)
    assert keys_of("team/model:v1") is None  # local references are never matched
    assert policy_verifier(_ref("other.example.com/x:v1"), policy) is None
    assert policy_verifier(_ref("r.example.com/team/scratch/x:v1"), policy) is None


def test_other_spellings_of_a_registry_host_are_matched_as_that_host(tmp_path: Path) -> None:
    policy = _policy(tmp_path, """
repositories:
  "*": insecureAcceptAnything
  "registry.example.com/team": team.pub
  "Docker.io/acme": acme.pub
""")
    for text in ("registry.example.com/team/m:v1", "Registry.Example.COM/team/m:v1",
                 "registry.example.com:443/team/m:v1", "REGISTRY.example.com:443/team/m@sha256:" + "a" * 64):
        rule = policy.rule_for(_ref(text))
        assert rule is not None and rule.prefix == "registry.example.com/team", text
    for text in ("docker.io/acme/m:v1", "index.docker.io/acme/m:v1", "registry-1.docker.io/acme/m:v1"):
        rule = policy.rule_for(_ref(text))
        assert rule is not None and rule.prefix == "docker.io/acme", text
    assert policy.rule_for(_ref("registry.example.com:5000/team/m:v1")).prefix == "*"  # type: ignore[union-attr]


def test_without_a_default_entry_unlisted_references_need_nothing(tmp_path: Path) -> None:
    policy = _policy(tmp_path, json.dumps({"repositories": {"r.example.com/team": ["team.pub"]}}), "policy.json")
    assert policy.rule_for(_ref("r.example.com/other:v1")) is None
    assert policy.keys_for(_ref("r.example.com/other:v1")) is None


@pytest.mark.parametrize(("text", "problem"), [
    ("repositories: [a, b]\n", "'repositories' must map prefixes"),
    ("version: 2\nrepositories: {}\n", "version 2 is not supported"),
    ("repos: {}\n", "unknown key 'repos'"),
    ("repositories:\n  r.example.com: []\n", "'r.example.com' must name public key files or insecureAcceptAnything"),
    ("repositories:\n  r.example.com: 7\n", "must name public key files"),
    ("repositories: {\n", "not YAML"),
    ("- just a list\n", "expected a mapping"),
])
def test_an_invalid_policy_is_a_one_line_error_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ModelKitError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"invalid signature policy {path}: ")
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_the_default_file_is_optional_but_an_explicit_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert load_policy() is None
    default = tmp_path / "config" / "pymodelkit" / "policy.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("repositories:\n  '*': none\n")
    loaded = load_policy()
    assert loaded is not None and loaded.path == default
    monkeypatch.setenv("PYMODELKIT_POLICY", str(tmp_path / "missing.yaml"))
    with pytest.raises(ModelKitError, match=r"signature policy .*missing\.yaml not found"):
        load_policy()


def test_a_missing_key_file_fails_only_the_references_that_need_it(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "repositories:\n  r.example.com/team: nowhere.pub\n")
    with pytest.raises(pymodelkit.SigningKeyError, match=r"nowhere\.pub"):
        policy_verifier(_ref("r.example.com/team/m:v1"), policy)
    assert policy_verifier(_ref("r.example.com/other/m:v1"), policy) is None


def test_pull_and_unpack_obey_the_policy(
    registry: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = registry.host.rsplit(":", 1)[1]
    host = f"localhost:{port}"
    key = generate_signing_key()
    (tmp_path / "policy").mkdir()
    write_key_pair(key, tmp_path / "policy" / "team", password=None)
    policy_path = tmp_path / "policy" / "policy.yaml"
    policy_path.write_text(f'repositories:\n  "*": insecureAcceptAnything\n  "{host}/team": [team.pub]\n')
    monkeypatch.setenv("PYMODELKIT_POLICY", str(policy_path))

    suffix = tmp_path.name[-12:].replace("_", "-").lower().strip("-")
    required, free = f"{host}/team/model-{suffix}:v1", f"{host}/other/model-{suffix}:v1"
    src = write_source_tree(tmp_path, KITFILE, weights=3000)
    store = pymodelkit.LocalStore(tmp_path / "pack-home")
    for ref in (required, free):
        pymodelkit.pack(src, tag=ref, store=store)
        pymodelkit.push(ref, store=store)

    home = tmp_path / "home"
    assert main(["--config", str(home), "pull", required]) == 14
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pymodelkit: error: no signatures found for {required.rsplit(':', 1)[0]}@sha256:")
    assert err.endswith(f"; policy {policy_path} requires a signature for {host}/team")
    assert pymodelkit.LocalStore(home).list_modelkits() == []
    assert main(["--config", str(home), "unpack", required, "-d", str(tmp_path / "out")]) == 14
    assert not (tmp_path / "out").exists()

    assert main(["--config", str(home), "pull", free]) == 0  # another prefix: no signature needed

    pymodelkit.sign(required, key)
    assert main(["--config", str(home), "pull", required]) == 0
    assert main(["--config", str(home), "unpack", required, "-d", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model" / "weights.bin").is_file()
    # an explicit --verify replaces the policy for that call
    other = generate_signing_key()
    write_key_pair(other, tmp_path / "other", password=None)
    capsys.readouterr()
    assert main(["--config", str(home), "pull", required, "--verify", str(tmp_path / "other.pub")]) == 14
    assert "policy" not in capsys.readouterr().err
