"""The compat ``kit.*`` functions' client certificate (``cert=``/``key=`` and ``KITOPS_CLIENT_CERT``/``_KEY``, kit's
rule): a bad file is named by where it came from, the variables' "not used" warning is logged once, and plain HTTP
reads no TLS file; through the compat API, against the real test registries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pymodelkit.compat import KitCommandError
from pymodelkit.compat.kitops.cli import kit
from pymodelkit.errors import ModelKitError, RegistryError
from pymodelkit.registry.tls import TlsOptions, use_tls_options
from tests.support.registry import TestRegistry
from tests.support.tlsfront import CertFiles, TestPki

UNREACHED = "127.0.0.1:1/compat/tls:v1"  # loopback: the files are checked first, as https is probed


@pytest.fixture(scope="module")
def good(pki: TestPki) -> CertFiles:
    return pki.client("compat")


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.pem"
    path.write_text("not a certificate\n")
    return path


def _refused(**kwargs: object) -> str:
    with pytest.raises(KitCommandError) as failed:
        kit.pull(UNREACHED, **kwargs)
    assert isinstance(failed.value.error, ModelKitError) and not isinstance(failed.value.error, RegistryError)
    message = str(failed.value.error)
    assert "\n" not in message and failed.value.stderr == message
    return message


def test_the_files_of_the_variables_are_named_by_them(
    good: CertFiles, text: Path, clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = str(clean_environ / "kit")
    assert _refused(cert=str(text), key=str(good.key), config=config) == (
        f"cannot use the client certificate file {text}: no PEM certificate in it")
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(text))
    assert _refused(cert=str(good.cert), config=config) == (
        f"cannot use the KITOPS_CLIENT_KEY file {text}: no PEM private key in it")
    monkeypatch.delenv("KITOPS_CLIENT_KEY")
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(text))
    assert _refused(cert=str(good.cert), key=str(good.key), config=config) == (
        f"cannot use the KITOPS_CLIENT_CERT file {text}: no PEM certificate in it")
    # an enclosing block's CA files keep the name it gave them
    monkeypatch.delenv("KITOPS_CLIENT_CERT")
    with use_tls_options(TlsOptions(ca_files=(str(text),), names=("--tls-cert", "--cert", "--key"))):
        assert _refused(cert=str(good.cert), key=str(good.key), config=config) == (
            f"cannot use the --tls-cert file {text}: no CA certificate in it")


def test_the_variables_certificate_alone_is_reported_once(
    registry: TestRegistry, good: CertFiles, clean_environ: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("KITOPS_CLIENT_CERT", str(good.cert))  # a certificate with no key anywhere: not used
    with caplog.at_level(logging.WARNING, logger="pymodelkit.registry.tls"), pytest.raises(KitCommandError) as missing:
        kit.pull(f"{registry.host}/compat/tls-absent:v1", cert=str(good.cert), config=str(clean_environ / "kit"))
    assert isinstance(missing.value.error, RegistryError) and missing.value.error.status == 404
    warned = [r for r in caplog.records if r.getMessage().startswith("KITOPS_CLIENT_CERT is set without")]
    assert len(warned) == 1


def test_plain_http_reads_no_tls_file(
    registry_basic: TestRegistry, text: Path, clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry_basic.username and registry_basic.password
    home = clean_environ / "kit"
    monkeypatch.setenv("KITOPS_CLIENT_KEY", str(text))
    with pytest.raises(KitCommandError) as refused:
        kit.login(registry_basic.username, registry_basic.password, registry_basic.host, cert=str(text),
                  config=str(home))
    assert str(refused.value.error) == f"cannot use the client certificate file {text}: no PEM certificate in it"
    assert not (home / "credentials.json").exists()
    kit.login(registry_basic.username, registry_basic.password, registry_basic.host, plain_http=True,
              cert=str(text), config=str(home))
    assert registry_basic.host in (home / "credentials.json").read_text()
