"""The per-repo ``-index.json`` and ``-tags.json`` files: exact bytes, tag moves, de-duplication, deletion."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci import Descriptor, Digest, Manifest
from pymodelkit.store import LocalStore
from pymodelkit.store.layout import repo_index_path, repo_tags_path
from pymodelkit.store.repoindex import check_tag, read_repo_manifests, write_repo_manifests

BuildModelKit = Callable[..., tuple[Descriptor, Manifest]]

FIRST = "sha256:1c756e3551c45407b59e6ad98d436ff183d4d30fd8e58a6a29b71d8c78791f84"  # [b"weights"], name test
SECOND = "sha256:fe686ef398a8c24b2ddc4ee4101e2b8c009637d7203ad1c3357fac526d892139"  # [b"weights", b"data"], second
MT = "application/vnd.oci.image.manifest.v1+json"
FIRST_DESC = f'{{"mediaType":"{MT}","digest":"{FIRST}","size":471}}'
SECOND_DESC = f'{{"mediaType":"{MT}","digest":"{SECOND}","size":624}}'


def test_add_manifest_writes_kit_bytes(store: LocalStore, build: BuildModelKit) -> None:
    desc, _ = build(store, "localhost/test", [b"weights"], tags=["v1", "latest"])
    assert desc == Descriptor(MT, Digest.parse(FIRST), 471)
    storage = store.storage
    assert (storage / "bG9jYWxob3N0L3Rlc3Q=-index.json").read_text() == (
        f'{{"schemaVersion":2,"manifests":[{FIRST_DESC}]}}'
    )
    assert (storage / "bG9jYWxob3N0L3Rlc3Q=-tags.json").read_text() == (f'{{"latest":{FIRST_DESC},"v1":{FIRST_DESC}}}')
    assert (storage / "index.json").read_text() == (
        f'{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{FIRST_DESC}]}}'
    )


def test_repack_with_same_tag_moves_it_and_keeps_old_manifest(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["latest"])
    build(store, "localhost/test", [b"weights", b"data"], tags=["latest"], name="second")
    assert repo_index_path(store.storage, "localhost/test").read_text() == (
        f'{{"schemaVersion":2,"manifests":[{FIRST_DESC},{SECOND_DESC}]}}'
    )
    assert repo_tags_path(store.storage, "localhost/test").read_text() == f'{{"latest":{SECOND_DESC}}}'
    listed = [(kit.digest, kit.tags) for kit in store.list_modelkits()]
    assert listed == [(Digest.parse(FIRST), ()), (Digest.parse(SECOND), ("latest",))]


def test_adding_same_manifest_twice_does_not_duplicate(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["a"])
    build(store, "localhost/test", [b"weights"], tags=["b"])
    assert repo_index_path(store.storage, "localhost/test").read_text() == (
        f'{{"schemaVersion":2,"manifests":[{FIRST_DESC}]}}'
    )
    assert (store.storage / "index.json").read_text().count(FIRST) == 1
    assert repo_tags_path(store.storage, "localhost/test").read_text() == f'{{"a":{FIRST_DESC},"b":{FIRST_DESC}}}'


def test_untagged_add_writes_no_tags_file(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/_", [b"weights"])
    assert repo_index_path(store.storage, "localhost/_").name == "bG9jYWxob3N0L18=-index.json"
    assert repo_index_path(store.storage, "localhost/_").is_file()
    assert not repo_tags_path(store.storage, "localhost/_").exists()


def test_read_keeps_insertion_order_drops_duplicates_and_ref_names(store: LocalStore) -> None:
    path = repo_index_path(store.storage, "localhost/test")
    path.parent.mkdir(parents=True)
    path.write_text(
        f'{{"schemaVersion":2,"manifests":[{SECOND_DESC},'
        f'{{"mediaType":"{MT}","digest":"{FIRST}","size":471,'
        f'"annotations":{{"org.opencontainers.image.ref.name":"old"}}}},{SECOND_DESC}]}}'
    )
    assert [str(d.digest) for d in read_repo_manifests(path)] == [SECOND, FIRST]
    write_repo_manifests(path, read_repo_manifests(path))
    assert path.read_text() == f'{{"schemaVersion":2,"manifests":[{SECOND_DESC},{FIRST_DESC}]}}'
    write_repo_manifests(path, [])
    assert not path.exists()


@pytest.mark.parametrize("tag", ["", "-dash", ".dot", "a\n", "ünï", "a" * 129, "with space", "a:b"])
def test_invalid_tags_are_refused(tag: str, store: LocalStore, build: BuildModelKit) -> None:
    with pytest.raises(InvalidReferenceError, match=r"^invalid tag "):
        check_tag(tag)
    with pytest.raises(InvalidReferenceError, match=r"^invalid tag "):
        build(store, "localhost/test", [b"weights"], tags=["ok", tag])
    assert not repo_index_path(store.storage, "localhost/test").exists()


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A-b_c.9", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag
