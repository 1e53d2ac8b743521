"""kit's network TLS flags on the CLI: ``--tls-cert`` (repeatable or comma-separated extra CAs), ``--cert``/``--key``
(mutual TLS) and ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY`` overriding them, against a real registry behind a TLS
terminator; files that are not what their flag needs, and ``--plain-http``, which uses none of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymodelkit.cli.main import main
from tests.support.registry import TestRegistry
from tests.support.tlsfront import RelativeUrlRegistry, TestPki, tls_front

pytestmark = pytest.mark.integration

KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: tls\nmodel:\n  name: m\n  path: model.bin\n"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A plain-HTTP registry answering relative upload Locations (pushes work through the TLS front)."""
    process = RelativeUrlRegistry(tmp_path_factory.mktemp("tls-registry"))
    process.start()
    try:
        yield "127.0.0.1", process.port
    finally:
        process.stop()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _packed(tmp_path: Path, capsys: pytest.CaptureFixture[str], tag: str) -> str:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(os.urandom(4096))
    (src / "Kitfile").write_text(KITFILE)
    code, out, err = _run(capsys, "pack", str(src), "-t", tag)
    assert code == 0, err
    return out.split()[-1]


def _stored_files(home: Path) -> list[Path]:
    return [p for p in (home / "storage").rglob("*") if p.is_file()] if (home / "storage").exists() else []


def test_push_and_pull_trust_the_registry_through_tls_cert(
    upstream: tuple[str, int], pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = _packed(tmp_path, capsys, "tls/a:v1")
    other = tmp_path / "other-home"
    with tls_front(upstream, pki.server()) as front:
        ref = f"{front}/tls/a:v1"
        code, out, err = _run(capsys, "push", "tls/a:v1", ref)
        assert code == 11 and out == ""
        assert len(err.splitlines()) == 1 and "CERTIFICATE_VERIFY_FAILED" in err and front in err

        code, out, err = _run(capsys, "push", "--tls-cert", str(pki.ca), "tls/a:v1", ref)
        assert code == 0, err
        assert out == f"Pushed {digest}\n"

        code, out, err = _run(capsys, "--config", str(other), "pull", ref)
        assert code == 11 and out == ""
        assert len(err.splitlines()) == 1 and "CERTIFICATE_VERIFY_FAILED" in err
        assert _stored_files(other) == []

        code, out, err = _run(capsys, "--config", str(other), "pull", "--tls-cert", str(pki.ca), ref)
        assert code == 0, err
        assert out == f"Pulled {digest}\n"
    code, out, _ = _run(capsys, "--config", str(other), "inspect", ref)
    assert code == 0 and digest in out


def test_the_right_ca_among_several_tls_certs_is_enough(
    upstream: tuple[str, int], pki: TestPki, other_pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = _packed(tmp_path, capsys, "tls/b:v1")
    with tls_front(upstream, pki.server()) as front:
        ref = f"{front}/tls/b:v1"
        code, _, err = _run(capsys, "push", "--tls-cert", str(other_pki.ca), "tls/b:v1", ref)
        assert code == 11 and "CERTIFICATE_VERIFY_FAILED" in err
        code, out, err = _run(capsys, "push", "--tls-cert", str(other_pki.ca), "--tls-cert", str(pki.ca),
                              "tls/b:v1", ref)
        assert code == 0, err
        assert out == f"Pushed {digest}\n"
        code, out, err = _run(capsys, "--config", str(tmp_path / "h2"), "pull", "--tls-cert", str(other_pki.ca),
                              "--tls-cert", str(pki.ca), ref)
        assert code == 0, err
        assert out == f"Pulled {digest}\n"
        # kit's --tls-cert is a string slice: one value may list several files, comma-separated
        code, out, err = _run(capsys, "--config", str(tmp_path / "h3"), "pull", "--tls-cert",
                              f"{other_pki.ca},{pki.ca}", ref)
        assert code == 0, err
        assert out == f"Pulled {digest}\n"
    missing = tmp_path / "missing-ca.pem"
    code, _, err = _run(capsys, "pull", "--tls-cert", f"{pki.ca},{missing}", "127.0.0.1:1/tls/b:v1")
    assert code == 2 and f"Invalid value for '--tls-cert': File '{missing}' does not exist." in err


def test_mutual_tls_with_cert_and_key_and_their_environment_overrides(
    upstream: tuple[str, int], pki: TestPki, other_pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = _packed(tmp_path, capsys, "tls/c:v1")
    good, stranger = pki.client("good"), other_pki.client("stranger")  # the front trusts pki's clients only
    ca = ("--tls-cert", str(pki.ca))
    with tls_front(upstream, pki.server(), client_ca=pki.ca) as front:
        ref = f"{front}/tls/c:v1"
        code, out, err = _run(capsys, "push", *ca, "tls/c:v1", ref)
        assert code == 11 and out == "" and len(err.splitlines()) == 1 and front in err
        assert "CERTIFICATE_REQUIRED" in err and f"https://{front}" in err  # the cause, not a fall back to http

        code, out, err = _run(capsys, "push", *ca, "--cert", str(good.cert), "--key", str(good.key), "tls/c:v1", ref)
        assert code == 0, err
        assert out == f"Pushed {digest}\n"

        home = tmp_path / "pulled"
        code, out, err = _run(capsys, "--config", str(home), "pull", *ca, "--cert", str(stranger.cert),
                              "--key", str(stranger.key), ref)
        assert code == 11 and len(err.splitlines()) == 1
        assert _stored_files(home) == []
        code, out, err = _run(capsys, "--config", str(home), "pull", *ca, "--cert", str(good.combined()), ref)
        assert code == 0, err  # one PEM file holding certificate and key
        assert out == f"Pulled {digest}\n"

        # KITOPS_CLIENT_CERT/KITOPS_CLIENT_KEY, when set, replace --cert/--key (kitops-modelkit.md §5.1)
        monkeypatch.setenv("KITOPS_CLIENT_CERT", str(good.cert))
        monkeypatch.setenv("KITOPS_CLIENT_KEY", str(good.key))
        code, out, err = _run(capsys, "--config", str(tmp_path / "env"), "pull", *ca, ref)
        assert code == 0, err
        code, out, err = _run(capsys, "--config", str(tmp_path / "env-wins"), "pull", *ca,
                              "--cert", str(stranger.cert), "--key", str(stranger.key), ref)
        assert code == 0, err
        assert out == f"Pulled {digest}\n"
        monkeypatch.setenv("KITOPS_CLIENT_CERT", str(stranger.cert))
        monkeypatch.setenv("KITOPS_CLIENT_KEY", str(stranger.key))
        code, out, err = _run(capsys, "--config", str(tmp_path / "env-loses"), "pull", *ca,
                              "--cert", str(good.cert), "--key", str(good.key), ref)
        assert code == 11 and len(err.splitlines()) == 1
        assert _stored_files(tmp_path / "env-loses") == []


def test_unreadable_tls_files_fail_before_any_request(
    pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "client.pem"
    ref = "127.0.0.1:1/tls/d:v1"  # nothing listens on port 1: a request would fail with exit 11
    home = tmp_path / "home"
    code, out, err = _run(capsys, "--config", str(home), "pull", "--cert", str(missing), ref)
    assert (code, out) == (5, "")
    assert err == f"pymodelkit: error: cannot read the --cert file {missing}: no such file\n"
    client = pki.client()
    code, _, err = _run(capsys, "--config", str(home), "pull", "--cert", str(client.cert), "--key", str(missing), ref)
    assert code == 5 and err == f"pymodelkit: error: cannot read the --key file {missing}: no such file\n"

    code, _, err = _run(capsys, "--config", str(home), "pull", "--tls-cert", str(missing), ref)
    assert code == 2 and f"Invalid value for '--tls-cert': File '{missing}' does not exist." in err

    code, _, err = _run(capsys, "--config", str(home), "pull", "--key", str(client.key), ref)
    assert code == 2 and err == ("pymodelkit: error: --key needs a client certificate: give --cert (or set "
                                 "KITOPS_CLIENT_CERT) (see 'pymodelkit pull --help')\n")

    # the variable overrides --cert; its file is checked when the first client is made, so local commands still work
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(missing))
    code, _, err = _run(capsys, "--config", str(home), "pull", "--cert", str(client.cert), ref)
    assert code == 5 and err == f"pymodelkit: error: cannot read the KITOPS_CLIENT_CERT file {missing}: no such file\n"
    assert _stored_files(home) == []
    code, out, err = _run(capsys, "--config", str(home), "list")
    assert code == 0 and err == "" and out.startswith("REPOSITORY")
    monkeypatch.delenv("KITOPS_CLIENT_CERT")
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(client.key))
    code, _, err = _run(capsys, "--config", str(home), "pull", ref)
    assert code == 1
    assert err == ("pymodelkit: error: KITOPS_CLIENT_KEY is set but KITOPS_CLIENT_CERT is not: a client key needs its "
                   "certificate\n")


def test_sign_and_verify_keep_their_own_key_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("sign", "verify", "pull"):
        code, out, _ = _run(capsys, command, "--help")
        assert code == 0 and "--tls-cert PATH" in out
        assert ("--cert PATH" in out) == (command == "pull")
    code, out, _ = _run(capsys, "sign", "--help")
    assert "The private key file" in out


def test_login_takes_the_network_flags(
    upstream: tuple[str, int], pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """login checks the credentials over TLS with the same --tls-cert/--cert/--key as the other network commands."""
    good = pki.client("login")
    home = tmp_path / "login-home"
    with tls_front(upstream, pki.server(), client_ca=pki.ca) as front:
        code, out, err = _run(capsys, "--config", str(home), "login", "-u", "u", "-p", "p", front)
        error = err.splitlines()[-1]  # after kit's warning about -p
        assert code != 0 and out == "" and "CERTIFICATE_VERIFY_FAILED" in error and f"https://{front}" in error
        code, out, err = _run(capsys, "--config", str(home), "login", "-u", "u", "-p", "p", "--tls-cert", str(pki.ca),
                              "--cert", str(good.cert), "--key", str(good.key), front)
        assert (code, out) == (0, "Log in successful\n"), err
    assert front in (home / "credentials.json").read_text()


def _junk_files(pki: TestPki, other_pki: TestPki, directory: Path) -> dict[str, Path]:
    """A good client certificate and key, another CA's key, and files that are none of those."""
    good, stranger = pki.client("cli-junk"), other_pki.client("cli-stranger")
    key = serialization.load_pem_private_key(good.key.read_bytes(), password=None)
    files = {"cert": good.cert, "key": good.key, "other-key": stranger.key, "text": directory / "notes.pem",
             "empty": directory / "empty.pem", "der": directory / "cert.der", "encrypted": directory / "locked.pem"}
    files["text"].write_text("not a certificate\n")
    files["empty"].write_bytes(b"")
    files["der"].write_bytes(x509.load_pem_x509_certificate(good.cert.read_bytes())
                             .public_bytes(serialization.Encoding.DER))
    files["encrypted"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.BestAvailableEncryption(b"secret")))
    return files


# flags (file roles) -> the error's text after "cannot use the "
JUNK_CASES = [
    (("--cert", "text", "--key", "key"), "--cert file {text}: no PEM certificate in it"),
    (("--cert", "empty", "--key", "key"), "--cert file {empty}: it is empty"),
    (("--cert", "der", "--key", "key"), "--cert file {der}: it is a DER certificate, not PEM (convert it with: openssl "
                                        "x509 -inform der)"),
    (("--cert", "key", "--key", "key"), "--cert file {key}: it holds a private key but no certificate (are the "
                                        "certificate and the key swapped?)"),
    (("--cert", "cert", "--key", "cert"), "--key file {cert}: it holds a certificate but no private key (are the "
                                          "certificate and the key swapped?)"),
    (("--cert", "cert"), "--cert file {cert}: it holds no private key; give its key file too (--key, "
                         "KITOPS_CLIENT_KEY)"),
    (("--cert", "cert", "--key", "other-key"), "--cert file {cert} with the --key file {other-key}: the key does not "
                                               "match the certificate"),
    (("--cert", "cert", "--key", "encrypted"), "--key file {encrypted}: it is encrypted; give an unencrypted PEM key "
                                               "(as kit needs)"),
    (("--tls-cert", "text"), "--tls-cert file {text}: no CA certificate in it"),
    (("--tls-cert", "empty"), "--tls-cert file {empty}: it is empty"),
    (("--tls-cert", "der"), "--tls-cert file {der}: it is a DER certificate, not PEM (convert it with: openssl x509 "
                            "-inform der)"),
    (("--tls-cert", "key"), "--tls-cert file {key}: it holds a private key but no CA certificate"),
]


def test_junk_tls_files_fail_in_one_line_before_any_request(
    pki: TestPki, other_pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = _junk_files(pki, other_pki, tmp_path)
    named = {role: str(path) for role, path in files.items()}
    ref = "127.0.0.1:1/tls/junk:v1"  # nothing listens on port 1: a request would fail with exit 11
    for flags, expected in JUNK_CASES:
        args = [str(files[item]) if index % 2 else item for index, item in enumerate(flags)]
        code, out, err = _run(capsys, "--config", str(tmp_path / "home"), "pull", *args, ref)
        assert (code, out) == (1, ""), (flags, err)
        assert err == f"pymodelkit: error: cannot use the {expected.format_map(named)}\n"
    # the variables' files are named by the variables
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(files["der"]))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(files["key"]))
    code, _, err = _run(capsys, "--config", str(tmp_path / "home"), "pull", ref)
    assert code == 1
    assert err == (f"pymodelkit: error: cannot use the KITOPS_CLIENT_CERT file {files['der']}: it is a DER "
                   "certificate, not PEM (convert it with: openssl x509 -inform der)\n")
    assert _stored_files(tmp_path / "home") == []


def test_plain_http_login_uses_no_tls_file(
    registry_basic: TestRegistry, pki: TestPki, other_pki: TestPki, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """login --plain-http neither builds nor checks a TLS context: junk TLS files do not stop it (kit's "has no
    effect" warning); over TLS the same files stop it before any request."""
    files = _junk_files(pki, other_pki, tmp_path)
    user, password = registry_basic.username or "", registry_basic.password or ""
    junk = ("--tls-cert", str(files["text"]), "--cert", str(files["der"]), "--key", str(files["empty"]))
    home = tmp_path / "home"
    code, out, err = _run(capsys, "--config", str(home), "login", "--plain-http", *junk, "-u", user, "-p", password,
                          registry_basic.host)
    assert (code, out) == (0, "Log in successful\n"), err
    assert "[WARN] --tls-cert, --cert, --key have no effect with --plain-http" in err.splitlines()
    assert registry_basic.host in (home / "credentials.json").read_text()
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(files["text"]))  # the variables are not read either
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(files["empty"]))
    code, out, err = _run(capsys, "--config", str(tmp_path / "env"), "login", "--plain-http", "-u", user,
                          "-p", password, registry_basic.host)
    assert (code, out) == (0, "Log in successful\n"), err
    monkeypatch.delenv("KITOPS_CLIENT_CERT")
    monkeypatch.delenv("KITOPS_CLIENT_KEY")

    other = tmp_path / "tls-home"
    code, out, err = _run(capsys, "--config", str(other), "login", "--tls-cert", str(files["text"]), "-u", user,
                          "-p", password, registry_basic.host)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (f"pymodelkit: error: cannot use the --tls-cert file {files['text']}: no CA "
                                    "certificate in it")
    assert not (other / "credentials.json").exists()


def test_plain_http_and_no_tls_verify_commands_use_no_junk_file(
    registry: TestRegistry, pki: TestPki, other_pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The other network commands likewise: with --plain-http they reach the registry whatever the TLS files hold;
    with --no-tls-verify the --tls-cert files (nothing is verified against them) are not read."""
    files = _junk_files(pki, other_pki, tmp_path)
    ref = f"{registry.host}/tls/absent:v1"
    code, out, err = _run(capsys, "--config", str(tmp_path / "home"), "pull", "--plain-http", "--tls-cert",
                          str(files["der"]), "--cert", str(files["text"]), "--key", str(files["encrypted"]), ref)
    assert (code, out) == (5, ""), err  # the registry's answer: no such manifest
    assert err.splitlines()[0] == "[WARN] --tls-cert, --cert, --key have no effect with --plain-http"
    assert "cannot use" not in err
    code, out, err = _run(capsys, "--config", str(tmp_path / "home"), "pull", "--no-tls-verify", "--tls-cert",
                          str(files["text"]), "127.0.0.1:1/tls/absent:v1")
    assert code == 11 and "cannot reach registry 127.0.0.1:1" in err
    assert err.splitlines()[0] == "[WARN] --tls-cert has no effect with --no-tls-verify"
