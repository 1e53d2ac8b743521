"""TLS files that are not what their role needs fail in one line before any request, naming the file, where it came
from and what is wrong (registry/tls.py ``check_tls_options``); kit's client-certificate precedence is decided by
``choose_client_cert`` alone."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymodelkit.errors import ModelKitError
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.tls import (
    ClientCertChoice,
    TlsOptions,
    choose_client_cert,
    resolve_tls_options,
    ssl_context,
    use_tls_options,
)
from tests.support.tlsfront import CertFiles, TestPki

UNUSED = "127.0.0.1:1"  # nothing listens there: a client that made a request would fail with RegistryError


@dataclass(frozen=True)
class Junk:
    """A good client certificate and the bad files of the tests, all in one directory."""

    good: CertFiles
    stranger: CertFiles
    text: Path
    empty: Path
    der_cert: Path
    der_key: Path
    encrypted_key: Path


def make_junk(pki: TestPki, other_pki: TestPki, directory: Path) -> Junk:
    """The bad files: a text file, an empty one, the good certificate and key as DER, the key encrypted."""
    good, stranger = pki.client("junk-good"), other_pki.client("junk-stranger")
    key = serialization.load_pem_private_key(good.key.read_bytes(), password=None)
    files = Junk(good, stranger, directory / "notes.pem", directory / "empty.pem", directory / "cert.der",
                 directory / "key.der", directory / "encrypted-key.pem")
    files.text.write_text("not a certificate\n")
    files.empty.write_bytes(b"")
    files.der_cert.write_bytes(x509.load_pem_x509_certificate(good.cert.read_bytes())
                               .public_bytes(serialization.Encoding.DER))
    files.der_key.write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    files.encrypted_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.BestAvailableEncryption(b"secret")))
    return files


@pytest.fixture(scope="module")
def junk(pki: TestPki, other_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Junk:
    return make_junk(pki, other_pki, tmp_path_factory.mktemp("junk"))


@pytest.fixture(autouse=True)
def _no_client_cert_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITOPS_CLIENT_CERT", raising=False)
    monkeypatch.delenv("KITOPS_CLIENT_KEY", raising=False)


def _refused(**arguments: object) -> str:
    with pytest.raises(ModelKitError) as refused:
        RegistryClient(UNUSED, **arguments)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "\n" not in message and "PRIVATE KEY" not in message and "_ssl.c" not in message
    return message


def test_client_certificate_files_that_are_not_a_pem_certificate_and_its_key(junk: Junk) -> None:
    good, stranger = junk.good, junk.stranger
    cert, key = "cannot use the client certificate file", "cannot use the client key file"
    cases = {
        (junk.text, good.key): f"{cert} {junk.text}: no PEM certificate in it",
        (junk.empty, good.key): f"{cert} {junk.empty}: it is empty",
        (junk.der_cert, good.key): f"{cert} {junk.der_cert}: it is a DER certificate, not PEM (convert it with: "
                                   "openssl x509 -inform der)",
        (good.key, good.key): f"{cert} {good.key}: it holds a private key but no certificate (are the certificate "
                              "and the key swapped?)",
        (good.key, None): f"{cert} {good.key}: it holds a private key but no certificate",
        (good.cert, None): f"{cert} {good.cert}: it holds no private key; give its key file too (--key, "
                           "KITOPS_CLIENT_KEY)",
        (good.cert, good.cert): f"{key} {good.cert}: it holds a certificate but no private key (are the certificate "
                                "and the key swapped?)",
        (good.cert, junk.text): f"{key} {junk.text}: no PEM private key in it",
        (good.cert, junk.empty): f"{key} {junk.empty}: it is empty",
        (good.cert, junk.der_key): f"{key} {junk.der_key}: it is a DER key, not PEM (convert it with: openssl pkey "
                                   "-inform der)",
        (good.cert, junk.encrypted_key): f"{key} {junk.encrypted_key}: it is encrypted; give an unencrypted PEM key "
                                         "(as kit needs)",
        (good.cert, stranger.key): f"{cert} {good.cert} with the client key file {stranger.key}: the key does not "
                                   "match the certificate",
    }
    for (cert_file, key_file), expected in cases.items():
        assert _refused(client_cert=(cert_file, key_file)) == expected, (cert_file, key_file)
        # ssl_context (the context itself, built on the first https request) says the same
        with pytest.raises(ModelKitError) as built:
            ssl_context(tls_verify=True, ca_bundle=None, trust_env=False, client_cert=(cert_file, key_file))
        assert str(built.value) == expected


def test_one_file_holding_a_certificate_and_another_key(junk: Junk, tmp_path: Path) -> None:
    combined = tmp_path / "combined.pem"
    combined.write_bytes(junk.good.cert.read_bytes() + junk.stranger.key.read_bytes())
    assert _refused(client_cert=combined) == (f"cannot use the client certificate file {combined}: its key does not "
                                              "match its certificate")
    assert resolve_tls_options(client_cert=junk.good.combined()).client_cert == (str(junk.good.combined()), None)


def test_ca_files_with_no_pem_certificate_in_them(pki: TestPki, junk: Junk) -> None:
    ca = "cannot use the CA certificate file"
    cases = {
        junk.text: f"{ca} {junk.text}: no CA certificate in it",
        junk.empty: f"{ca} {junk.empty}: it is empty",
        junk.der_cert: f"{ca} {junk.der_cert}: it is a DER certificate, not PEM (convert it with: openssl x509 "
                       "-inform der)",
        junk.good.key: f"{ca} {junk.good.key}: it holds a private key but no CA certificate",
    }
    for bad, expected in cases.items():
        assert _refused(ca_bundle=[pki.ca, bad]) == expected
        with pytest.raises(ModelKitError) as built:
            ssl_context(tls_verify=True, ca_bundle=[pki.ca, bad], trust_env=False)
        assert str(built.value) == expected
    # a CA file is any PEM certificate file: a leaf certificate, or a key and certificate together, load
    assert resolve_tls_options(ca_bundle=[pki.ca, junk.good.combined()]).ca_files == (str(pki.ca),
                                                                                       str(junk.good.combined()))


def test_a_scope_names_its_files_as_the_cli_gave_them(pki: TestPki, junk: Junk) -> None:
    options = TlsOptions(ca_files=(str(junk.text),), names=("--tls-cert", "--cert", "--key"))
    with use_tls_options(options), pytest.raises(ModelKitError) as refused:
        RegistryClient(UNUSED)
    assert str(refused.value) == f"cannot use the --tls-cert file {junk.text}: no CA certificate in it"
    options = TlsOptions(client_cert=(str(junk.good.cert), str(junk.stranger.key)), environment=False,
                         names=("--tls-cert", "--cert", "KITOPS_CLIENT_KEY"))
    with use_tls_options(options), pytest.raises(ModelKitError) as mismatch:
        RegistryClient(UNUSED)
    assert str(mismatch.value) == (f"cannot use the --cert file {junk.good.cert} with the KITOPS_CLIENT_KEY file "
                                   f"{junk.stranger.key}: the key does not match the certificate")


def test_the_environment_files_are_named_by_their_variables(junk: Junk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(junk.text))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(junk.good.key))
    assert _refused() == f"cannot use the KITOPS_CLIENT_CERT file {junk.text}: no PEM certificate in it"
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(junk.good.cert))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(junk.encrypted_key))
    assert _refused() == (f"cannot use the KITOPS_CLIENT_KEY file {junk.encrypted_key}: it is encrypted; give an "
                          "unencrypted PEM key (as kit needs)")
    # a scope without the environment (the CLI's --plain-http) reads neither variable
    with use_tls_options(TlsOptions(environment=False)):
        assert resolve_tls_options() == TlsOptions()


def test_a_file_fixed_in_place_is_checked_again(junk: Junk, tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("nothing yet\n")
    assert _refused(client_cert=(cert, junk.good.key)).endswith(": no PEM certificate in it")
    cert.write_bytes(junk.good.cert.read_bytes())
    assert resolve_tls_options(client_cert=(cert, junk.good.key)).client_cert == (str(cert), str(junk.good.key))


def test_choose_client_cert_is_kits_rule(junk: Junk, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """The variables replace --cert/--key each on its own; a certificate alone must hold its key, except the
    variable's, which is then not used; a flag's key alone is reported, the variable's refused."""
    cert, key, combined = str(junk.good.cert), str(junk.good.key), str(junk.good.combined())
    other_cert, other_key = str(junk.stranger.cert), str(junk.stranger.key)
    assert choose_client_cert() == ClientCertChoice(None, ("--cert", "--key"))
    assert choose_client_cert(cert, key) == ClientCertChoice((cert, key), ("--cert", "--key"))
    assert choose_client_cert(cert) == ClientCertChoice((cert, None), ("--cert", "--key"))  # checked later: no key
    assert choose_client_cert(key=key) == ClientCertChoice(None, ("--cert", "--key"), unpaired_key="--key")
    monkeypatch.setenv("KITOPS_CLIENT_CERT", other_cert)
    assert choose_client_cert(cert, key) == ClientCertChoice((other_cert, key), ("KITOPS_CLIENT_CERT", "--key"))
    assert choose_client_cert(key=key) == ClientCertChoice((other_cert, key), ("KITOPS_CLIENT_CERT", "--key"))
    with caplog.at_level(logging.WARNING, logger="pymodelkit.registry.tls"):
        assert choose_client_cert(cert).files is None  # the variable's certificate, no key anywhere: not used
    assert f"KITOPS_CLIENT_CERT is set without KITOPS_CLIENT_KEY and {other_cert} holds no key" in caplog.text
    monkeypatch.setenv("KITOPS_CLIENT_CERT", combined)
    assert choose_client_cert(cert).files == (combined, None)
    monkeypatch.setenv("KITOPS_CLIENT_KEY", other_key)
    assert choose_client_cert(cert, key) == ClientCertChoice((combined, other_key),
                                                             ("KITOPS_CLIENT_CERT", "KITOPS_CLIENT_KEY"))
    monkeypatch.delenv("KITOPS_CLIENT_CERT")
    assert choose_client_cert(cert, key) == ClientCertChoice((cert, other_key), ("--cert", "KITOPS_CLIENT_KEY"))
    with pytest.raises(ModelKitError) as unpaired:
        choose_client_cert(key=key)
    assert str(unpaired.value) == ("KITOPS_CLIENT_KEY is set but KITOPS_CLIENT_CERT is not: a client key needs its "
                                   "certificate")


def test_a_client_without_tls_problems_does_not_import_cryptography() -> None:
    """cryptography only explains a file OpenSSL refused: importing it costs every network command ~9 MiB of RSS."""
    code = ("import sys; from pymodelkit.registry import transfer; from pymodelkit.registry.client import "
            "RegistryClient; RegistryClient('127.0.0.1:9', plain_http=True).close(); "
            "print('cryptography' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
