"""The signing commands' key handling and bad input: ``generate-key-pair`` and its password rules, and every refusal
as one line on stderr with its exit code (13 for keys, 14 for signatures, 2 for usage), before any registry is
asked."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pymodelkit.cli.main import main
from pymodelkit.signing.keys import generate_signing_key, load_signing_key, load_verification_key, write_key_pair

DATA = Path(__file__).parent / "data"
NOWHERE = "127.0.0.1:9/team/model:v1"  # the discard port: nothing may need to reach it


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_generate_key_pair_encrypts_with_the_environment_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "from-cosign")
    monkeypatch.setenv("PYMODELKIT_KEY_PASSWORD", "s3cret")  # wins over COSIGN_PASSWORD
    code, out, _ = _run(capsys, "generate-key-pair", "--output-key-prefix", tmp_path / "ci")
    assert code == 0
    assert out == (f"Private key written to {tmp_path / 'ci.key'} (encrypted, mode 0600)\n"
                   f"Public key written to {tmp_path / 'ci.pub'}\n")
    assert "s3cret" not in out
    key_file = tmp_path / "ci.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = load_signing_key(key_file, password=b"s3cret")
    assert load_verification_key(tmp_path / "ci.pub") == key.public_key()

    code, _, err = _run(capsys, "generate-key-pair", "--output-key-prefix", tmp_path / "ci")
    assert code == 13 and "exists already" in _line(err)


def test_generate_key_pair_unencrypted_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "generate-key-pair", "--output-key-prefix", tmp_path / "k")  # no password, no tty
    assert code == 2 and "--no-password" in err
    assert not (tmp_path / "k.key").exists()
    monkeypatch.setenv("PYMODELKIT_KEY_PASSWORD", "")
    code, _, err = _run(capsys, "generate-key-pair", "--output-key-prefix", tmp_path / "k")
    assert code == 2 and "the password is empty" in err
    monkeypatch.delenv("PYMODELKIT_KEY_PASSWORD")

    assert _run(capsys, "generate-key-pair", "--output-key-prefix", tmp_path / "k", "--no-password")[0] == 0
    assert (tmp_path / "k.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    monkeypatch.setenv("COSIGN_PASSWORD", "hello")
    assert _run(capsys, "generate-key-pair", "--output-key-prefix", tmp_path / "c", "--cosign-format")[0] == 0
    assert (tmp_path / "c.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert load_signing_key(tmp_path / "c.key", password=b"hello").public_key() == load_verification_key(
        tmp_path / "c.pub")


def test_bad_signing_keys_are_one_line_errors_with_exit_13(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_key_pair(generate_signing_key(), tmp_path / "enc", password=b"right")
    monkeypatch.setenv("PYMODELKIT_KEY_PASSWORD", "wrong")
    code, _, err = _run(capsys, "sign", NOWHERE, "--key", tmp_path / "enc.key")
    assert code == 13 and _line(err).startswith("pymodelkit: error: ") and str(tmp_path / "enc.key") in err
    assert "wrong" not in err.replace("wrong password", "")  # the password itself is never printed

    monkeypatch.delenv("PYMODELKIT_KEY_PASSWORD")
    code, _, err = _run(capsys, "sign", NOWHERE, "--key", tmp_path / "enc.key")  # encrypted, no password, no tty
    assert code == 13 and "set PYMODELKIT_KEY_PASSWORD" in _line(err)

    (tmp_path / "garbage.key").write_text("not a key\n")
    code, _, err = _run(capsys, "sign", NOWHERE, "--key", tmp_path / "garbage.key")
    assert code == 13 and "is not a PEM file" in _line(err)

    code, _, err = _run(capsys, "sign", NOWHERE, "--key", DATA / "cosign_invalidecp224.key")
    assert code == 13 and "unsupported key type" in _line(err)

    code, _, err = _run(capsys, "sign", NOWHERE, "--key", tmp_path / "missing.key")
    assert code == 13 and "cannot read key file" in _line(err)

    code, _, err = _run(capsys, "verify", NOWHERE, "--key", tmp_path / "garbage.key")
    assert code == 13 and "is not a PEM file" in _line(err)
    code, _, err = _run(capsys, "pull", NOWHERE, "--verify", tmp_path / "enc.key")  # a private key is no public key
    assert code == 13 and _line(err).startswith("pymodelkit: error: ")


def test_bad_references_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_key_pair(generate_signing_key(), tmp_path / "k", password=None)
    code, _, err = _run(capsys, "sign", "team/model:v1", "--key", tmp_path / "k.key")
    assert code == 4 and "registry is required when signing" in _line(err)
    code, _, err = _run(capsys, "verify", "team/model:v1", "--key", tmp_path / "k.pub")
    assert code == 14 and "cannot verify a local-only ModelKit" in _line(err)
    code, _, err = _run(capsys, "sign", NOWHERE, "--key", tmp_path / "k.key", "-a", "no-equals-sign")
    assert code == 2 and "is not key=value" in err
    code, _, err = _run(capsys, "sign", NOWHERE, "--key", tmp_path / "k.key", "--no-legacy")
    assert code == 2 and "--no-legacy needs --bundle" in err
    code, _, err = _run(capsys, "mlflow", "pack", "runs:/x/model", "-t", NOWHERE, "--sign", tmp_path / "k.key")
    assert code == 2 and "--sign needs --push" in err
