"""LocalStore operations: add, resolve, read, list, tag and remove (kit's remove_test cases, spec §10.5)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pymodelkit.errors import InvalidReferenceError, ModelKitError, NotFoundError, StoreError
from pymodelkit.oci import Descriptor, Digest, Manifest, Reference, parse_reference
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MODELKIT_CONFIG
from pymodelkit.store import LocalStore, Removal, StoredModelKit
from pymodelkit.store.layout import repo_index_path, repo_tags_path

BuildModelKit = Callable[..., tuple[Descriptor, Manifest]]

FIRST = Digest.parse("sha256:1c756e3551c45407b59e6ad98d436ff183d4d30fd8e58a6a29b71d8c78791f84")
SECOND = Digest.parse("sha256:fe686ef398a8c24b2ddc4ee4101e2b8c009637d7203ad1c3357fac526d892139")
EMPTY = Digest.parse("sha256:5c61b41f18ccfc0fe495ef7e02695f56dddabe89708a95315ef91a0ced6f31dd")
WEIGHTS = Digest.parse("sha256:9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c")
DATA = Digest.parse("sha256:3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7")


def ref(text: str) -> Reference:
    return parse_reference(text)[0]


def blobs(store: LocalStore) -> set[str]:
    return {p.name for p in (store.storage / "blobs" / "sha256").iterdir()}


def listing(store: LocalStore) -> list[tuple[str, Digest, tuple[str, ...]]]:
    return [(kit.repo_key, kit.digest, kit.tags) for kit in store.list_modelkits()]


# ----- add, resolve, read --------------------------------------------------------------------------------------------


def test_resolve_by_tag_and_by_digest(store: LocalStore, build: BuildModelKit) -> None:
    desc, manifest = build(store, "localhost/test", [b"weights"], tags=["v1"])
    assert desc.digest == FIRST
    assert store.resolve(ref("test:v1")) == desc
    assert store.resolve(ref(f"test@{FIRST}")) == desc
    assert store.read_manifest(ref("test:v1")) == (desc, manifest)
    with pytest.raises(NotFoundError, match=r"^Could not find modelkit test:v2$"):
        store.resolve(ref("test:v2"))
    with pytest.raises(NotFoundError, match=rf"^Could not find modelkit other@{SECOND}$"):
        store.resolve(ref(f"other@{SECOND}"))
    with pytest.raises(NotFoundError, match=rf"^Could not find modelkit {FIRST}$"):
        store.resolve(ref(str(FIRST)))  # a bare digest means localhost/_, where it is not
    with pytest.raises(InvalidReferenceError, match=r"^missing tag or digest from ModelKit reference 'test'$"):
        store.resolve(ref("test"))


def test_list_modelkits_and_repositories(store: LocalStore, build: BuildModelKit) -> None:
    _, manifest = build(store, "localhost/test", [b"weights"], tags=["v1", "a"])
    build(store, "localhost/test", [b"weights", b"data"], name="second")
    build(store, "ghcr.io/org/model", [], tags=["x"], name="empty")
    assert store.list_repositories() == ["ghcr.io/org/model", "localhost/test"]
    assert listing(store) == [
        ("ghcr.io/org/model", EMPTY, ("x",)),
        ("localhost/test", FIRST, ("a", "v1")),
        ("localhost/test", SECOND, ()),
    ]
    assert store.list_modelkits("localhost/test")[0] == StoredModelKit(
        "localhost/test", FIRST, 471, ("a", "v1"), manifest
    )
    assert store.list_modelkits("localhost/none") == []


def test_add_manifest_refuses_missing_blobs(store: LocalStore) -> None:
    config = b"{}"
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, Digest.from_bytes(config), len(config)), layers=None
    )
    with pytest.raises(StoreError, match=r"its config sha256:44136fa3\S+ is not in local storage$"):
        store.add_manifest("localhost/test", manifest.to_json_bytes(), tags=["v1"])
    store.write_blob(config)
    layer = Descriptor("application/vnd.kitops.modelkit.model.v1.tar", Digest.from_bytes(b"w"), 1)
    wrong = Manifest(config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, Digest.from_bytes(config), 3), layers=(layer,))
    with pytest.raises(StoreError, match=r"its config sha256:44136fa3\S+ is 2 bytes, manifest says 3$"):
        store.add_manifest("localhost/test", wrong.to_json_bytes())
    assert store.list_modelkits() == []
    assert not repo_index_path(store.storage, "localhost/test").exists()


def test_add_manifest_refuses_bad_input(store: LocalStore) -> None:
    with pytest.raises(ModelKitError, match=r"^invalid manifest JSON"):
        store.add_manifest("localhost/test", b"not json")
    with pytest.raises(StoreError, match=r"^invalid repository key 'test': must be registry/repository$"):
        store.add_manifest("test", b"{}")


# ----- tag -----------------------------------------------------------------------------------------------------------


def test_tag_in_same_repo(store: LocalStore, build: BuildModelKit) -> None:
    desc, _ = build(store, "localhost/test", [b"weights"], tags=["v1"])
    assert store.tag(ref("test:v1"), ref("test:stable")) == desc
    assert store.tag(ref(f"test@{FIRST}"), ref("test:other")) == desc
    assert listing(store) == [("localhost/test", FIRST, ("other", "stable", "v1"))]


def test_tag_into_other_repo_shares_blobs(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    before = blobs(store)
    store.tag(ref("test:v1"), ref("registry.io/org/copy:1.0"))
    assert blobs(store) == before
    assert listing(store) == [("localhost/test", FIRST, ("v1",)), ("registry.io/org/copy", FIRST, ("1.0",))]
    assert (store.storage / "index.json").read_text().count(str(FIRST)) == 1


def test_tag_moves_existing_tag(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    build(store, "localhost/test", [b"weights", b"data"], tags=["v2"], name="second")
    store.tag(ref("test:v2"), ref("test:v1"))
    assert listing(store) == [("localhost/test", FIRST, ()), ("localhost/test", SECOND, ("v1", "v2"))]


def test_tag_needs_references(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    source_msg = r"^source ModelKit reference requires a tag or digest \(test:<tag>\)$"
    with pytest.raises(InvalidReferenceError, match=source_msg):
        store.tag(ref("test"), ref("test:v2"))
    with pytest.raises(InvalidReferenceError, match=r"^target ModelKit reference requires a tag \(copy:<tag>\)$"):
        store.tag(ref("test:v1"), ref("copy"))
    with pytest.raises(InvalidReferenceError, match=r"^target ModelKit reference requires a tag \(copy:<tag>\)$"):
        store.tag(ref("test:v1"), ref(f"copy@{FIRST}"))
    with pytest.raises(NotFoundError, match=r"^model localhost/test:nope not found$"):
        store.tag(ref("test:nope"), ref("test:v2"))


# ----- remove (kit testing/remove_test.go) ---------------------------------------------------------------------------


def test_remove_by_tag(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    assert store.remove(ref("test:v1")) == [Removal("localhost/test", FIRST, "v1", False)]
    assert listing(store) == []
    assert blobs(store) == set()
    assert not repo_index_path(store.storage, "localhost/test").exists()
    assert not repo_tags_path(store.storage, "localhost/test").exists()
    assert (store.storage / "index.json").read_bytes() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )


def test_remove_by_repo_and_digest(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    assert store.remove(ref(f"test@{FIRST}")) == [Removal("localhost/test", FIRST, None, False)]
    assert listing(store) == []


def test_remove_untagged_by_bare_digest(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/_", [b"weights"])
    assert listing(store) == [("localhost/_", FIRST, ())]
    assert store.remove(ref(str(FIRST))) == [Removal("localhost/_", FIRST, None, False)]
    assert listing(store) == []


def test_remove_tag_only_untags_when_other_tags_remain(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["first", "second"])
    before = blobs(store)
    assert store.remove(ref("test:first")) == [Removal("localhost/test", FIRST, "first", True)]
    assert listing(store) == [("localhost/test", FIRST, ("second",))]
    assert blobs(store) == before
    assert store.remove(ref("test:second")) == [Removal("localhost/test", FIRST, "second", False)]
    assert listing(store) == []


def test_remove_by_digest_removes_all_tags(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["first", "second"])
    assert store.remove(ref(f"test@{FIRST}")) == [Removal("localhost/test", FIRST, None, False)]
    assert listing(store) == []
    assert not repo_tags_path(store.storage, "localhost/test").exists()


def test_remove_force_by_tag_deletes_manifest(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["first", "second"])
    assert store.remove(ref("test:first"), force=True) == [Removal("localhost/test", FIRST, "first", False)]
    assert listing(store) == []


def test_remove_all_keeps_tagged(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/_", [b"weights"])  # untagged pack
    build(store, "localhost/test", [b"weights", b"data"], tags=["t"], name="second")
    build(store, "localhost/test", [], tags=["t"], name="empty")  # moves t: "second" is left untagged
    removed = store.remove_all()
    assert removed == [Removal("localhost/_", FIRST, None, False), Removal("localhost/test", SECOND, None, False)]
    assert listing(store) == [("localhost/test", EMPTY, ("t",))]
    (kit,) = store.list_modelkits()
    assert blobs(store) == {EMPTY.hex, kit.manifest.config.digest.hex}


def test_remove_all_force_removes_everything(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/_", [b"weights"])
    build(store, "localhost/test", [b"weights", b"data"], tags=["a", "b"], name="second")
    removed = store.remove_all(force=True)
    assert removed == [
        Removal("localhost/_", FIRST, None, False),
        Removal("localhost/test", SECOND, "a", True),
        Removal("localhost/test", SECOND, "b", True),
        Removal("localhost/test", SECOND, None, False),
    ]
    assert listing(store) == []
    assert store.list_repositories() == []
    assert blobs(store) == set()


def test_remove_needs_tag_or_digest(store: LocalStore) -> None:
    with pytest.raises(InvalidReferenceError, match=r"^tag or digest is required when removing \(test:<tag>\)$"):
        store.remove(ref("test"))


def test_remove_missing_is_not_found(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    with pytest.raises(NotFoundError, match=r"^model test:nope not found$"):
        store.remove(ref("test:nope"))
    with pytest.raises(NotFoundError, match=rf"^model test@{SECOND} not found$"):
        store.remove(ref(f"test@{SECOND}"))


def test_remove_keeps_layers_other_manifests_use(store: LocalStore, build: BuildModelKit) -> None:
    _, first_manifest = build(store, "localhost/test", [b"weights"], tags=["one"])
    build(store, "localhost/test", [b"weights", b"data"], tags=["two"], name="second")
    store.remove(ref("test:two"))
    assert blobs(store) == {FIRST.hex, first_manifest.config.digest.hex, WEIGHTS.hex}
    assert not store.has_blob(DATA)


def test_remove_from_one_repo_keeps_manifest_listed_in_another(store: LocalStore, build: BuildModelKit) -> None:
    build(store, "localhost/test", [b"weights"], tags=["v1"])
    store.tag(ref("test:v1"), ref("ghcr.io/org/copy:v1"))
    before = blobs(store)
    assert store.remove(ref("test:v1")) == [Removal("localhost/test", FIRST, "v1", False)]
    assert listing(store) == [("ghcr.io/org/copy", FIRST, ("v1",))]
    assert blobs(store) == before
    assert str(FIRST) in (store.storage / "index.json").read_text()
    store.remove(ref("ghcr.io/org/copy:v1"))
    assert blobs(store) == set()
    assert str(FIRST) not in (store.storage / "index.json").read_text()


def test_public_names_are_pinned() -> None:
    import pymodelkit.store

    assert pymodelkit.store.__all__ == [
        "BlobWriter",
        "FsckReport",
        "GcReport",
        "LocalStore",
        "Removal",
        "StoredModelKit",
        "repo_file_stem",
    ]


def test_has_blob_with_a_size_wants_that_size_and_a_regular_file(store: LocalStore) -> None:
    data = b"twelve bytes"
    digest, size = store.write_blob(data), len(data)
    assert store.has_blob(digest) and store.has_blob(digest, size)
    assert not store.has_blob(digest, size + 1)
    missing = Digest.from_bytes(b"not stored")
    assert not store.has_blob(missing) and not store.has_blob(missing, 10)
    store.blob_path(missing).mkdir()  # a directory where a blob would be is not a blob
    assert not store.has_blob(missing) and not store.has_blob(missing, 0)
