"""ModelPack end to end: Kitfile → ModelPack → push → pull → unpack gives the original files; info, inspect and filters
on ModelPacks; an unknown layer type fails clearly; and ``modelpack-client`` (an independent ModelPack client, test
dependency only) pulls what we push while we pull what it pushes (spec ``modelpack.md`` §7, §8, §10).

:func:`_pack_modelpack` is ``pack(..., format="modelpack")``; a test checks it writes exactly what converting the KitOps
pack of the same files gives (ModelPack layers are byte-identical to KitOps ones, §7.1).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from modelpack_client import (  # type: ignore[import-untyped]
    ModelDescriptor,
    ModelLayer,
    ModelPackClient,
    ModelPackConfig,
    ModelTechnicalConfig,
)
from modelpack_client.errors import ModelPackError  # type: ignore[import-untyped]

import pymodelkit
from pymodelkit.errors import ModelKitError
from pymodelkit.kitfile import dump_kitfile
from pymodelkit.modelpack import modelpack_from_modelkit
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.reference import parse_reference
from pymodelkit.registry import pull, push
from pymodelkit.registry.remote import info_remote, inspect_remote
from tests.support.registry import TestRegistry
from tests.support.trees import CHURN_KITFILE, read_tree, unique_repo, write_source_tree

P = "application/vnd.cncf.model."
RAW_KITFILE = CHURN_KITFILE.replace("path: model\n", "path: model/weights.bin\n").replace(
    "path: src\n", "path: src/train.py\n"
)


def _pack_modelpack(
    src: Path, ref: str, store: pymodelkit.LocalStore, *, compression: str = "none", layer_format: str = "tar"
) -> tuple[Digest, Manifest]:
    """Pack ``src`` as a ModelPack tagged ``ref`` in ``store``; return its digest and manifest."""
    packed = pymodelkit.pack(src, tag=ref, store=store, compression=compression, layer_format=layer_format,
                             format="modelpack")
    assert Manifest.parse(packed.manifest_bytes) == packed.manifest
    return packed.digest, packed.manifest


def test_pack_format_modelpack_writes_what_converting_the_kitops_pack_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    src = write_source_tree(tmp_path, CHURN_KITFILE, weights=10_000)
    store = pymodelkit.LocalStore(tmp_path / "home")
    kitops = pymodelkit.pack(src, tag="localhost/mp/same:kitops", store=store)
    expected_manifest, expected_config = modelpack_from_modelkit(kitops.manifest, kitops.config_bytes)
    packed = pymodelkit.pack(src, tag="localhost/mp/same:modelpack", store=store, format="modelpack")
    assert packed.manifest_bytes == expected_manifest
    assert packed.config_bytes == expected_config
    assert store.read_blob(packed.digest) == expected_manifest


def test_pack_cli_format_modelpack_and_kits_spelling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pymodelkit.cli.main import main

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    src = write_source_tree(tmp_path, CHURN_KITFILE, weights=10_000)
    home = tmp_path / "home"
    assert main(["--config", str(home), "pack", str(src), "-t", "mp/cli:a", "--format", "modelpack"]) == 0
    assert main(["--config", str(home), "pack", str(src), "-t", "mp/cli:b", "--use-model-pack"]) == 0
    store = pymodelkit.LocalStore(home)
    a = store.read_manifest(parse_reference("mp/cli:a")[0])
    b = store.read_manifest(parse_reference("mp/cli:b")[0])
    assert a[0].digest == b[0].digest
    assert a[1].format == "modelpack"


def test_pack_modelpack_refuses_mcp_servers_before_building_layers(tmp_path: Path) -> None:
    kitfile = CHURN_KITFILE + "mcpServers:\n  - name: tool\n    path: tool.mcpb\n"
    src = write_source_tree(tmp_path, kitfile, weights=1_000)
    store = pymodelkit.LocalStore(tmp_path / "home")
    with pytest.raises(pymodelkit.PackError, match="mcpServers are not supported when packing in modelpack format"):
        pymodelkit.pack(src, tag="mp/refused:v1", store=store, format="modelpack")
    assert not (store.storage / "blobs").exists() or not any((store.storage / "blobs" / "sha256").iterdir())


def _client_push_tree(root: Path) -> tuple[list[ModelLayer], dict[str, bytes]]:
    """Files modelpack-client pushes: a raw weight, a raw weight config, a docs directory (a tar layer), code."""
    files = {
        "model.safetensors": b"hello weights\n" * 1000,
        "config.json": b'{"hidden": 8}\n',
        "docs/README.md": b"# tiny\n",
        "docs/guide/usage.md": b"use it\n",
        "run.py": b"print('hi')\n",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    layers = [
        ModelLayer(root / "model.safetensors", P + "weight.v1.raw"),
        ModelLayer(root / "config.json", P + "weight.config.v1.raw"),
        ModelLayer(root / "docs", P + "doc.v1.tar+zstd", artifact_path="docs"),
        ModelLayer(root / "run.py", P + "code.v1.raw"),
    ]
    return layers, files


def test_modelpack_push_pull_unpack_gives_the_original_files(registry: TestRegistry, tmp_path: Path) -> None:
    src = write_source_tree(tmp_path, CHURN_KITFILE, weights=300_000)
    ref = f"{registry.host}/{unique_repo('modelpack', 'roundtrip')}:v1"
    first = pymodelkit.LocalStore(tmp_path / "home1")
    digest, manifest = _pack_modelpack(src, ref, first)
    assert manifest.artifact_type == P + "manifest.v1+json"
    assert [layer.media_type for layer in manifest.layers or ()] == [P + "weight.v1.tar", P + "code.v1.tar",
                                                                     P + "dataset.v1.tar"]
    assert push(ref, store=first).digest == digest

    second = pymodelkit.LocalStore(tmp_path / "home2")
    assert pull(ref, store=second).digest == digest
    out = tmp_path / "out"
    result = pymodelkit.unpack(ref, out, store=second)
    assert result.kitfile_path == out / "Kitfile"
    assert read_tree(out) == read_tree(src)

    only_model = tmp_path / "only-model"
    pymodelkit.unpack(ref, only_model, store=second, filters=["model"])
    assert read_tree(only_model) == {"model/weights.bin": (src / "model/weights.bin").read_bytes()}

    assert dump_kitfile(pymodelkit.info(ref, store=second)) == CHURN_KITFILE
    document = json.loads(pymodelkit.inspect(ref, store=second))
    assert document["digest"] == str(digest)
    assert document["kitfile"]["package"] == {"name": "churn"}
    assert document["manifest"]["artifactType"] == P + "manifest.v1+json"
    assert [row.model_name for row in pymodelkit.list_modelkits(store=second)] == ["churn"]
    assert second.fsck().ok

    # Straight from the registry, without a pull: remote info/inspect, and unpack with a filter.
    assert dump_kitfile(info_remote(ref)) == CHURN_KITFILE
    assert json.loads(inspect_remote(ref))["kitfile"] == document["kitfile"]
    third = pymodelkit.LocalStore(tmp_path / "home3")
    remote_out = tmp_path / "remote-out"
    pymodelkit.unpack(ref, remote_out, store=third, filters=["datasets:train"])
    assert read_tree(remote_out) == {"data/train.csv": (src / "data/train.csv").read_bytes()}


@pytest.mark.parametrize(
    ("kitfile", "options", "media_types"),
    [
        (CHURN_KITFILE, {"compression": "zstd"}, ["weight.v1.tar+zstd", "code.v1.tar+zstd", "dataset.v1.tar+zstd"]),
        (CHURN_KITFILE, {"compression": "gzip"}, ["weight.v1.tar+gzip", "code.v1.tar+gzip", "dataset.v1.tar+gzip"]),
        (RAW_KITFILE, {"layer_format": "raw"}, ["weight.v1.raw", "code.v1.raw", "dataset.v1.raw"]),
    ],
)
def test_compressed_and_raw_modelpacks_unpack_to_the_original_files(
    tmp_path: Path, kitfile: str, options: dict[str, str], media_types: list[str]
) -> None:
    src = write_source_tree(tmp_path, kitfile, weights=50_000)
    store = pymodelkit.LocalStore(tmp_path / "home")
    _, manifest = _pack_modelpack(src, "localhost/modelpack/formats:v1", store, **options)
    assert [layer.media_type for layer in manifest.layers or ()] == [P + t for t in media_types]
    out = tmp_path / "out"
    pymodelkit.unpack("localhost/modelpack/formats:v1", out, store=store)
    assert read_tree(out) == read_tree(src)


def test_modelpack_is_reproducible_with_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    src = write_source_tree(tmp_path, CHURN_KITFILE, weights=10_000)
    digests = {
        _pack_modelpack(src, "localhost/modelpack/repro:v1", pymodelkit.LocalStore(tmp_path / name))[0]
        for name in ("a", "b")
    }
    assert len(digests) == 1
    store = pymodelkit.LocalStore(tmp_path / "a")
    _, manifest = store.read_manifest(parse_reference("localhost/modelpack/repro:v1")[0])
    config = json.loads(store.read_blob(manifest.config.digest))
    assert config["descriptor"]["createdAt"] == "2026-01-01T00:00:00Z"
    assert (manifest.annotations or {})["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"


def test_modelpack_client_pulls_what_we_push(registry: TestRegistry, tmp_path: Path) -> None:
    src = write_source_tree(tmp_path, CHURN_KITFILE, weights=200_000)
    ref = f"{registry.host}/{unique_repo('modelpack', 'to-client')}:v1"
    store = pymodelkit.LocalStore(tmp_path / "home")
    _, manifest = _pack_modelpack(src, ref, store)
    push(ref, store=store)
    dest = tmp_path / "client-out"
    result = ModelPackClient(insecure=True).pull(ref, dest)
    expected = {name: data for name, data in read_tree(src).items() if name != "Kitfile"}
    assert read_tree(dest) == expected
    assert result.config["modelfs"]["diffIds"] == [str(layer.digest) for layer in manifest.layers or ()]
    assert result.config["descriptor"]["name"] == "churn"


def test_we_pull_and_unpack_what_modelpack_client_pushes(
    registry: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "client-src"
    layers, files = _client_push_tree(source)
    ref = f"{registry.host}/{unique_repo('modelpack', 'from-client')}:v1"
    config = ModelPackConfig(ModelDescriptor(name="tiny"), ModelTechnicalConfig(format="safetensors"))
    pushed = ModelPackClient(insecure=True).push(ref, layers, config)

    store = pymodelkit.LocalStore(tmp_path / "home")
    assert str(pull(ref, store=store).digest) == pushed.digest
    assert dump_kitfile(pymodelkit.info(ref, store=store)) == (
        "manifestVersion: 1.0.0\nmodel:\n  path: model.safetensors\n  parts:\n    - path: config.json\n"
        "code:\n  - path: run.py\ndocs:\n  - path: docs\n"
    )
    kitfile = json.loads(pymodelkit.inspect(ref, store=store))["kitfile"]
    assert kitfile["model"]["digest"] == pushed.manifest["layers"][0]["digest"]

    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="pymodelkit.unpack.unpacker"):
        result = pymodelkit.unpack(ref, out, store=store)
    assert result.kitfile_path is None  # no Kitfile annotation: none is written, as kit does
    assert "Artifact does not include Kitfile: functionality may be impacted" in caplog.text
    assert read_tree(out) == files

    weights_only = tmp_path / "weights-only"
    pymodelkit.unpack(ref, weights_only, store=pymodelkit.LocalStore(tmp_path / "remote-home"), filters=["model"])
    assert read_tree(weights_only) == {name: files[name] for name in ("config.json", "model.safetensors")}


def test_a_modelpack_with_an_unknown_layer_type_fails_clearly(registry: TestRegistry, tmp_path: Path) -> None:
    store = pymodelkit.LocalStore(tmp_path / "home")
    weights = b"hello weights\n"
    config = (
        b'{"descriptor":{"name":"tiny-model"},"config":{"format":"safetensors"},"modelfs":{"type":"layers",'
        b'"diffIds":["sha256:62e1cb3d236c6ee44130c54bf720f87b2ba1b0d58965634af9a3c3e541a462ef"]}}'
    )  # spec modelpack.md §5, the minimal valid ModelPack, built by hand
    layer_digest, config_digest = store.write_blob(weights), store.write_blob(config)

    def manifest(media_type: str) -> bytes:
        return json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": P + "manifest.v1+json",
            "config": {"mediaType": P + "config.v1+json", "digest": str(config_digest), "size": len(config)},
            "layers": [{"mediaType": media_type, "digest": str(layer_digest), "size": len(weights),
                        "annotations": {"org.cncf.model.filepath": "model.safetensors"}}],
        }).encode()

    store.add_manifest(parse_reference("modelpack/vector")[0].repo_key, manifest(P + "weight.v1.raw"), tags=("good",))
    pymodelkit.unpack("modelpack/vector:good", tmp_path / "good", store=store)
    assert read_tree(tmp_path / "good") == {"model.safetensors": weights}

    ref = f"{registry.host}/{unique_repo('modelpack', 'unknown')}:v1"
    reference = parse_reference(ref)[0]
    store.add_manifest(reference.repo_key, manifest(P + "weights.v1.raw"), tags=("v1",))
    push(ref, store=store)
    fresh = pymodelkit.LocalStore(tmp_path / "fresh")
    pull(ref, store=fresh)  # pull takes any model artifact, as kit does; reading it is what fails
    message = r"^ModelPack layer 0 \(sha256:[0-9a-f]{64}\): unknown ModelPack layer media type " \
              r"'application/vnd\.cncf\.model\.weights\.v1\.raw'"
    with pytest.raises(ModelKitError, match=message):
        pymodelkit.unpack(ref, tmp_path / "bad", store=fresh)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ModelKitError, match=message):
        pymodelkit.info(ref, store=fresh)
    with pytest.raises(ModelKitError, match=message):
        info_remote(ref)
    with pytest.raises(ModelPackError, match="non-ModelPack layer"):  # the independent client refuses it too
        ModelPackClient(insecure=True).pull(ref, tmp_path / "client-bad")
