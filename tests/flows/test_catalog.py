"""The catalog over a real store: ``diff_modelkits`` on kit's compare-manifest vectors, ``list_modelkits`` and its
repository filter, ``remove_all``, and the ``list`` table and sizes exactly as kit prints them (spec
``kitops-modelkit.md`` §8.3, §8.4, §10.5; ``format.md`` §6.4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.catalog import LayerDiff, ListedModelKit, ModelKitDiff, format_bytes, format_list_table
from pymodelkit.oci import Descriptor, Digest, Manifest
from pymodelkit.oci.mediatypes import ANNOTATION_FILEPATH, MEDIA_TYPE_MODELKIT_CONFIG
from pymodelkit.store import LocalStore, Removal

MODEL_TAR = "application/vnd.kitops.modelkit.model.v1.tar"
CODE_TAR = "application/vnd.kitops.modelkit.code.v1.tar"
CODE_RAW = "application/vnd.kitops.modelkit.code.v1.raw"
CLI_VERSION = "ml.kitops.modelkit.cli-version"

# ----- kit's compare-manifest vectors --------------------------------------------------------------------------------
#
# Upstream kit tests CompareManifests on plain OCI manifests (jozu-ai/kitops testing/testdata/compare-manifest/
# manifestA..E.json, kitops-ml/kitops@71e0b67 manifestF/G.json) whose digests are fake (sha256:configA,
# sha256:layer1...) and whose sizes name no real blob (123456789 bytes). Our Digest parser refuses fake digests and the
# store refuses a manifest whose blobs are missing, so we build equivalent manifests: same shape (no mediaType or
# artifactType, same layer media types, the same sharing of config and layer digests, the same filepath annotations
# and manifest annotations), with each fake digest replaced by the real digest of a small blob that stands for it.
# The expected results are upstream's different-config, different-layer, annotation-mismatch, mixed-diff,
# duplicate-layer, duplicate-layer-both and duplicate-layer-moved JSON files, compared as kit's harness compares them
# (descriptor lists as sorted sets of digest and filepath).

FAKE_BLOBS = {
    "configA": b'{"manifestVersion":"1.0.0","package":{"name":"configA"}}',
    "configB": b'{"manifestVersion":"1.0.0","package":{"name":"configB"}}',
    "configE": b'{"manifestVersion":"1.0.0","package":{"name":"configE"}}',
    "layer1": b"layer1 (model)",
    "layer2": b"layer2 (code)",
    "layer3": b"layer3 (code)",
    "layerE": b"layerE (code)",
    "layer4": b"",  # upstream's layer4 has size 0: the empty blob
}
DIGEST = {name: Digest.from_bytes(data) for name, data in FAKE_BLOBS.items()}

# name: (config, [(media type, layer, filepath or None)], manifest annotations)
VECTOR_MANIFESTS: dict[str, tuple[str, list[tuple[str, str, str | None]], dict[str, str]]] = {
    "manifestA": ("configA", [(MODEL_TAR, "layer1", None), (CODE_TAR, "layer2", None)], {CLI_VERSION: "0.2.5-29dbdc4"}),
    "manifestB": ("configB", [(MODEL_TAR, "layer1", None), (CODE_TAR, "layer2", None)], {CLI_VERSION: "0.2.5-29dbdc4"}),
    "manifestC": ("configA", [(MODEL_TAR, "layer1", None), (CODE_TAR, "layer3", None)], {CLI_VERSION: "0.2.5-29dbdc4"}),
    "manifestD": ("configA", [(MODEL_TAR, "layer1", None), (CODE_TAR, "layer2", None)], {"somekey": "0.2.5-29dbdc4"}),
    "manifestE": (
        "configE",
        [(MODEL_TAR, "layer1", None), (CODE_TAR, "layerE", None)],
        {CLI_VERSION: "different_value"},
    ),
    "manifestF": (
        "configA",
        [
            (MODEL_TAR, "layer1", None),
            (CODE_TAR, "layer2", None),
            (CODE_RAW, "layer4", "pkg_a/__init__.py"),
            (CODE_RAW, "layer4", "pkg_b/__init__.py"),
        ],
        {CLI_VERSION: "0.2.5-29dbdc4"},
    ),
    "manifestG": (
        "configA",
        [
            (MODEL_TAR, "layer1", None),
            (CODE_TAR, "layer2", None),
            (CODE_RAW, "layer4", "pkg_b/__init__.py"),
            (CODE_RAW, "layer4", "pkg_c/__init__.py"),
        ],
        {CLI_VERSION: "0.2.5-29dbdc4"},
    ),
}

Layers = set[tuple[str, str]]  # (fake digest name, filepath or "")

# case: (A, B, SameConfig, AnnotationsMatch, SharedLayers, UniqueLayersA, UniqueLayersB), from upstream's JSON files.
VECTOR_CASES: dict[str, tuple[str, str, bool, bool, Layers, Layers, Layers]] = {
    "different-config": ("manifestA", "manifestB", False, True, {("layer1", ""), ("layer2", "")}, set(), set()),
    "different-layer": ("manifestA", "manifestC", True, True, {("layer1", "")}, {("layer2", "")}, {("layer3", "")}),
    "annotation-mismatch": ("manifestA", "manifestD", True, False, {("layer1", ""), ("layer2", "")}, set(), set()),
    "mixed-diff": ("manifestA", "manifestE", False, False, {("layer1", "")}, {("layer2", "")}, {("layerE", "")}),
    "duplicate-layer": (
        "manifestF",
        "manifestA",
        True,
        True,
        {("layer1", ""), ("layer2", "")},
        {("layer4", "pkg_a/__init__.py"), ("layer4", "pkg_b/__init__.py")},
        set(),
    ),
    "duplicate-layer-both": (
        "manifestF",
        "manifestF",
        True,
        True,
        {("layer1", ""), ("layer2", ""), ("layer4", "pkg_a/__init__.py"), ("layer4", "pkg_b/__init__.py")},
        set(),
        set(),
    ),
    "duplicate-layer-moved": (
        "manifestF",
        "manifestG",
        True,
        True,
        {("layer1", ""), ("layer2", ""), ("layer4", "pkg_b/__init__.py")},
        {("layer4", "pkg_a/__init__.py")},
        {("layer4", "pkg_c/__init__.py")},
    ),
}


def add_blob(store: LocalStore, data: bytes) -> Digest:
    """Store a blob (any size, the empty one included) and return its digest."""
    with store.ingest() as writer:
        writer.write(data)
        digest, _ = writer.commit(mode=0o444)
    return digest


def build_vector(name: str) -> Manifest:
    """The stand-in for upstream's ``<name>.json`` (see the comment above ``FAKE_BLOBS``)."""
    config, layers, annotations = VECTOR_MANIFESTS[name]
    return Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, DIGEST[config], len(FAKE_BLOBS[config])),
        layers=tuple(
            Descriptor(
                media_type,
                DIGEST[layer],
                len(FAKE_BLOBS[layer]),
                {ANNOTATION_FILEPATH: filepath} if filepath else None,
            )
            for media_type, layer, filepath in layers
        ),
        annotations=annotations,
        media_type=None,
        artifact_type=None,
    )


@pytest.fixture
def vector_store(store: LocalStore) -> LocalStore:
    """A store holding every vector manifest in ``localhost/compare``, tagged by its name."""
    for data in FAKE_BLOBS.values():
        add_blob(store, data)
    for name in VECTOR_MANIFESTS:
        store.add_manifest("localhost/compare", build_vector(name).to_json_bytes(), tags=[name])
    return store


def as_set(layers: tuple[LayerDiff, ...]) -> Layers:
    """A diff's layers as (fake digest name, filepath) pairs, the way kit's harness compares them (sorted sets)."""
    names = {digest: name for name, digest in DIGEST.items()}
    pairs = [(names[layer.digest], layer.path) for layer in layers]
    assert len(set(pairs)) == len(pairs)
    return set(pairs)


def test_vector_manifests_have_upstream_shape() -> None:
    # Same keys and order as upstream's manifestF.json (no mediaType, no artifactType), real digests in place.
    doc = json.loads(build_vector("manifestF").to_json_bytes())
    assert list(doc) == ["schemaVersion", "config", "layers", "annotations"]
    assert doc["config"] == {
        "mediaType": MEDIA_TYPE_MODELKIT_CONFIG,
        "digest": str(DIGEST["configA"]),
        "size": len(FAKE_BLOBS["configA"]),
    }
    assert doc["layers"][2:] == [
        {
            "mediaType": CODE_RAW,
            "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "size": 0,
            "annotations": {ANNOTATION_FILEPATH: "pkg_a/__init__.py"},
        },
        {
            "mediaType": CODE_RAW,
            "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "size": 0,
            "annotations": {ANNOTATION_FILEPATH: "pkg_b/__init__.py"},
        },
    ]
    assert doc["annotations"] == {CLI_VERSION: "0.2.5-29dbdc4"}


@pytest.mark.parametrize("case", list(VECTOR_CASES))
def test_diff_matches_upstream_compare_manifest_vectors(vector_store: LocalStore, case: str) -> None:
    a, b, same_config, annotations_match, shared, only_a, only_b = VECTOR_CASES[case]
    result = pymodelkit.diff_modelkits(f"compare:{a}", f"compare:{b}", store=vector_store)
    assert result.identical is (a == b)
    assert result.same_config is same_config
    assert result.annotations_match is annotations_match
    assert as_set(result.shared_layers) == shared
    assert as_set(result.only_in_a) == only_a
    assert as_set(result.only_in_b) == only_b
    for layers in (result.shared_layers, result.only_in_a, result.only_in_b):
        assert [layer.media_type for layer in layers] == sorted(layer.media_type for layer in layers)


def test_diff_reports_the_layers_of_b_with_sizes_and_paths(vector_store: LocalStore) -> None:
    result = pymodelkit.diff_modelkits("compare:manifestF", "compare:manifestG", store=vector_store)
    assert result == ModelKitDiff(
        identical=False,
        same_config=True,
        annotations_match=True,
        shared_layers=(
            LayerDiff(CODE_RAW, DIGEST["layer4"], 0, "pkg_b/__init__.py"),
            LayerDiff(CODE_TAR, DIGEST["layer2"], len(FAKE_BLOBS["layer2"]), ""),
            LayerDiff(MODEL_TAR, DIGEST["layer1"], len(FAKE_BLOBS["layer1"]), ""),
        ),
        only_in_a=(LayerDiff(CODE_RAW, DIGEST["layer4"], 0, "pkg_a/__init__.py"),),
        only_in_b=(LayerDiff(CODE_RAW, DIGEST["layer4"], 0, "pkg_c/__init__.py"),),
    )


def test_diff_of_two_names_for_one_manifest_is_identical(vector_store: LocalStore) -> None:
    pymodelkit.tag("compare:manifestA", "copy:a", store=vector_store)
    result = pymodelkit.diff_modelkits("compare:manifestA", "copy:a", store=vector_store)
    assert result.identical is True
    assert as_set(result.shared_layers) == {("layer1", ""), ("layer2", "")}
    assert result.only_in_a == result.only_in_b == ()


def test_diff_of_packed_modelkits(tmp_path: Path, store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two packs that differ in one dataset share the model layer (same digest, same path)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # same created annotation on both
    for version, data in (("v1", "one"), ("v2", "two")):
        context = tmp_path / version
        (context / "data").mkdir(parents=True)
        (context / "model.bin").write_bytes(b"weights")
        (context / "data" / "train.csv").write_text(data)
        (context / "Kitfile").write_text(
            "manifestVersion: 1.0.0\nmodel:\n  path: model.bin\ndatasets:\n  - path: data\n"
        )
        pymodelkit.pack(context, tag=f"diffed:{version}", store=store)
    result = pymodelkit.diff_modelkits("diffed:v1", "diffed:v2", store=store)
    assert (result.identical, result.same_config, result.annotations_match) == (False, False, True)
    assert [(layer.media_type, layer.path) for layer in result.shared_layers] == [(MODEL_TAR, "model.bin")]
    dataset = "application/vnd.kitops.modelkit.dataset.v1.tar"
    assert [(layer.media_type, layer.path) for layer in result.only_in_a] == [(dataset, "data")]
    assert [(layer.media_type, layer.path) for layer in result.only_in_b] == [(dataset, "data")]
    assert result.only_in_a[0].digest != result.only_in_b[0].digest


def test_diff_needs_a_tag_or_digest(vector_store: LocalStore) -> None:
    with pytest.raises(pymodelkit.InvalidReferenceError) as caught:
        pymodelkit.diff_modelkits("compare", "compare:manifestA", store=vector_store)
    assert str(caught.value) == "missing tag or digest from ModelKit reference 'compare'"


# ----- list, and its repository filter -------------------------------------------------------------------------------

CONFIG_ALICE = b'{"manifestVersion":"1.0.0","package":{"name":"churn","authors":["alice","bob"]}}'
CONFIG_NONAME = b'{"manifestVersion":"1.0.0","package":{}}'
# Digests for rows built by hand (they name no blob).
MANIFEST_ONE = "sha256:48a93f0ffe5f2418ebf9e2cbb38d7a5b54cd8d1d77b21c5da0e3ad48bf3357a3"
MANIFEST_TWO = "sha256:b3c6a4f93e2f9ba7ecbbd1d84b8ac5ac9ae3d0ad8ab1d6b0f07da0ab78e0d1cc"
MANIFEST_UNTAGGED = "sha256:0000000000000000000000000000000000000000000000000000000000000000"


def add_modelkit(store: LocalStore, repo_key: str, config: bytes, layers: list[bytes], tags: list[str]) -> Digest:
    """Store a ModelKit made of ``config`` and model layers ``layers``; return the manifest digest."""
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, add_blob(store, config), len(config)),
        layers=tuple(Descriptor(MODEL_TAR, add_blob(store, data), len(data)) for data in layers) or None,
    )
    return store.add_manifest(repo_key, manifest.to_json_bytes(), tags=tags).digest


# Manifest digests of ``listed_store`` (kit's manifest form, no annotations; the untagged one was checked against a
# sha256 of hand-written JSON).
CHURN = "sha256:d32cef8a95d5e294b8894d9c8e1ce3aeb1ad58cd8716d26e16c0f592f7da9d3a"
TOOLS = "sha256:830071d4b717edbcc128238fc76c2ea1be582cb3f72fc49721becd07d5090f4a"
UNTAGGED = "sha256:8f8622c17a1a442c14af5829883d8c748d576d1a49cd35f09fac9fc011f5dff4"


@pytest.fixture
def listed_store(store: LocalStore) -> dict[str, Digest]:
    """Three repositories: ``churn`` (two tags on one ModelKit, 1536 layer bytes), ``ghcr.io/org/tools`` (a 1 MiB
    model, no name or author), and one untagged pack in ``localhost/_`` (no layers)."""
    return {
        "churn": add_modelkit(store, "localhost/churn", CONFIG_ALICE, [b"x" * 1024, b"y" * 512], ["v1", "latest"]),
        "tools": add_modelkit(store, "ghcr.io/org/tools", CONFIG_NONAME, [b"z" * (1 << 20)], ["1.0"]),
        "untagged": add_modelkit(store, "localhost/_", CONFIG_NONAME, [], []),
    }


def test_list_modelkits_rows(store: LocalStore, listed_store: dict[str, Digest]) -> None:
    assert {k: str(v) for k, v in listed_store.items()} == {"churn": CHURN, "tools": TOOLS, "untagged": UNTAGGED}
    assert pymodelkit.list_modelkits(store) == [
        ListedModelKit("ghcr.io/org/tools", listed_store["tools"], ("1.0",), "", "", 1 << 20),
        ListedModelKit("localhost/_", listed_store["untagged"], (), "", "", 0),
        ListedModelKit("localhost/churn", listed_store["churn"], ("latest", "v1"), "churn", "alice", 1536),
    ]


def test_list_modelkits_filters_by_repository(store: LocalStore, listed_store: dict[str, Digest]) -> None:
    assert [(r.repo, r.digest) for r in pymodelkit.list_modelkits(store, "churn")] == [
        ("localhost/churn", listed_store["churn"])
    ]
    assert [(r.repo, r.digest) for r in pymodelkit.list_modelkits(store, "ghcr.io/org/tools")] == [
        ("ghcr.io/org/tools", listed_store["tools"])
    ]
    assert pymodelkit.list_modelkits(store, "tools") == []  # localhost/tools: another repository
    assert pymodelkit.list_modelkits(store, "nothing-here") == []


def test_list_of_an_empty_store(store: LocalStore) -> None:
    assert pymodelkit.list_modelkits(store) == []
    assert format_list_table([]) == "REPOSITORY   TAG   MAINTAINER   NAME   SIZE   DIGEST\n"


def test_list_table_of_a_store_exact_bytes(store: LocalStore, listed_store: dict[str, Digest]) -> None:
    assert format_list_table(pymodelkit.list_modelkits(store)) == (
        "REPOSITORY          TAG      MAINTAINER   NAME     SIZE      DIGEST\n"
        f"ghcr.io/org/tools   1.0      <none>       <none>   1.0 MiB   {TOOLS}\n"
        f"<none>              <none>   <none>       <none>   0 B       {UNTAGGED}\n"
        f"churn               latest   alice        churn    1.5 KiB   {CHURN}\n"
        f"churn               v1       alice        churn    1.5 KiB   {CHURN}\n"
    )


def test_list_table_exact_bytes_from_rows() -> None:
    one = Digest.parse(MANIFEST_ONE)
    two = Digest.parse(MANIFEST_TWO)
    zero = Digest.parse(MANIFEST_UNTAGGED)
    rows = [
        ListedModelKit("localhost/a", one, ("t",), "n", "m", 1023),
        ListedModelKit("localhost/_", zero, (), "", "", 0),
        ListedModelKit(
            "registry.example.com:5000/team/very-long-repository-name",
            two,
            ("v1.2.3", "x"),
            "a-model",
            "someone@example.com",
            3 << 30,
        ),
    ]
    assert format_list_table(rows) == (
        "REPOSITORY                                                 TAG      MAINTAINER            NAME      SIZE"
        "      DIGEST\n"
        f"a                                                          t        m                     n         1023 B"
        f"    {MANIFEST_ONE}\n"
        f"<none>                                                     <none>   <none>                <none>    0 B"
        f"       {MANIFEST_UNTAGGED}\n"
        f"registry.example.com:5000/team/very-long-repository-name   v1.2.3   someone@example.com   a-model   3.0 GiB"
        f"   {MANIFEST_TWO}\n"
        f"registry.example.com:5000/team/very-long-repository-name   x        someone@example.com   a-model   3.0 GiB"
        f"   {MANIFEST_TWO}\n"
    )


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (500, "500 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1597, "1.5 KiB"),  # 1.5595… floors to 1.5: kit never rounds up
        (1638, "1.5 KiB"),  # 1.5996…
        (1639, "1.6 KiB"),
        (4608, "4.5 KiB"),
        ((1 << 20) - 1, "1023.9 KiB"),
        (1 << 20, "1.0 MiB"),
        (6815744, "6.5 MiB"),
        ((1 << 30) - 1, "1023.9 MiB"),
        (1 << 30, "1.0 GiB"),
        ((1 << 30) * 3 // 2, "1.5 GiB"),
        ((1 << 40) - 1, "1023.9 GiB"),
        (1 << 40, "1.0 TiB"),
    ],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


# ----- remove_all ----------------------------------------------------------------------------------------------------


def _blob_names(store: LocalStore) -> set[str]:
    return {p.name for p in (store.storage / "blobs" / "sha256").iterdir()}


def test_remove_all_removes_only_untagged_modelkits(tmp_path: Path, store: LocalStore) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "model.bin").write_bytes(b"weights")
    (context / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    untagged = pymodelkit.pack(context, store=store)
    first = pymodelkit.pack(
        context,
        kitfile=pymodelkit.load_kitfile("manifestVersion: 1.0.0\npackage:\n  name: first\nmodel:\n  path: model.bin\n"),
        tag="rm:t",
        store=store,
    )
    second = pymodelkit.pack(
        context,
        kitfile=pymodelkit.load_kitfile(
            "manifestVersion: 1.0.0\npackage:\n  name: second\nmodel:\n  path: model.bin\n"
        ),
        tag="rm:t",
        store=store,
    )
    # "rm:t" moved to the second pack: the first is left untagged in rm.
    removed = store.remove_all()
    assert sorted(removed, key=lambda r: r.repo_key) == [
        Removal("localhost/_", untagged.digest, None, False),
        Removal("localhost/rm", first.digest, None, False),
    ]
    assert [(r.repo, r.digest, r.tags) for r in pymodelkit.list_modelkits(store)] == [
        ("localhost/rm", second.digest, ("t",))
    ]
    # The model layer all three shared is kept; the removed manifests and their own configs are gone.
    assert _blob_names(store) == {
        second.digest.hex,
        second.manifest.config.digest.hex,
        *(layer.digest.hex for layer in second.manifest.layers or ()),
    }
    assert store.remove_all() == []


def test_remove_all_with_force_removes_everything(tmp_path: Path, store: LocalStore) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "model.bin").write_bytes(b"weights")
    (context / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    untagged = pymodelkit.pack(context, store=store)
    tagged = pymodelkit.pack(context, tag="rm:a,b", store=store)
    removed = store.remove_all(force=True)
    assert sorted(removed, key=lambda r: (r.repo_key, r.tag or "~")) == [
        Removal("localhost/_", untagged.digest, None, False),
        Removal("localhost/rm", tagged.digest, "a", True),
        Removal("localhost/rm", tagged.digest, "b", True),
        Removal("localhost/rm", tagged.digest, None, False),
    ]
    assert pymodelkit.list_modelkits(store) == []
    assert _blob_names(store) == set()


def test_format_bytes_past_tib_prints_pib_as_kit_does() -> None:
    from pymodelkit.catalog import format_bytes

    assert [format_bytes(n) for n in (1 << 50, 500 << 50, 1 << 60)] == ["1.0 PiB", "500.0 PiB", "1024.0 PiB"]
