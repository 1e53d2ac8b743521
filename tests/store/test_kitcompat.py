"""A store laid out by kit (tests/data/store/kit-home) lists, resolves, reads, tags and removes correctly."""

from __future__ import annotations

import os
import stat

from pymodelkit.oci import Digest, Reference, parse_reference
from pymodelkit.oci.mediatypes import ARTIFACT_TYPE_MODELKIT, MEDIA_TYPE_MANIFEST
from pymodelkit.store import FsckReport, GcReport, LocalStore, Removal

A = Digest.parse("sha256:0d76a619675e42e707cf0d5235b38e86339c3c40c3f86b338db68bc00266bd36")
B = Digest.parse("sha256:b870ab2668c9909562c8e3c7d8f02f5545d8caa1d226aa303a26d048fce0765e")
C = Digest.parse("sha256:4209cb9c211e464da902050bb57c70a81cded7185a25c8c3771d76870f35f988")
C1 = "06908d1b059a8007ab55bbd1d76007e4e3a51b8d2e80857af39b81d51d399feb"
C2 = "24109e06d84f0a54ec17d413a118c4df45829885e4480113a35bf94703f8fa20"
C3 = "cf371e521510a9b79771a427c1342cc6adc3cbb5034d35018e784de40a61aa7e"
L = "23bca2409e3e6f87b386d602d2b39aeb24294c0049b8f76c900666aa524231e0"
D = "4ee26f6199c2ba2fdda39f264ae91341887b61d855260621ae0d94c2357eb342"
L2 = "69088db774e2d27ce64e73c5344470c3e453d223d2efe69b812e211ba30dff08"
MT = "application/vnd.oci.image.manifest.v1+json"
A_DESC = f'{{"mediaType":"{MT}","digest":"{A}","size":639}}'
B_DESC = f'{{"mediaType":"{MT}","digest":"{B}","size":563}}'

TEST_TAGS = "bG9jYWxob3N0L3Rlc3Q=-tags.json"
TEST_INDEX = "bG9jYWxob3N0L3Rlc3Q=-index.json"
GHCR_INDEX = "Z2hjci5pby9vcmcvbW9kZWw=-index.json"


def ref(text: str) -> Reference:
    return parse_reference(text)[0]


def blobs(store: LocalStore) -> set[str]:
    return {p.name for p in (store.storage / "blobs" / "sha256").iterdir()}


def test_kit_store_fixture_is_read_only_blobs(kit_store: LocalStore) -> None:
    modes = {stat.S_IMODE(os.stat(p).st_mode) for p in (kit_store.storage / "blobs" / "sha256").iterdir()}
    assert modes == {0o444}
    assert kit_store.fsck() == FsckReport(ok=True)


def test_lists_kit_store(kit_store: LocalStore) -> None:
    assert kit_store.list_repositories() == ["ghcr.io/org/model", "localhost/_", "localhost/test"]
    rows = [(k.repo_key, k.digest, k.size, k.tags) for k in kit_store.list_modelkits()]
    assert rows == [
        ("ghcr.io/org/model", A, 639, ("1.0",)),
        ("localhost/_", C, 524, ()),
        ("localhost/test", A, 639, ("latest", "v1")),
        ("localhost/test", B, 563, ("old",)),
    ]


def test_resolves_and_reads_every_manifest_generation(kit_store: LocalStore) -> None:
    desc, current = kit_store.read_manifest(ref("test:latest"))
    assert (desc.media_type, desc.digest, desc.size) == (MEDIA_TYPE_MANIFEST, A, 639)
    assert (current.media_type, current.artifact_type) == (MEDIA_TYPE_MANIFEST, ARTIFACT_TYPE_MODELKIT)
    assert current.annotations == {
        "ml.kitops.modelkit.cli-version": "1.11.0",
        "org.opencontainers.image.created": "2026-09-20T10:11:12Z",
    }
    _, older = kit_store.read_manifest(ref(f"test@{B}"))
    assert (older.media_type, older.artifact_type, older.format) == (None, None, "kitops")
    assert older.layers is not None
    assert [layer.annotations for layer in older.layers] == [None, None]
    assert [layer.digest.hex for layer in older.layers] == [L, D]
    _, untagged = kit_store.read_manifest(ref(str(C)))  # a bare digest: localhost/_
    assert (untagged.media_type, untagged.artifact_type) == (None, ARTIFACT_TYPE_MODELKIT)
    assert untagged.config.digest.hex == C3
    assert kit_store.resolve(ref("ghcr.io/org/model:1.0")).digest == A
    # re-encoding reproduces kit's bytes, so digests computed by us match kit's
    assert Digest.from_bytes(older.to_json_bytes()) == B
    assert Digest.from_bytes(current.to_json_bytes()) == A


def test_tags_kit_store(kit_store: LocalStore) -> None:
    kit_store.tag(ref("test:old"), ref("test:renamed"))
    assert (kit_store.storage / TEST_TAGS).read_text() == (
        f'{{"latest":{A_DESC},"old":{B_DESC},"renamed":{B_DESC},"v1":{A_DESC}}}'
    )
    kit_store.tag(ref("test:old"), ref("copy:x"))
    assert (kit_store.storage / "bG9jYWxob3N0L2NvcHk=-index.json").read_text() == (
        f'{{"schemaVersion":2,"manifests":[{B_DESC}]}}'
    )
    assert (kit_store.storage / "bG9jYWxob3N0L2NvcHk=-tags.json").read_text() == f'{{"x":{B_DESC}}}'
    assert kit_store.fsck().ok


def test_removes_from_kit_store(kit_store: LocalStore) -> None:
    storage = kit_store.storage
    all_blobs = blobs(kit_store)
    # A is also in ghcr.io/org/model: only that repo's entry goes, the blobs stay
    assert kit_store.remove(ref("ghcr.io/org/model:1.0")) == [Removal("ghcr.io/org/model", A, "1.0", False)]
    assert not (storage / GHCR_INDEX).exists()
    assert not (storage / "Z2hjci5pby9vcmcvbW9kZWw=-tags.json").exists()
    assert blobs(kit_store) == all_blobs
    # two tags on A: untag only
    assert kit_store.remove(ref("test:v1")) == [Removal("localhost/test", A, "v1", True)]
    assert (storage / TEST_TAGS).read_text() == f'{{"latest":{A_DESC},"old":{B_DESC}}}'
    # by digest: A and its tag go; its config goes, the layer B shares stays (AutoGC)
    assert kit_store.remove(ref(f"test@{A}")) == [Removal("localhost/test", A, None, False)]
    assert (storage / TEST_TAGS).read_text() == f'{{"old":{B_DESC}}}'
    assert (storage / TEST_INDEX).read_text() == f'{{"schemaVersion":2,"manifests":[{B_DESC}]}}'
    assert blobs(kit_store) == all_blobs - {A.hex, C1}
    kit_store.remove(ref("test:old"))
    assert not (storage / TEST_INDEX).exists()
    assert not (storage / TEST_TAGS).exists()
    assert blobs(kit_store) == {C.hex, C3, L2}
    assert (storage / "index.json").read_text() == (
        f'{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
        f'"manifests":[{{"mediaType":"{MT}","digest":"{C}","size":524}}]}}'
    )
    assert kit_store.list_repositories() == ["localhost/_"]
    assert kit_store.fsck() == FsckReport(ok=True)


def test_remove_all_force_and_gc_on_kit_store(kit_store: LocalStore) -> None:
    assert kit_store.gc() == GcReport(removed=[], freed_bytes=0)
    removed = kit_store.remove_all(force=True)
    assert [(r.repo_key, r.digest, r.tag, r.untagged_only) for r in removed] == [
        ("ghcr.io/org/model", A, "1.0", True),
        ("ghcr.io/org/model", A, None, False),
        ("localhost/_", C, None, False),
        ("localhost/test", A, "latest", True),
        ("localhost/test", A, "v1", True),
        ("localhost/test", A, None, False),
        ("localhost/test", B, "old", True),
        ("localhost/test", B, None, False),
    ]
    assert blobs(kit_store) == set()
    assert kit_store.list_modelkits() == []
