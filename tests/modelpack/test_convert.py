"""Kitfile → ModelPack manifest and config, and ModelPack → Kitfile (from the annotation, or rebuilt as kit does, after
kit's ``pkg/artifact/testdata/kitfile-generation`` cases)."""

from __future__ import annotations

import json

import pytest

from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.kitfile import Dataset, Kitfile, Model, Package, Prompt, kitfile_to_json_bytes
from pymodelkit.modelpack import (
    check_modelpack_options,
    has_kitfile_annotation,
    kitfile_for_manifest,
    kitfile_from_modelpack,
    modelpack_from_modelkit,
    modelpack_manifest,
)
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest

K = "application/vnd.kitops.modelkit."
P = "application/vnd.cncf.model."
CREATED = {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}

# spec kitops-modelkit.md §2.13, vector A: a KitOps ModelKit packed with SOURCE_DATE_EPOCH=0.
A_MODEL = "sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"
A_DATASET = "sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f"
A_CONFIG = (
    '{"manifestVersion":"1.0.0","package":{"name":"test-repack"},"model":{"path":"test-file.txt","digest":"'
    + A_MODEL + '","diffId":"' + A_MODEL + '"},"datasets":[{"path":"test-dir/test-subfile.txt","digest":"'
    + A_DATASET + '","diffId":"' + A_DATASET + '"}]}'
).encode()
A_MANIFEST = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":'
    '"application/vnd.kitops.modelkit.manifest.v1+json","config":{"mediaType":'
    '"application/vnd.kitops.modelkit.config.v1+json","digest":'
    '"sha256:e8497a2e7be9fd69cfdd090ab24c323c3629deca91c6ac825e73b2d15d4e2454","size":475},"layers":[{"mediaType":'
    '"application/vnd.kitops.modelkit.model.v1.tar","digest":"' + A_MODEL + '","size":2048,"annotations":'
    '{"org.cncf.model.filepath":"test-file.txt"}},{"mediaType":"application/vnd.kitops.modelkit.dataset.v1.tar",'
    '"digest":"' + A_DATASET + '","size":2560,"annotations":{"org.cncf.model.filepath":"test-dir/test-subfile.txt"}}],'
    '"annotations":{"ml.kitops.modelkit.cli-version":"unknown","org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}'
).encode()


def _digest(char: str) -> Digest:
    return Digest("sha256", char * 64)


def _layer(media: str, char: str, path: str, **extra: str) -> Descriptor:
    return Descriptor(media, _digest(char), 100, {"org.cncf.model.filepath": path, **extra})


def test_vector_a_converts_to_kits_modelpack_form() -> None:
    assert len(A_CONFIG) == 475 and len(A_MANIFEST) == 878
    manifest_bytes, config_bytes = modelpack_from_modelkit(Manifest.parse(A_MANIFEST), A_CONFIG)
    assert config_bytes == (
        b'{"descriptor":{"createdAt":"1970-01-01T00:00:00Z","name":"test-repack","title":"test-repack"},'
        b'"modelfs":{"type":"layers","diffIds":["' + A_MODEL.encode() + b'","' + A_DATASET.encode() + b'"]},'
        b'"config":{}}'
    )
    config_digest = Digest.from_bytes(config_bytes)
    assert manifest_bytes == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":'
        b'"application/vnd.cncf.model.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.model.config.v1+json",'
        b'"digest":"' + str(config_digest).encode() + b'","size":' + str(len(config_bytes)).encode() + b'},'
        b'"layers":[{"mediaType":"application/vnd.cncf.model.weight.v1.tar","digest":"' + A_MODEL.encode()
        + b'","size":2048,"annotations":{"org.cncf.model.filepath":"test-file.txt"}},{"mediaType":'
        b'"application/vnd.cncf.model.dataset.v1.tar","digest":"' + A_DATASET.encode() + b'","size":2560,'
        b'"annotations":{"org.cncf.model.filepath":"test-dir/test-subfile.txt"}}],"annotations":'
        b'{"ml.kitops.modelkit.cli-version":"unknown","ml.kitops.modelkit.kitfile":'
        + json.dumps(A_CONFIG.decode()).encode()
        + b',"org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}'
    )
    converted = Manifest.parse(manifest_bytes)
    assert converted.format == "modelpack"
    assert has_kitfile_annotation(converted)
    assert kitfile_to_json_bytes(kitfile_from_modelpack(converted, config_bytes)) == A_CONFIG


def test_layers_keep_their_bytes_and_annotations_and_get_modelpack_types() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        package=Package(name="p"),
        model=Model(path="model", digest=str(_digest("1")), diff_id=str(_digest("a"))),
        prompts=[Prompt(path="prompts/x.md", digest=str(_digest("2")), diff_id=str(_digest("b")))],
    )
    metadata = '{"name":"model","mode":420,"uid":0,"gid":0,"size":100,"mtime":"2026-01-01T00:00:00Z","typeflag":0}'
    layers = [
        (_layer(K + "model.v1.raw", "1", "model", **{"org.cncf.model.file.metadata+json": metadata}), _digest("a")),
        (_layer(K + "code.v1.tar+zstd", "2", "prompts/x.md", **{"ml.kitops.modelkit.layer-subtype": "prompt"}),
         _digest("b")),
    ]
    manifest_bytes, config_bytes = modelpack_manifest(kitfile, layers, annotations={"dev.pymodelkit.version": "0.1"})
    manifest = Manifest.parse(manifest_bytes)
    assert manifest.artifact_type == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest.config == Descriptor(
        "application/vnd.cncf.model.config.v1+json", Digest.from_bytes(config_bytes), len(config_bytes)
    )
    assert [(d.media_type, d.digest, d.size) for d in manifest.layers or ()] == [
        (P + "weight.v1.raw", _digest("1"), 100),
        (P + "code.v1.tar+zstd", _digest("2"), 100),
    ]
    assert [dict(d.annotations or {}) for d in manifest.layers or ()] == [dict(d.annotations or {}) for d, _ in layers]
    assert dict(manifest.annotations or {}) == {
        "dev.pymodelkit.version": "0.1",
        "ml.kitops.modelkit.kitfile": kitfile_to_json_bytes(kitfile).decode(),
    }
    assert json.loads(config_bytes)["modelfs"] == {"type": "layers", "diffIds": [str(_digest("a")), str(_digest("b"))]}


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (_layer(K + "mcpb.v1.raw", "1", "x.mcpb"), "^mcpServers are not supported when packing in modelpack format$"),
        (_layer(K + "model.v1.raw+gzip", "1", "m"), "^compression for raw layers is not supported for ModelPack$"),
    ],
)
def test_layers_modelpack_cannot_hold_are_refused(layer: Descriptor, message: str) -> None:
    with pytest.raises(PackError, match=message):
        modelpack_manifest(Kitfile(), [(layer, _digest("a"))])


def test_options_are_checked_before_any_layer_is_built() -> None:
    check_modelpack_options(Kitfile(model=Model(path="m")), "raw", "none")
    with pytest.raises(PackError, match=r"^mcpServers are not supported"):
        from pymodelkit.kitfile import McpServer

        check_modelpack_options(Kitfile(mcp_servers=[McpServer(name="s", path="s.mcpb")]), "tar", "none")
    with pytest.raises(PackError, match=r"^compression for raw layers"):
        check_modelpack_options(Kitfile(), "raw", "gzip-fastest")


def test_no_layers_and_a_given_kitfile_annotation_are_refused() -> None:
    with pytest.raises(PackError, match="at least one layer"):
        modelpack_manifest(Kitfile(), [])
    with pytest.raises(PackError, match=r"annotation ml\.kitops\.modelkit\.kitfile is set by pack"):
        modelpack_manifest(Kitfile(), [(_layer(K + "model.v1.tar", "1", "m"), _digest("1"))],
                           annotations={"ml.kitops.modelkit.kitfile": "{}"})


def _modelpack(layers: list[Descriptor], annotations: dict[str, str] | None = None) -> Manifest:
    return Manifest(
        config=Descriptor("application/vnd.cncf.model.config.v1+json", _digest("0"), 10),
        layers=tuple(layers),
        annotations=annotations,
        artifact_type="application/vnd.cncf.model.manifest.v1+json",
    )


def _config(*chars: str) -> bytes:
    return json.dumps({"modelfs": {"type": "layers", "diffIds": [str(_digest(c)) for c in chars]}}).encode()


def test_kitfile_is_rebuilt_from_manifest_and_config() -> None:  # test-kitfile-for-manifest-and-config
    manifest = _modelpack([
        _layer(P + "weight.v1.raw", "a", "test-file.safetensors"),
        _layer(P + "weight.config.v1.tar", "b", "test-config.json"),
        _layer(P + "weight.config.v1.tar", "c", "test-config-2.json"),
        _layer(P + "doc.v1.tar", "d", "README.md"),
        _layer(P + "doc.v1.tar", "e", "LICENSE"),
        _layer(P + "dataset.v1.tar", "f", "datasets/dataset.parquet"),
        _layer(P + "code.v1.tar", "9", "src/test.sh"),
    ])
    kitfile = kitfile_from_modelpack(manifest, _config("1", "2", "3", "4", "5", "6", "7"))
    assert not has_kitfile_annotation(manifest)

    def info(c: str, d: str) -> str:
        return f'"digest":"{_digest(c)}","diffId":"{_digest(d)}"'

    assert kitfile_to_json_bytes(kitfile).decode() == (
        '{"manifestVersion":"1.0.0","package":{},"model":{"path":"test-file.safetensors",'
        + '"parts":[{"path":"test-config.json",' + info("b", "2")
        + '},{"path":"test-config-2.json",' + info("c", "3")
        + '}],' + info("a", "1") + '},"code":[{"path":"src/test.sh",' + info("9", "7")
        + '}],"datasets":[{"path":"datasets/dataset.parquet",' + info("f", "6")
        + '}],"docs":[{"path":"README.md",' + info("d", "4") + '},{"path":"LICENSE",' + info("e", "5") + "}]}"
    )


def test_later_weight_layers_become_parts_and_no_config_means_no_diff_ids() -> None:  # multiple-model-weights
    manifest = _modelpack([
        _layer(P + "weight.v1.raw", "a", "w1.safetensors"),
        _layer(P + "weight.config.v1.tar", "b", "config.json"),
        _layer(P + "weight.v1.raw", "c", "w2.safetensors"),
    ])
    kitfile = kitfile_from_modelpack(manifest, None)
    assert kitfile.model is not None
    model = kitfile.model
    assert (model.path, model.digest, model.diff_id) == ("w1.safetensors", str(_digest("a")), "")
    assert [(p.path, p.digest) for p in kitfile.model.parts] == [
        ("config.json", str(_digest("b"))), ("w2.safetensors", str(_digest("c"))),
    ]


def test_the_kitfile_annotation_wins_over_rebuilding() -> None:
    kitfile = Kitfile(manifest_version="1.0.0", package=Package(name="x"), datasets=[Dataset(path="d")])
    manifest = _modelpack([_layer(P + "weight.v1.tar", "a", "w")],
                          {"ml.kitops.modelkit.kitfile": kitfile_to_json_bytes(kitfile).decode()})
    assert kitfile_from_modelpack(manifest, b"not even json") == kitfile
    assert kitfile_for_manifest(manifest, None) == kitfile


@pytest.mark.parametrize(
    ("manifest", "config", "message"),
    [
        (_modelpack([_layer(P + "weights.v1.tar", "a", "w")]), None,
         r"^ModelPack layer 0 \(sha256:a+\): unknown ModelPack layer media type 'application/vnd\.cncf\.model\.weight"),
        (_modelpack([_layer(P + "weight.v1.tar", "a", "w"), _layer(K + "model.v1.tar", "b", "m")],
                    {"ml.kitops.modelkit.kitfile": "{}"}), None,
         r"^ModelPack layer 1 \(sha256:b+\): unknown ModelPack layer media type 'application/vnd\.kitops"),
        (_modelpack([Descriptor(P + "weight.v1.tar", _digest("a"), 1)]), None,
         r"^ModelPack layer 0 \(sha256:a+\) has no org\.cncf\.model\.filepath annotation"),
        (_modelpack([_layer(P + "weight.v1.tar", "a", "w")]), _config("1", "2"),
         r"^invalid ModelPack config: it lists 2 diffIds for 1 layers$"),
        (Manifest(config=Descriptor("application/vnd.oci.image.config.v1+json", _digest("0"), 2), layers=None,
                  artifact_type=None), None, r"^manifest is not a Model manifest"),
    ],
)
def test_unreadable_modelpacks_fail_with_a_clear_message(
    manifest: Manifest, config: bytes | None, message: str
) -> None:
    with pytest.raises(ModelKitError, match=message):
        kitfile_from_modelpack(manifest, config)


def test_kitfile_for_manifest_reads_a_kitops_config() -> None:
    assert kitfile_to_json_bytes(kitfile_for_manifest(Manifest.parse(A_MANIFEST), A_CONFIG)) == A_CONFIG
