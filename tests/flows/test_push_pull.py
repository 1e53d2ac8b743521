"""pack → push → pull → unpack against the real registry, byte-exact; chunked, mounted and skipped blobs; auth in
each variant; errors that change nothing; and skopeo, an independent client, reading what we push."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import pymodelkit
from pymodelkit.cli.remote import pull_command, push_command
from pymodelkit.errors import AuthError, InvalidReferenceError, RegistryError
from pymodelkit.registry import pull, push
from pymodelkit.registry.credentials import Credential, ExplicitCredentials
from pymodelkit.registry.retry import RetryPolicy
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.trees import CHURN_KITFILE, read_tree, unique_repo, write_source_tree

SKOPEO = "/usr/bin/skopeo"
FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, budget_s=10.0)


def _source(root: Path, weights: int = 1_500_000) -> Path:
    return write_source_tree(root, CHURN_KITFILE, weights=weights)


def _tree(root: Path) -> dict[str, bytes]:
    return read_tree(root)


def _repo(name: str) -> str:
    return unique_repo("flows", name)


def test_round_trip_is_byte_exact(registry: TestRegistry, tmp_path: Path) -> None:
    src = _source(tmp_path)
    ref = f"{registry.host}/{_repo('roundtrip')}:v1"
    first = pymodelkit.LocalStore(tmp_path / "home1")
    packed = pymodelkit.pack(src, tag=ref, store=first)
    pushed = push(ref, store=first)
    assert pushed.digest == packed.digest
    assert len(pushed.uploaded) == 1 + len(packed.manifest.layers or ())
    second = pymodelkit.LocalStore(tmp_path / "home2")
    pulled = pull(ref, store=second)
    assert pulled.digest == packed.digest
    assert second.read_blob(pulled.digest) == packed.manifest_bytes
    out = tmp_path / "out"
    pymodelkit.unpack(ref, out, store=second)
    assert _tree(out) == _tree(src)
    pymodelkit.unpack(ref, tmp_path / "out-first", store=first)
    assert _tree(out) == _tree(tmp_path / "out-first")
    assert second.fsck().ok


def test_chunked_push_sends_every_chunk_and_round_trips(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    src = _source(tmp_path, weights=1_000_000)
    proxy = fault_proxy(registry.url)
    ref = f"{proxy.host}/{_repo('chunked')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home1")
    packed = pymodelkit.pack(src, tag=ref, store=store)
    push(ref, store=store, chunk_bytes=256 << 10, plain_http=True)
    model_layer = max(packed.manifest.layers or (), key=lambda d: d.size)
    patches = [r for r in proxy.requests if r.method == "PATCH"]
    big = [d for d in [packed.manifest.config, *(packed.manifest.layers or ())] if d.size >= 256 << 10]
    assert len(patches) == sum(-(-d.size // (256 << 10)) for d in big)
    assert model_layer.size > 1_000_000
    other = pymodelkit.LocalStore(tmp_path / "home2")
    assert pull(ref, store=other, plain_http=True).digest == packed.digest
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert _tree(tmp_path / "out") == _tree(src)


def test_second_push_skips_every_blob(registry: TestRegistry, tmp_path: Path) -> None:
    ref = f"{registry.host}/{_repo('again')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(_source(tmp_path), tag=ref, store=store)
    push(ref, store=store)
    again = push(ref, store=store)
    blobs = {packed.manifest.config.digest, *(d.digest for d in packed.manifest.layers or ())}
    assert (set(again.skipped), again.uploaded, again.mounted, again.bytes_uploaded) == (blobs, (), (), 0)


def test_push_to_another_repository_mounts_without_resending(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry.url)
    source = f"{proxy.host}/{_repo('mount-a')}:v1"
    target = f"{proxy.host}/{_repo('mount-b')}:v2"
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(_source(tmp_path), tag=source, store=store)
    push(source, store=store, plain_http=True)
    before = len(proxy.requests)
    result = push(source, target, store=store, plain_http=True)
    blobs = {packed.manifest.config.digest, *(d.digest for d in packed.manifest.layers or ())}
    assert set(result.mounted) == blobs
    assert result.uploaded == ()
    sent = [(r.method, r.target.split("?")[0].rsplit("/", 1)[0]) for r in proxy.requests[before:]]
    assert not [r for r in sent if r[0] in ("PATCH", "PUT") and "/blobs/" in r[1]]
    assert sum(1 for r in proxy.requests[before:] if r.method == "POST" and "mount=" in r.target) == len(blobs)
    assert pull(target, store=pymodelkit.LocalStore(tmp_path / "home2"), plain_http=True).digest == packed.digest


def test_pull_by_digest_stores_it_untagged(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("bydigest")
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(_source(tmp_path), tag=f"{registry.host}/{repo}:v1", store=store)
    push(f"{registry.host}/{repo}:v1", store=store)
    other = pymodelkit.LocalStore(tmp_path / "home2")
    result = pull(f"{registry.host}/{repo}@{packed.digest}", store=other)
    assert result.reference.digest == packed.digest
    [listed] = other.list_modelkits()
    assert (listed.repo_key, listed.digest, listed.tags) == (f"{registry.host}/{repo}", packed.digest, ())


def test_parents_are_pulled_with_the_child(registry: TestRegistry, tmp_path: Path) -> None:
    base_ref = f"{registry.host}/{_repo('base')}:v1"
    child_ref = f"{registry.host}/{_repo('child')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    base_src = _source(tmp_path / "base")
    pymodelkit.pack(base_src, tag=base_ref, store=store)
    child_src = tmp_path / "child"
    (child_src / "docs").mkdir(parents=True)
    (child_src / "docs" / "README.md").write_text("child docs\n")
    (child_src / "Kitfile").write_text(f"manifestVersion: 1.0.0\nmodel:\n  path: {base_ref}\ndocs:\n  - path: docs\n")
    pymodelkit.pack(child_src, tag=child_ref, store=store)
    push(base_ref, store=store)
    push(child_ref, store=store)
    other = pymodelkit.LocalStore(tmp_path / "home2")
    result = pull(child_ref, store=other)
    assert [str(p) for p in result.parents] == [base_ref]
    assert {k.repo_key for k in other.list_modelkits()} == {base_ref.rsplit(":", 1)[0], child_ref.rsplit(":", 1)[0]}
    out = tmp_path / "out"
    pymodelkit.unpack(child_ref, out, store=other)
    assert (out / "model" / "weights.bin").read_bytes() == (base_src / "model" / "weights.bin").read_bytes()
    assert (out / "docs" / "README.md").read_text() == "child docs\n"


# ----- auth variants ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["registry_basic", "registry_token"])
def test_round_trip_with_auth(variant: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server: TestRegistry = request.getfixturevalue(variant)
    assert server.username is not None and server.password is not None
    credentials = ExplicitCredentials(Credential(username=server.username, password=server.password))
    ref = f"{server.host}/{_repo('auth')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home1")
    src = _source(tmp_path, weights=600_000)
    packed = pymodelkit.pack(src, tag=ref, store=store)
    push(ref, store=store, credentials=credentials, chunk_bytes=256 << 10)
    other = pymodelkit.LocalStore(tmp_path / "home2")
    assert pull(ref, store=other, credentials=credentials).digest == packed.digest
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert _tree(tmp_path / "out") == _tree(src)


def test_wrong_password_is_an_auth_error_and_pushes_nothing(registry_basic: TestRegistry, tmp_path: Path) -> None:
    assert registry_basic.username is not None
    ref = f"{registry_basic.host}/{_repo('denied')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.pack(_source(tmp_path, weights=10_000), tag=ref, store=store)
    wrong = ExplicitCredentials(Credential(username=registry_basic.username, password="not-the-password"))
    with pytest.raises(AuthError) as info:
        push(ref, store=store, credentials=wrong)
    assert info.value.status == 401
    assert "not-the-password" not in str(info.value)


# ----- bad input ----------------------------------------------------------------------------------------------


def test_unknown_tag_is_a_404_naming_the_tag(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("missing")
    store = pymodelkit.LocalStore(tmp_path / "home")
    with pytest.raises(RegistryError) as info:
        pull(f"{registry.host}/{repo}:no-such-tag", store=store)
    assert info.value.status == 404
    assert str(info.value).startswith(f"manifest {registry.host}/{repo}:no-such-tag not found")
    assert store.list_modelkits() == []
    assert not store.storage.exists() or not any((store.storage / "blobs").rglob("*[0-9a-f]"))


def test_unknown_host_is_a_clean_error(tmp_path: Path) -> None:
    store = pymodelkit.LocalStore(tmp_path / "home")
    with pytest.raises(RegistryError) as info:
        pull("nonexistent.invalid:5000/team/model:v1", store=store)
    assert str(info.value).startswith("cannot reach registry nonexistent.invalid:5000: ")
    assert store.list_modelkits() == []


@pytest.mark.parametrize(
    ("reference", "message"),
    [("127.0.0.1:5000/Team/Model:v1", "repository name must be lowercase"),
     ("127.0.0.1:5000/team/model:bad tag!", "invalid tag"),
     ("team/model:v1", "registry is required when pulling"),
     ("127.0.0.1:5000/team/model:v1,v2", "reference cannot include multiple tags")],
)
def test_malformed_references_are_refused(reference: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceError, match=message):
        pull(reference, store=pymodelkit.LocalStore(tmp_path / "home"))


def test_push_without_a_registry_is_refused(tmp_path: Path) -> None:
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.pack(_source(tmp_path, weights=1000), tag="team/model:v1", store=store)
    with pytest.raises(InvalidReferenceError, match="registry is required when pushing"):
        push("team/model:v1", store=store)


def test_pulling_something_that_is_not_a_model_is_refused(registry: TestRegistry, tmp_path: Path) -> None:
    from pymodelkit.registry.client import RegistryClient
    from pymodelkit.registry.upload import FileSpan, put_blob, start_upload

    repo = _repo("notmodel")
    config = b"{}"
    path = tmp_path / "cfg"
    path.write_bytes(config)
    digest = pymodelkit.Digest.from_bytes(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(digest), "size": 2},
        "layers": [],
    }).encode()
    with RegistryClient(registry.host) as client, path.open("rb") as handle:
        put_blob(client, start_upload(client, repo), digest, FileSpan(handle.fileno(), 0, 2))
        client.put_manifest(repo, "image", manifest, "application/vnd.oci.image.manifest.v1+json")
    store = pymodelkit.LocalStore(tmp_path / "home")
    with pytest.raises(pymodelkit.ModelKitError, match=f"reference {registry.host}/{repo}:image does not refer to a "
                                                      "model"):
        pull(f"{registry.host}/{repo}:image", store=store)
    assert store.list_modelkits() == []


# ----- an independent client ------------------------------------------------------------------------------------


def test_skopeo_reads_what_we_push(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("skopeo")
    ref = f"{registry.host}/{repo}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    packed = pymodelkit.pack(_source(tmp_path, weights=400_000), tag=ref, store=store)
    push(ref, store=store, chunk_bytes=128 << 10)
    raw = subprocess.run([SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         check=True, capture_output=True, timeout=60).stdout
    assert raw == packed.manifest_bytes
    layout = tmp_path / "oci"
    subprocess.run([SKOPEO, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:v1"],
                   check=True, capture_output=True, timeout=120)
    blobs = {d.digest for d in [packed.manifest.config, *(packed.manifest.layers or ())]}
    for digest in blobs:
        data = (layout / "blobs" / "sha256" / digest.hex).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest.hex
        assert data == store.blob_path(digest).read_bytes()
    assert (layout / "blobs" / "sha256" / packed.digest.hex).read_bytes() == packed.manifest_bytes


def test_we_pull_what_skopeo_pushes(registry: TestRegistry, tmp_path: Path) -> None:
    ref = f"{registry.host}/{_repo('from-skopeo')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    src = _source(tmp_path, weights=300_000)
    packed = pymodelkit.pack(src, tag=ref, store=store)
    push(ref, store=store)
    layout = tmp_path / "oci"
    subprocess.run([SKOPEO, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:v1"],
                   check=True, capture_output=True, timeout=120)
    again = f"{registry.host}/{_repo('skopeo-pushed')}:v1"
    subprocess.run([SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{again}"],
                   check=True, capture_output=True, timeout=120)
    other = pymodelkit.LocalStore(tmp_path / "home2")
    assert pull(again, store=other).digest == packed.digest
    pymodelkit.unpack(again, tmp_path / "out", store=other)
    assert _tree(tmp_path / "out") == _tree(src)


# ----- the CLI --------------------------------------------------------------------------------------------------


def test_cli_push_and_pull(registry: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = f"{registry.host}/{_repo('cli')}:v1"
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home1"))
    packed = pymodelkit.pack(_source(tmp_path, weights=50_000), tag=ref)
    runner = CliRunner()
    pushed = runner.invoke(push_command, [ref, "--chunk-size", "16KiB", "--concurrency", "2"])
    assert (pushed.exit_code, pushed.output) == (0, f"Pushed {packed.digest}\n")
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home2"))
    pulled = runner.invoke(pull_command, [ref])
    assert (pulled.exit_code, pulled.output) == (0, f"Pulled {packed.digest}\n")
    assert [k.digest for k in pymodelkit.LocalStore(tmp_path / "home2").list_modelkits()] == [packed.digest]


def test_cli_rejects_a_bad_chunk_size() -> None:
    result = CliRunner().invoke(push_command, ["127.0.0.1:5000/a:b", "--chunk-size", "lots"])
    assert result.exit_code == 2
    assert "'lots' is not a size such as 33554432, 512KiB or 32MiB" in result.output
