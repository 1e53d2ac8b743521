"""``copy`` between two registry instances (digest kept, signatures verify at the destination), between repositories
of one registry (by mount), through cut connections on either side (resumed), to a registry that refuses the
artifact, and through an OCI archive."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.errors import RegistryError
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.signing.keys import generate_signing_key, write_key_pair
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.trees import read_tree, unique_repo, write_source_tree

FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: copied\nmodel:\n  name: m\n  path: model\ncode:\n  - path: src\n"


def _publish(tmp_path: Path, ref: str, weights: int = 300_000) -> pymodelkit.PackResult:
    store = pymodelkit.LocalStore(tmp_path / "publisher")
    packed = pymodelkit.pack(write_source_tree(tmp_path, KITFILE, weights=weights), tag=ref, store=store)
    pymodelkit.push(ref, store=store)
    return packed


def _packed_files(tmp_path: Path) -> dict[str, bytes]:
    """The source tree's files this Kitfile packs (its data/ directory is not in the ModelKit)."""
    return {k: v for k, v in read_tree(tmp_path / "src-tree").items() if not k.startswith("data/")}


def _blobs(packed: pymodelkit.PackResult) -> set[pymodelkit.Digest]:
    return {d.digest for d in [packed.manifest.config, *(packed.manifest.layers or ())]}


def _manifest(registry: TestRegistry, repo: str, reference: str) -> httpx.Response:
    return httpx.get(f"{registry.url}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})


def test_copy_between_two_registries_keeps_the_digest_and_skips_what_is_there(
    make_registry: Callable[..., TestRegistry], tmp_path: Path
) -> None:
    one, two = make_registry(), make_registry()
    repo = unique_repo("copy", "between")
    packed = _publish(tmp_path, f"{one.host}/{repo}:v1")
    result = pymodelkit.copy(f"{one.host}/{repo}:v1", f"{two.host}/{repo}:v2", chunk_bytes=64 << 10)
    assert result.digest == packed.digest
    assert set(result.copied) == _blobs(packed) and result.mounted == () and result.skipped == ()
    assert _manifest(two, repo, "v2").content == packed.manifest_bytes
    pulled = pymodelkit.LocalStore(tmp_path / "puller")
    assert pymodelkit.pull(f"{two.host}/{repo}:v2", store=pulled).digest == packed.digest
    pymodelkit.unpack(f"{two.host}/{repo}:v2", tmp_path / "out", store=pulled)
    assert read_tree(tmp_path / "out") == _packed_files(tmp_path)
    again = pymodelkit.copy(f"{one.host}/{repo}:v1", f"{two.host}/{repo}:v3")
    assert again.copied == () and set(again.skipped) == _blobs(packed)


def test_copy_within_one_registry_mounts_every_blob(registry: TestRegistry, tmp_path: Path) -> None:
    source, target = unique_repo("copy", "mount-src"), unique_repo("copy", "mount-dst")
    packed = _publish(tmp_path, f"{registry.host}/{source}:v1")
    result = pymodelkit.copy(f"{registry.host}/{source}:v1", f"docker://{registry.host}/{target}:v1")
    assert set(result.mounted) == _blobs(packed) and result.copied == () and result.bytes_copied == 0
    assert _manifest(registry, target, "v1").content == packed.manifest_bytes


def test_copy_with_signatures_verifies_at_the_destination(
    make_registry: Callable[..., TestRegistry], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = make_registry(), make_registry()
    key, pub = write_key_pair(generate_signing_key(), tmp_path / "cosign", password=None)
    repo = unique_repo("copy", "signed")
    packed = _publish(tmp_path, f"{one.host}/{repo}:v1")
    pymodelkit.sign(f"{one.host}/{repo}:v1", key, bundle=True)
    code = main(["copy", f"{one.host}/{repo}:v1", f"{two.host}/{repo}:v1", "--with-signatures"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"Copied {packed.digest} to {two.host}/{repo}:v1 (")
    sig_tag, index_tag = f"sha256-{packed.digest.hex}.sig", f"sha256-{packed.digest.hex}"
    assert _manifest(two, repo, sig_tag).content == _manifest(one, repo, sig_tag).content
    assert _manifest(two, repo, index_tag).content == _manifest(one, repo, index_tag).content
    assert pymodelkit.verify(f"{two.host}/{repo}:v1", [pub]).digest == packed.digest
    unsigned = unique_repo("copy", "unsigned")
    _publish(tmp_path / "second", f"{one.host}/{unsigned}:v1", weights=1000)
    plain = pymodelkit.copy(f"{one.host}/{unsigned}:v1", f"{two.host}/{unsigned}:v1", with_signatures=True)
    assert plain.signatures == ()


def test_copy_merges_into_an_existing_referrers_index(
    make_registry: Callable[..., TestRegistry], tmp_path: Path
) -> None:
    one, two = make_registry(), make_registry()
    key, _ = write_key_pair(generate_signing_key(), tmp_path / "cosign", password=None)
    repo = unique_repo("copy", "merge")
    packed = _publish(tmp_path, f"{one.host}/{repo}:v1")
    pymodelkit.push(f"{one.host}/{repo}:v1", f"{two.host}/{repo}:v1",
                    store=pymodelkit.LocalStore(tmp_path / "publisher"))
    pymodelkit.sign(f"{one.host}/{repo}:v1", key, bundle=True, legacy=False)
    pymodelkit.sign(f"{two.host}/{repo}:v1", key, bundle=True, legacy=False)  # the destination's own referrer
    before = json.loads(_manifest(two, repo, f"sha256-{packed.digest.hex}").content)["manifests"]
    pymodelkit.copy(f"{one.host}/{repo}:v1", f"{two.host}/{repo}:v1", with_signatures=True)
    after = json.loads(_manifest(two, repo, f"sha256-{packed.digest.hex}").content)["manifests"]
    source = json.loads(_manifest(one, repo, f"sha256-{packed.digest.hex}").content)["manifests"]
    assert after == before + source


def test_copy_resumes_after_cuts_on_either_side(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    repo = unique_repo("copy", "faults")
    packed = _publish(tmp_path, f"{registry.host}/{repo}:v1", weights=600_000)
    src, dst = fault_proxy(registry.url), fault_proxy(registry.url)  # two hosts: no mount, every byte streams
    cut_source = src.cut("GET", r"/blobs/sha256:", direction="response", after_bytes=100_000, times=1)
    cut_upload = dst.cut("PATCH", r"/blobs/uploads/", direction="request", after_bytes=50_000, times=1)
    target = unique_repo("copy", "faults-dst")
    result = pymodelkit.copy(f"{src.host}/{repo}:v1", f"{dst.host}/{target}:v1", chunk_bytes=128 << 10,
                             retry=FAST, concurrency=1)
    assert result.digest == packed.digest and set(result.copied) == _blobs(packed)
    assert (cut_source.hits, cut_upload.hits) == (1, 1)
    assert _manifest(registry, target, "v1").content == packed.manifest_bytes
    pulled = pymodelkit.LocalStore(tmp_path / "puller")
    pymodelkit.unpack(f"{registry.host}/{target}:v1", tmp_path / "out", store=pulled)
    assert read_tree(tmp_path / "out") == _packed_files(tmp_path)


def test_a_destination_refusing_the_artifact_gets_a_clear_error(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy],
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = unique_repo("copy", "refused")
    packed = _publish(tmp_path, f"{registry.host}/{repo}:v1", weights=1000)
    strict = fault_proxy(registry.url)  # a registry that takes the blobs but refuses ModelKit manifests
    body = json.dumps({"errors": [{"code": "MANIFEST_INVALID", "message": "artifact type not allowed"}]}).encode()
    strict.fail("PUT", r"/manifests/", status=400, body=body, times=None)
    with pytest.raises(RegistryError) as caught:
        pymodelkit.copy(f"{registry.host}/{repo}:v1", f"{strict.host}/{repo}:v1")
    error = caught.value
    assert (error.status, error.code) == (400, "MANIFEST_INVALID")
    assert str(error).startswith(f"{strict.host}/{repo} refused manifest {packed.digest} "
                                 "(application/vnd.kitops.modelkit.manifest.v1+json) as v1: ")
    assert main(["copy", f"{registry.host}/{repo}:v1", f"{strict.host}/{repo}:v1"]) == 11
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pymodelkit: error: {strict.host}/{repo} refused manifest")


def test_copy_to_and_from_an_archive(make_registry: Callable[..., TestRegistry], tmp_path: Path) -> None:
    one, two = make_registry(), make_registry()
    repo = unique_repo("copy", "archive")
    packed = _publish(tmp_path, f"{one.host}/{repo}:v1")
    archive = tmp_path / "kit.tar"
    out = pymodelkit.copy(f"{one.host}/{repo}:v1", f"oci-archive:{archive}")
    assert out.destination == f"oci-archive:{archive}"
    loaded = pymodelkit.load(archive, store=pymodelkit.LocalStore(tmp_path / "loader"))
    assert [str(k.reference) for k in loaded.modelkits] == [f"{one.host}/{repo}:v1"]
    back = pymodelkit.copy(f"oci-archive:{archive}:v1", f"{two.host}/{repo}:v9")
    assert back.digest == packed.digest
    assert _manifest(two, repo, "v9").content == packed.manifest_bytes
