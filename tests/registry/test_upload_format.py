"""kit's per-registry upload format and its ``:443`` Location fix-up (spec ``kitops-modelkit.md`` §5.2, trap 20).

The host-name tables are kit's own test data: ``kitops-ml/kitops`` ``pkg/lib/repo/remote/upload-format_test.go``
(the version at 6bd06881, whose 8 size/registry cases, 13 Google and 17 ECR names are the counts the spec gives for
a041892). kit's chunk size there is ``100 << 20``. The push tests reach the real test registry under those names
through a loopback forward proxy (``HTTP_PROXY``), so no name is ever resolved.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.registry import pull, push
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.upload import always_monolithic, restore_port_443, upload_format
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

KIT_CHUNK = 104857600  # kit's uploadChunkDefaultSize, 100 << 20
FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)

# TestGetUploadFormat: (registry, size, format)
KIT_CASES = [
    ("quay.io", 100, "monolithic"),
    ("docker.io", 500, "monolithic"),
    ("quay.io", KIT_CHUNK - 1, "monolithic"),
    ("docker.io", KIT_CHUNK - 1, "monolithic"),
    ("quay.io", KIT_CHUNK, "chunked"),
    ("docker.io", KIT_CHUNK, "chunked"),
    ("ghcr.io", 100, "monolithic"),
    ("ghcr.io", KIT_CHUNK * 2, "monolithic"),
]

# TestGetUploadFormatGoogleArtifactRegistry
GOOGLE = [
    ".pkg.dev",
    "docker.pkg.dev",
    "gcr.io",
    "asia.gcr.io",
    "marketplace.gcr.io",
    "eu.gcr.io",
    "us.gcr.io",
    "region-docker.pkg.dev",
    "northamerica-northeast1-docker.pkg.dev",
    "us-central1-docker.pkg.dev",
    "us-east1-docker.pkg.dev",
    ".PKG.DEV",
    ".pkg.DEV",
]

# TestGetUploadFormatAmazonECR
ECR = [
    "123918541723.dkr.ecr.us-east-2.amazonaws.com",
    "123918541723.dkr.ecr-fips.us-east-1.amazonaws.com",
    "123918541723.dkr.ecr-fips.us-west-2.amazonaws.com",
    "123918541723.dkr.ecr.ap-south-1.amazonaws.com",
    "123918541723.dkr.ecr.ap-northeast-1.amazonaws.com",
    "123918541723.dkr.ecr.ca-central-1.amazonaws.com",
    "123918541723.dkr.ecr.cn-north-1.amazonaws.com.cn",
    "123918541723.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
    "123918541723.dkr.ecr.eu-central-1.amazonaws.com",
    "123918541723.dkr.ecr.eu-west-1.amazonaws.com",
    "123918541723.dkr.ecr.me-south-1.amazonaws.com",
    "123918541723.dkr.ecr.sa-east-1.amazonaws.com",
    "123918541723.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
    "123918541723.dkr.ecr.us-gov-west-1.amazonaws.com",
    "123918541723.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
    "123918541723.dkr.ecr.us-east-2.AmAzOnAwS.com",
    "123918541723.dkr.ecr.us-east-2.AMAZONAWS.COM",
]


def test_the_upstream_tables_are_complete() -> None:
    assert (len(KIT_CASES), len(GOOGLE), len(ECR)) == (8, 13, 17)


@pytest.mark.parametrize(("registry", "size", "expected"), KIT_CASES)
def test_kit_size_and_registry_cases(registry: str, size: int, expected: str) -> None:
    assert upload_format(registry, size, KIT_CHUNK) == expected


@pytest.mark.parametrize("registry", GOOGLE + ECR)
def test_google_and_ecr_registries_always_get_one_put(registry: str) -> None:
    assert always_monolithic(registry)
    assert upload_format(registry, 100, KIT_CHUNK) == "monolithic"
    assert upload_format(registry, KIT_CHUNK, KIT_CHUNK) == "monolithic"
    assert upload_format(registry, 1 << 40, 16 << 20) == "monolithic"


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("GHCR.io", True),  # lower-cased first, as kit does
        ("ghcr.io:443", True),  # a port is not part of the name
        ("eu.gcr.io:5000", True),
        ("notgcr.io", True),  # kit's `.*\.?gcr\.io$` is a plain suffix test
        ("x.amazonaws.com.cn", True),
        ("pkg.dev", False),  # `.*\.pkg\.dev$` wants the dot
        ("ghcr.io.example.com", False),
        ("sub.ghcr.io", False),  # only ghcr.io itself
        ("gcr.io.evil.example", False),
        ("amazonaws.com.example", False),
        ("quay.io", False),
        ("registry-1.docker.io", False),
        ("127.0.0.1:5000", False),
        ("[::1]:443", False),
    ],
)
def test_host_names_near_the_rules(registry: str, expected: bool) -> None:
    assert always_monolithic(registry) is expected
    assert upload_format(registry, KIT_CHUNK, KIT_CHUNK) == ("monolithic" if expected else "chunked")


@pytest.mark.parametrize(
    ("location", "registry", "expected"),
    [
        ("https://reg.example.com/v2/m/blobs/uploads/u?_state=s", "reg.example.com:443",
         "https://reg.example.com:443/v2/m/blobs/uploads/u?_state=s"),
        ("http://reg.example.com/v2/m/blobs/uploads/u", "reg.example.com:443",
         "http://reg.example.com:443/v2/m/blobs/uploads/u"),
        ("https://Reg.Example.com/v2/u", "reg.example.com:443", "https://Reg.Example.com:443/v2/u"),
        ("https://[2001:db8::1]/v2/u", "[2001:db8::1]:443", "https://[2001:db8::1]:443/v2/u"),
        ("https://user@reg.example.com/v2/u", "reg.example.com:443", "https://user@reg.example.com:443/v2/u"),
        # left alone: the registry was not named with :443, the Location has a port, or another host
        ("https://reg.example.com/v2/u", "reg.example.com", "https://reg.example.com/v2/u"),
        ("https://reg.example.com/v2/u", "reg.example.com:5000", "https://reg.example.com/v2/u"),
        ("https://reg.example.com:8443/v2/u", "reg.example.com:443", "https://reg.example.com:8443/v2/u"),
        ("https://reg.example.com:443/v2/u", "reg.example.com:443", "https://reg.example.com:443/v2/u"),
        ("https://storage.example.net/upload?sig=x", "reg.example.com:443", "https://storage.example.net/upload?sig=x"),
        ("https://reg.example.com:x/v2/u", "reg.example.com:443", "https://reg.example.com:x/v2/u"),
    ],
)
def test_port_443_location_fix_up(location: str, registry: str, expected: str) -> None:
    assert restore_port_443(location, registry) == expected


# ----- on the wire ---------------------------------------------------------------------------------------------


def _random_file(path: Path, size: int) -> bytes:
    data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(size // 32 + 1))[:size]
    path.write_bytes(data)
    return data


@pytest.fixture
def named_registry(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], monkeypatch: pytest.MonkeyPatch
) -> FaultProxy:
    """The test registry reached as any host name: a recording proxy in front of it is the HTTP forward proxy."""
    proxy = fault_proxy(registry.url)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    return proxy


@pytest.mark.parametrize(
    ("host", "patches"),
    [
        ("ghcr.io", 0),
        ("us-central1-docker.pkg.dev", 0),
        ("123918541723.dkr.ecr.eu-west-1.amazonaws.com", 0),
        ("quay.io", 4),  # the heuristic: the 301568-byte layer in 100000-byte PATCHes, the small config in one PUT
    ],
)
def test_push_sends_one_put_per_blob_to_those_registries(
    named_registry: FaultProxy, tmp_path: Path, host: str, patches: int
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    weights = _random_file(src / "weights.bin", 300_000)
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
    repository = f"format/{host.split('.')[0]}-{secrets.token_hex(4)}"
    ref = f"{host}/{repository}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(src, tag=ref, store=store)
    layer = (packed.manifest.layers or ())[0]
    assert layer.size == 301_568  # the tar of weights.bin: header, data padded to 512, two zero blocks

    result = push(ref, store=store, plain_http=True, chunk_bytes=100_000)

    assert result.digest == packed.digest
    uploads = f"^http://{re.escape(host)}/v2/{re.escape(repository)}/blobs/uploads/"
    assert len(list(named_registry.iter_requests("PATCH", uploads))) == patches
    puts = [r for r in named_registry.iter_requests("PUT", uploads) if r.status == 201]
    assert len(puts) == 2  # the config and the layer, each closed by one PUT
    other = pymodelkit.LocalStore(tmp_path / "other")
    assert pull(ref, store=other, plain_http=True).digest == packed.digest
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert (tmp_path / "out" / "weights.bin").read_bytes() == weights


def test_a_cut_put_to_ghcr_is_sent_again_as_one_put(named_registry: FaultProxy, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _random_file(src / "weights.bin", 300_000)
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
    repository = f"format/cut-{secrets.token_hex(4)}"
    ref = f"ghcr.io/{repository}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(src, tag=ref, store=store)
    layer = (packed.manifest.layers or ())[0]
    named_registry.cut("PUT", f"/blobs/uploads/.*digest=sha256:{layer.digest.hex}", after_bytes=200_000)

    result = push(ref, store=store, plain_http=True, chunk_bytes=100_000, retry=FAST)

    assert result.digest == packed.digest
    assert named_registry.cuts == 1
    uploads = f"^http://ghcr\\.io/v2/{re.escape(repository)}/blobs/uploads/"
    # registry:2 drops a session whose PUT broke off: the status GET finds none, a new session gets the whole blob
    assert [r.status for r in named_registry.iter_requests("GET", uploads)] == [404]
    layer_puts = [r.status for r in named_registry.iter_requests("PUT", f"{uploads}.*{layer.digest.hex}")]
    assert layer_puts == [None, 201]  # the cut one got no answer
    assert len(list(named_registry.iter_requests("POST", uploads))) == 3  # config, layer, layer again
    assert list(named_registry.iter_requests("PATCH")) == []
    assert pull(ref, store=pymodelkit.LocalStore(tmp_path / "other"), plain_http=True).digest == packed.digest
