"""``unpack`` straight from a registry, as kit's: byte-exact files, only the selected layers fetched, nothing recorded
unless the whole ModelKit came down, parents resolved the same way; and the remote CLI commands end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.errors import NotFoundError, RegistryNotFoundError
from pymodelkit.registry import push
from pymodelkit.registry.client import RegistryClient
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry
from tests.support.trees import read_tree, unique_repo, write_source_tree

KITFILE = """manifestVersion: 1.0.0
package:
  name: churn
  authors: [Ada]
model:
  name: churn
  path: model
code:
  - path: src
datasets:
  - name: train
    path: data/train.csv
"""  # in the order kit writes a Kitfile back, so an unpacked tree equals the source tree


def _source(root: Path, weights: int = 300_000) -> Path:
    return write_source_tree(root, KITFILE, weights=weights)


def _tree(root: Path) -> dict[str, bytes]:
    return read_tree(root)


def _repo(name: str) -> str:
    return unique_repo("unpack", name)


def _published(proxy: FaultProxy, tmp_path: Path, name: str) -> tuple[str, Path, pymodelkit.PackResult]:
    """A ModelKit packed in a publisher's store and pushed through ``proxy``: (reference, source tree, pack)."""
    ref = f"{proxy.host}/{_repo(name)}:v1"
    src = _source(tmp_path)
    publisher = pymodelkit.LocalStore(tmp_path / "publisher")
    packed = pymodelkit.pack(src, tag=ref, store=publisher)
    push(ref, store=publisher, plain_http=True)
    return ref, src, packed


def _blob_gets(proxy: FaultProxy, since: int) -> list[str]:
    return [r.target.rsplit("/", 1)[-1] for r in proxy.requests_since(since)
            if r.method == "GET" and "/blobs/" in r.target]


def _layer(packed: pymodelkit.PackResult, media_kind: str) -> pymodelkit.Descriptor:
    [layer] = [d for d in packed.manifest.layers or () if f".{media_kind}." in d.media_type]
    return layer


def _stored_blobs(store: pymodelkit.LocalStore) -> set[str]:
    blobs = store.storage / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in blobs.iterdir()} if blobs.exists() else set()


def test_unpack_from_the_registry_is_byte_exact_and_records_the_whole_modelkit(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(registry.url)
    ref, src, packed = _published(proxy, tmp_path, "whole")
    store = pymodelkit.LocalStore(tmp_path / "home")
    before = proxy.settled_count()
    result = pymodelkit.unpack(ref, tmp_path / "out", store=store, plain_http=True)
    assert result.digest == packed.digest
    assert _tree(tmp_path / "out") == _tree(src)
    blobs = [packed.manifest.config, *(packed.manifest.layers or ())]
    assert sorted(_blob_gets(proxy, before)) == sorted(str(d.digest) for d in blobs)
    [listed] = store.list_modelkits()
    assert (listed.repo_key, listed.digest, listed.tags) == (ref.rsplit(":", 1)[0], packed.digest, ("v1",))
    assert store.fsck().ok
    again = proxy.settled_count()
    pymodelkit.unpack(ref, tmp_path / "again", store=store, plain_http=True)
    assert proxy.requests_since(again) == []  # now in the local store: no request at all
    assert _tree(tmp_path / "again") == _tree(src)


def test_unpack_with_a_filter_fetches_only_the_selected_layers_and_records_nothing(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(registry.url)
    ref, src, packed = _published(proxy, tmp_path, "filtered")
    store = pymodelkit.LocalStore(tmp_path / "home")
    model = _layer(packed, "model")
    before = proxy.settled_count()
    result = pymodelkit.unpack(ref, tmp_path / "out", filters=["model"], store=store, plain_http=True)
    assert result.kitfile_path is None
    assert _tree(tmp_path / "out") == {"model/weights.bin": (src / "model" / "weights.bin").read_bytes()}
    assert _blob_gets(proxy, before) == [str(packed.manifest.config.digest), str(model.digest)]
    assert sum(1 for r in proxy.requests_since(before) if "/manifests/" in r.target) == 1
    assert store.list_modelkits() == []
    assert _stored_blobs(store) == {str(packed.manifest.config.digest), str(model.digest)}
    gc = store.gc()
    assert set(map(str, gc.removed)) == {str(packed.manifest.config.digest), str(model.digest)}

    # Again, then without a filter: only what the store lacks is fetched, and then the ModelKit is recorded.
    pymodelkit.unpack(ref, tmp_path / "out2", filters=["datasets"], store=store, plain_http=True)
    middle = proxy.settled_count()
    pymodelkit.unpack(ref, tmp_path / "out3", store=store, plain_http=True)
    fetched = _blob_gets(proxy, middle)
    assert sorted(fetched) == sorted(
        str(d.digest) for d in packed.manifest.layers or () if ".dataset." not in d.media_type
    )
    assert str(packed.manifest.config.digest) not in fetched
    assert _tree(tmp_path / "out3") == _tree(src)
    assert [k.digest for k in store.list_modelkits()] == [packed.digest]


def test_a_remote_parent_is_unpacked_with_its_model_layers_only(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(registry.url)
    base_ref, base_src, base = _published(proxy, tmp_path / "base", "base")
    child_ref = f"{proxy.host}/{_repo('child')}:v1"
    child_src = tmp_path / "child"
    (child_src / "docs").mkdir(parents=True)
    (child_src / "docs" / "README.md").write_text("child docs\n")
    (child_src / "Kitfile").write_text(f"manifestVersion: 1.0.0\nmodel:\n  path: {base_ref}\ndocs:\n  - path: docs\n")
    publisher = pymodelkit.LocalStore(tmp_path / "base" / "publisher")
    child = pymodelkit.pack(child_src, tag=child_ref, store=publisher)
    push(child_ref, store=publisher, plain_http=True)

    store = pymodelkit.LocalStore(tmp_path / "home")
    before = proxy.settled_count()
    pymodelkit.unpack(child_ref, tmp_path / "out", store=store, plain_http=True)
    out = tmp_path / "out"
    assert (out / "model" / "weights.bin").read_bytes() == (base_src / "model" / "weights.bin").read_bytes()
    assert (out / "docs" / "README.md").read_text() == "child docs\n"
    assert not (out / "data").exists() and not (out / "src").exists()
    assert sorted(_blob_gets(proxy, before)) == sorted([
        str(base.manifest.config.digest), str(_layer(base, "model").digest),
        str(child.manifest.config.digest), *(str(d.digest) for d in child.manifest.layers or ()),
    ])
    # The child came down whole and is recorded; the parent only in part, so it is not.
    assert [(k.repo_key, k.tags) for k in store.list_modelkits()] == [(child_ref.rsplit(":", 1)[0], ("v1",))]


def test_unpack_of_a_missing_remote_tag_writes_nothing(registry: TestRegistry, tmp_path: Path) -> None:
    repo = _repo("missing")
    store = pymodelkit.LocalStore(tmp_path / "home")
    with pytest.raises(RegistryNotFoundError) as info:
        pymodelkit.unpack(f"{registry.host}/{repo}:v1", tmp_path / "out", store=store)
    assert str(info.value).startswith(f"manifest {registry.host}/{repo}:v1 not found (registry answered 404")
    assert not (tmp_path / "out").exists()
    assert store.list_modelkits() == [] and _stored_blobs(store) == set()


def test_unpack_of_a_localhost_reference_never_asks_a_registry(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        pymodelkit.unpack("team/model:v1", tmp_path / "out", store=pymodelkit.LocalStore(tmp_path / "home"))
    assert str(info.value) == "Could not find modelkit team/model:v1"
    assert not isinstance(info.value, RegistryNotFoundError)


def test_a_corrupt_cached_layer_is_refused_before_anything_is_written(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy(registry.url)
    ref, _, packed = _published(proxy, tmp_path, "corrupt")
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.unpack(ref, tmp_path / "first", filters=["model"], store=store, plain_http=True)
    model = _layer(packed, "model")
    path = store.blob_path(model.digest)
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[-600] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pymodelkit.DigestMismatchError, match=f"layer {model.digest} .* is corrupt"):
        pymodelkit.unpack(ref, tmp_path / "second", store=store, plain_http=True)
    assert not (tmp_path / "second").exists()


# ----- the CLI --------------------------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_unpack_list_inspect_info_from_the_registry(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = fault_proxy(registry.url)
    ref, src, packed = _published(proxy, tmp_path, "cli")
    home = str(tmp_path / "home")
    repo_key = ref.rsplit(":", 1)[0]

    code, out, err = _run(capsys, "--config", home, "unpack", ref, "-d", str(tmp_path / "out"), "--plain-http")
    assert (code, err) == (0, "")
    assert out == f"Unpacked 3 files from {packed.digest} to {tmp_path / 'out'}\n"
    assert _tree(tmp_path / "out") == _tree(src)

    code, out, err = _run(capsys, "--config", home, "list", repo_key, "--plain-http")
    assert (code, err) == (0, "")
    repository = repo_key.split("/", 1)[1]
    assert [line.split() for line in out.splitlines()] == [
        ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"],
        [repository, "v1", "Ada", "churn", "303.5", "KiB", str(packed.digest)],
    ]

    before = proxy.settled_count()
    code, out, _ = _run(capsys, "--config", home, "inspect", "-r", ref, "--plain-http")
    assert code == 0
    assert out == pymodelkit.inspect(ref, pymodelkit.LocalStore(Path(home))) + "\n"
    code, out, _ = _run(capsys, "--config", home, "info", "--remote", ref, "--plain-http")
    assert code == 0
    assert out == pymodelkit.dump_kitfile(pymodelkit.info(ref, pymodelkit.LocalStore(Path(home))))
    layers = {str(d.digest) for d in packed.manifest.layers or ()}
    assert not [r for r in proxy.requests_since(before) if r.target.rsplit("/", 1)[-1] in layers]


def test_cli_remote_remove(
    registry_deletes: TestRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo("cli-remove")
    ref = f"{registry_deletes.host}/{repo}:v1"
    publisher = pymodelkit.LocalStore(tmp_path / "publisher")
    packed = pymodelkit.pack(_source(tmp_path, weights=1000), tag=ref, store=publisher)
    push(ref, store=publisher)
    home = str(tmp_path / "home")

    code, out, err = _run(capsys, "--config", home, "remove", "-r", ref)
    assert (code, out) == (11, "")
    assert err == (
        "pymodelkit: error: failed to untag ModelKit in remote: remote registry does not support untagging "
        "(removing by digest, or with force, deletes the ModelKit and every tag pointing at it) [registry answered "
        f"400 DIGEST_INVALID to DELETE http://{registry_deletes.host}/v2/{repo}/manifests/v1]\n"
    )
    code, out, err = _run(capsys, "--config", home, "remove", "--remote", "--force", ref)
    assert (code, out, err) == (0, f"Removed {registry_deletes.host}/{repo}@{packed.digest}\n", "")
    with RegistryClient(registry_deletes.host) as client:
        assert client.list_tags(repo) == []
    code, out, err = _run(capsys, "--config", home, "remove", "-r", ref)
    assert code == 5 and err.startswith(f"pymodelkit: error: manifest {ref} not found") and err.count("\n") == 1
    code, _, err = _run(capsys, "--config", home, "remove", "-r", "--all")
    assert code == 2 and "--remote cannot be used with --all" in err
