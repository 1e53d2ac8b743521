"""``copy`` (and ``push``) of a corrupt OCI archive to a registry fails as a digest mismatch, exit 6, before the
corrupt blob's last byte is sent — in one PUT and in chunks — and leaves no tag there; a good archive still copies in
chunks through cut uploads (audit P16)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.errors import DigestMismatchError
from pymodelkit.registry.retry import RetryPolicy
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.trees import flip_blob_byte, unique_repo, write_source_tree

FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)
KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: corrupt\nmodel:\n  name: m\n  path: model\n"
ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def _archives(tmp_path: Path) -> tuple[pymodelkit.PackResult, Path, Path, pymodelkit.Digest]:
    """A packed ModelKit saved to ``good.tar``, and ``corrupt.tar``: the same with one byte of its layer flipped."""
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(write_source_tree(tmp_path, KITFILE, weights=300_000), tag="corrupt:v1", store=store)
    good = tmp_path / "good.tar"
    pymodelkit.save("corrupt:v1", good, store=store)
    layer = max(packed.manifest.layers or (), key=lambda d: d.size)
    corrupt = tmp_path / "corrupt.tar"
    flip_blob_byte(good, layer.digest.hex, corrupt)
    return packed, good, corrupt, layer.digest


def _status(registry: TestRegistry, method: str, path: str) -> int:
    return httpx.request(method, f"{registry.url}/v2/{path}", headers={"Accept": ACCEPT}).status_code


@pytest.mark.parametrize("chunk_bytes", [16 << 20, 64 << 10], ids=["one-put", "chunked"])
def test_a_corrupt_archive_copied_to_a_registry_is_a_digest_mismatch(
    registry: TestRegistry, tmp_path: Path, chunk_bytes: int
) -> None:
    _, _, corrupt, layer = _archives(tmp_path)
    repo = unique_repo("copy", "corrupt")
    with pytest.raises(DigestMismatchError) as caught:
        pymodelkit.copy(f"oci-archive:{corrupt}", f"{registry.host}/{repo}:v1", chunk_bytes=chunk_bytes)
    assert str(caught.value).startswith(f"oci-archive:{corrupt}: blob digest mismatch: expected {layer}, got sha256:")
    assert _status(registry, "GET", f"{repo}/manifests/v1") == 404
    assert _status(registry, "HEAD", f"{repo}/blobs/{layer}") == 404


def test_the_cli_exits_6_for_copy_and_push_of_a_corrupt_archive(
    registry: TestRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, corrupt, layer = _archives(tmp_path)
    repo = unique_repo("copy", "corrupt-cli")
    for command in (["copy", f"oci-archive:{corrupt}", f"{registry.host}/{repo}:v1"],
                    ["push", f"oci-archive:{corrupt}", f"{registry.host}/{repo}:v1"],
                    ["copy", "--chunk-size", "64KiB", f"oci-archive:{corrupt}", f"{registry.host}/{repo}:v1"]):
        assert main(command) == 6
        err = capsys.readouterr().err
        assert err.startswith(f"pymodelkit: error: oci-archive:{corrupt}: blob digest mismatch: expected {layer}, "
                              "got sha256:")
        assert len(err.splitlines()) == 1 and "DIGEST_INVALID" not in err
    assert _status(registry, "GET", f"{repo}/manifests/v1") == 404


def test_a_good_archive_still_copies_in_chunks_through_a_cut_upload(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    packed, good, _, _ = _archives(tmp_path)
    proxy = fault_proxy(registry.url)
    cut = proxy.cut("PATCH", r"/blobs/uploads/", direction="request", after_bytes=30_000, times=1)
    repo = unique_repo("copy", "good-chunked")
    result = pymodelkit.copy(f"oci-archive:{good}", f"{proxy.host}/{repo}:v1", chunk_bytes=64 << 10, retry=FAST,
                             concurrency=1)
    assert result.digest == packed.digest and cut.hits == 1
    pulled = pymodelkit.LocalStore(tmp_path / "puller")
    assert pymodelkit.pull(f"{registry.host}/{repo}:v1", store=pulled).digest == packed.digest
