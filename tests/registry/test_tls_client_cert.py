"""Extra CA files and client certificates (registry/tls.py): the memoized context per configuration, one-line errors
naming the file before any request, and pulls and logins over (mutual) TLS in front of the real test registry."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import pymodelkit
from pymodelkit.compat import kit
from pymodelkit.compat.kit import KitCommandError
from pymodelkit.errors import ModelKitError, NotFoundError, RegistryError
from pymodelkit.oci.reference import parse_reference
from pymodelkit.registry import transfer
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.login import login
from pymodelkit.registry.tls import TlsOptions, resolve_tls_options, ssl_context, use_tls_options
from pymodelkit.store import LocalStore
from tests.support.registry import TestRegistry
from tests.support.tlsfront import CertFiles, TestPki, tls_front


@pytest.fixture(scope="module")
def clients(pki: TestPki, other_pki: TestPki) -> tuple[CertFiles, CertFiles]:
    """A client certificate the mutual-TLS front accepts, and one from another CA it refuses."""
    return pki.client("good"), other_pki.client("stranger")


@dataclass(frozen=True)
class Pushed:
    repository: str
    digest: str


@pytest.fixture(scope="module")
def pushed(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """A small ModelKit in the shared registry (pushed over plain HTTP, straight to it)."""
    root = tmp_path_factory.mktemp("mtls-src")
    (root / "model.bin").write_bytes(os.urandom(2048))
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    store = LocalStore(root / "home")
    packed = pymodelkit.pack(root, tag="mtls/kit:v1", store=store)
    transfer.push("mtls/kit:v1", f"{registry.host}/mtls/kit:v1", store=store, plain_http=True)
    return Pushed("mtls/kit:v1", str(packed.digest))


@pytest.fixture
def mtls_front(registry: TestRegistry, pki: TestPki) -> Iterator[str]:
    host, port = registry.host.rsplit(":", 1)
    with tls_front((host, int(port)), pki.server(), client_ca=pki.ca) as front:
        yield front


def _stored(store: LocalStore) -> list[Path]:
    return [p for p in store.storage.rglob("*") if p.is_file()] if store.storage.exists() else []


def _digest_in(home: Path, ref: str) -> str:
    return str(LocalStore(home).read_manifest(parse_reference(ref)[0])[0].digest)


def test_ssl_context_is_memoized_per_ca_files_client_cert_and_file_version(
    pki: TestPki, other_pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    good, _ = clients
    both = ssl_context(tls_verify=True, ca_bundle=[str(pki.ca), other_pki.ca], trust_env=False)
    assert ssl_context(tls_verify=True, ca_bundle=(pki.ca, str(other_pki.ca), pki.ca), trust_env=False) is both
    assert ssl_context(tls_verify=True, ca_bundle=str(pki.ca), trust_env=False) is not both
    mutual = ssl_context(tls_verify=True, ca_bundle=[pki.ca], trust_env=False, client_cert=(good.cert, good.key))
    assert mutual is ssl_context(tls_verify=True, ca_bundle=pki.ca, trust_env=False,
                                 client_cert=(str(good.cert), str(good.key)))
    assert mutual is not ssl_context(tls_verify=True, ca_bundle=pki.ca, trust_env=False)
    # CA files do not matter without verification; the client certificate still does
    assert ssl_context(tls_verify=False, ca_bundle=pki.ca, trust_env=False) is \
        ssl_context(tls_verify=False, ca_bundle=None, trust_env=False)
    unverified = ssl_context(tls_verify=False, ca_bundle=None, trust_env=False, client_cert=(good.cert, good.key))
    assert unverified.verify_mode == ssl.CERT_NONE
    # a rewritten file (a renewed certificate) gives a new context
    copy = tmp_path / "ca.pem"
    copy.write_bytes(pki.ca.read_bytes())
    first = ssl_context(tls_verify=True, ca_bundle=copy, trust_env=False)
    copy.write_bytes(other_pki.ca.read_bytes() + pki.ca.read_bytes())
    assert ssl_context(tls_verify=True, ca_bundle=copy, trust_env=False) is not first


def test_bad_tls_files_give_one_line_errors_naming_the_file(
    pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    good, stranger = clients
    missing = tmp_path / "missing.pem"
    with pytest.raises(NotFoundError) as absent:
        RegistryClient("127.0.0.1:1", ca_bundle=[pki.ca, missing])  # no request is made: port 1 would refuse
    assert str(absent.value) == f"cannot read the CA certificate file {missing}: no such file"
    with pytest.raises(NotFoundError) as no_key:
        RegistryClient("127.0.0.1:1", client_cert=(good.cert, missing))
    assert str(no_key.value) == f"cannot read the client key file {missing}: no such file"
    with pytest.raises(ModelKitError, match=f"^cannot read the client certificate file {re.escape(str(tmp_path))}: "):
        RegistryClient("127.0.0.1:1", client_cert=tmp_path)

    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("hello\n")
    with pytest.raises(ModelKitError, match=f"^cannot use the CA certificate file {re.escape(str(not_pem))}: "):
        ssl_context(tls_verify=True, ca_bundle=[pki.ca, not_pem], trust_env=False)
    with pytest.raises(ModelKitError) as mismatch:
        ssl_context(tls_verify=True, ca_bundle=None, trust_env=False, client_cert=(good.cert, stranger.key))
    assert str(mismatch.value) == (f"cannot use the client certificate file {good.cert} with the client key file "
                                   f"{stranger.key}: the key does not match the certificate")

    encrypted = tmp_path / "encrypted-key.pem"
    key = serialization.load_pem_private_key(good.key.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(ModelKitError) as locked:
        ssl_context(tls_verify=True, ca_bundle=None, trust_env=False, client_cert=(good.cert, encrypted))
    assert str(locked.value) == (f"cannot use the client key file {encrypted}: it is encrypted; give an unencrypted "
                                 "PEM key (as kit needs)")
    for error in (absent.value, mismatch.value, locked.value):
        assert "\n" not in str(error) and "PRIVATE KEY" not in str(error)


def test_pull_over_mutual_tls_needs_the_client_certificate(
    pushed: Pushed, mtls_front: str, pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    good, stranger = clients
    ref = f"{mtls_front}/{pushed.repository}"
    store = LocalStore(tmp_path / "pulled")
    for client_cert in (None, (stranger.cert, stranger.key)):
        with pytest.raises(RegistryError) as refused:
            transfer.pull(ref, store=store, plain_http=False, ca_bundle=pki.ca, client_cert=client_cert)
        assert f"cannot reach registry {mtls_front}:" in str(refused.value) and "\n" not in str(refused.value)
        assert "alert" in str(refused.value).lower()  # the server's TLS alert: certificate required, unknown CA
    assert _stored(store) == []
    result = transfer.pull(ref, store=store, plain_http=False, ca_bundle=pki.ca, client_cert=(good.cert, good.key))
    assert str(result.digest) == pushed.digest
    assert store.read_manifest(result.reference)[0].digest == result.digest


def test_use_tls_options_reaches_the_clients_made_inside_and_arguments_win(
    pushed: Pushed, mtls_front: str, pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    good, stranger = clients
    ref = f"{mtls_front}/{pushed.repository}"
    options = TlsOptions(ca_files=(str(pki.ca),), client_cert=(str(good.cert), str(good.key)))
    with use_tls_options(options):
        assert resolve_tls_options() == options
        result = transfer.pull(ref, store=LocalStore(tmp_path / "a"), plain_http=False)
        assert str(result.digest) == pushed.digest
        with pytest.raises(RegistryError):
            transfer.pull(ref, store=LocalStore(tmp_path / "b"), plain_http=False,
                          client_cert=(stranger.cert, stranger.key))
    assert resolve_tls_options() == TlsOptions()


def test_the_environment_client_certificate_is_the_default(
    pushed: Pushed, mtls_front: str, pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, stranger = clients
    ref = f"{mtls_front}/{pushed.repository}"
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(good.cert))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(good.key))
    assert resolve_tls_options().client_cert == (str(good.cert), str(good.key))
    result = transfer.pull(ref, store=LocalStore(tmp_path / "env"), plain_http=False, ca_bundle=pki.ca)
    assert str(result.digest) == pushed.digest
    with pytest.raises(RegistryError):  # in the library an argument beats the environment (STYLE rule 7)
        transfer.pull(ref, store=LocalStore(tmp_path / "arg"), plain_http=False, ca_bundle=pki.ca,
                      client_cert=(stranger.cert, stranger.key))
    monkeypatch.delenv("KITOPS_CLIENT_CERT")
    with pytest.raises(ModelKitError, match=r"^KITOPS_CLIENT_KEY is set but KITOPS_CLIENT_CERT is not"):
        RegistryClient("127.0.0.1:1")


def test_login_over_mutual_tls(
    registry: TestRegistry, mtls_front: str, pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    good, _ = clients
    home = tmp_path / "kit-home"
    with pytest.raises(RegistryError):
        login(mtls_front, "someone", "secret", home=home, plain_http=False, ca_bundle=pki.ca)
    assert not (home / "credentials.json").exists()
    login(mtls_front, "someone", "secret", home=home, plain_http=False, ca_bundle=[pki.ca],
          client_cert=(good.cert, good.key))
    assert mtls_front in (home / "credentials.json").read_text()


def test_compat_pull_takes_cert_and_key_and_the_environment_overrides_them(
    pushed: Pushed, mtls_front: str, pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, stranger = clients
    ref = f"{mtls_front}/{pushed.repository}"
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))  # pykitops has no --tls-cert: trust the CA the standard way
    kit.pull(ref, cert=str(good.cert), key=str(good.key), config=str(tmp_path / "a"))
    assert _digest_in(tmp_path / "a", ref) == pushed.digest
    with pytest.raises(KitCommandError) as refused:
        kit.pull(ref, cert=str(stranger.cert), key=str(stranger.key), config=str(tmp_path / "b"))
    assert isinstance(refused.value.error, RegistryError)
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(good.cert))
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(good.key))
    kit.pull(ref, cert=str(stranger.cert), key=str(stranger.key), config=str(tmp_path / "c"))
    assert _digest_in(tmp_path / "c", ref) == pushed.digest
    monkeypatch.delenv("KITOPS_CLIENT_CERT")
    monkeypatch.delenv("KITOPS_CLIENT_KEY")
    with pytest.warns(UserWarning, match="kit pull: option 'key' has no effect without 'cert'"), \
            pytest.raises(KitCommandError):
        kit.pull("localhost/w:v1", key=str(good.key), config=str(tmp_path / "d"))  # fails at once: no port


def test_compat_keeps_the_ca_files_of_an_enclosing_scope(
    pushed: Pushed, mtls_front: str, pki: TestPki, clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    """cert=/key= add the client certificate to an enclosing use_tls_options block; they do not drop its CA files."""
    good, _ = clients
    ref = f"{mtls_front}/{pushed.repository}"
    with use_tls_options(TlsOptions(ca_files=(str(pki.ca),))):
        kit.pull(ref, cert=str(good.cert), key=str(good.key), config=str(tmp_path / "scoped"))
    assert _digest_in(tmp_path / "scoped", ref) == pushed.digest


def test_a_certificate_without_its_key(
    pki: TestPki, clients: tuple[CertFiles, CertFiles], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given directly, a certificate file that holds no key is refused in one line; KITOPS_CLIENT_CERT alone, as kit
    does, is not used (a certificate exported for another tool must not break every https request)."""
    good, _ = clients
    with pytest.raises(ModelKitError) as refused:
        resolve_tls_options(client_cert=good.cert)
    assert str(refused.value) == (f"cannot use the client certificate file {good.cert}: it holds no private key; give "
                                  "its key file too (--key, KITOPS_CLIENT_KEY)")
    assert resolve_tls_options(client_cert=good.combined()).client_cert == (str(good.combined()), None)
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(good.cert))
    monkeypatch.delenv("KITOPS_CLIENT_KEY", raising=False)
    with caplog.at_level("WARNING", logger="pymodelkit.registry.tls"):
        assert resolve_tls_options().client_cert is None
    assert "KITOPS_CLIENT_CERT is set without KITOPS_CLIENT_KEY" in caplog.text


def test_a_certificate_rewritten_in_place_gets_a_new_context(
    clients: tuple[CertFiles, CertFiles], tmp_path: Path
) -> None:
    """The memoized context follows the files: the same size and mtime, other bytes (``cp -p``) still make a new one."""
    good, stranger = clients
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(good.cert.read_bytes())
    key.write_bytes(good.key.read_bytes())
    first = ssl_context(tls_verify=True, ca_bundle=None, trust_env=False, client_cert=(cert, key))
    assert ssl_context(tls_verify=True, ca_bundle=None, trust_env=False, client_cert=(cert, key)) is first
    times = os.stat(cert)
    data = stranger.cert.read_bytes()
    if len(data) == times.st_size:
        cert.write_bytes(data)
        key.write_bytes(stranger.key.read_bytes())
        os.utime(cert, ns=(times.st_atime_ns, times.st_mtime_ns))
    else:  # sizes differ: the test still proves a rewrite is noticed
        cert.write_bytes(data)
        key.write_bytes(stranger.key.read_bytes())
    assert ssl_context(tls_verify=True, ca_bundle=None, trust_env=False, client_cert=(cert, key)) is not first
