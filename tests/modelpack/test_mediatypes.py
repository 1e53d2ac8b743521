"""ModelPack layer media types: the 20 types, kit's Kitfile → ModelPack mapping, and reading both families."""

from __future__ import annotations

import pytest

from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.modelpack.mediatypes import (
    ModelPackLayerType,
    modelpack_layer_type,
    parse_layer_media_type,
)
from pymodelkit.oci.mediatypes import LayerMediaType

P = "application/vnd.cncf.model."
KINDS = ("weight", "weight.config", "doc", "code", "dataset")
FORMATS = {"raw": ("raw", "none"), "tar": ("tar", "none"), "tar+gzip": ("tar", "gzip"), "tar+zstd": ("tar", "zstd")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", list(FORMATS))
def test_every_modelpack_layer_type_parses_and_round_trips(kind: str, suffix: str) -> None:
    text = f"{P}{kind}.v1.{suffix}"
    parsed = ModelPackLayerType.parse(text)
    assert (parsed.kind, parsed.format, parsed.compression) == (kind, *FORMATS[suffix])
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{P}weights.v1.tar", "unknown ModelPack layer media type 'application/vnd.cncf.model.weights.v1.tar'"),
        (f"{P}model.v1.tar", "invalid kind model"),  # kit's base names are not ModelPack kinds (the old kit bug)
        (f"{P}weight.v1.zip", "invalid format zip"),
        (f"{P}weight.v1.tar+lz4", "invalid compression lz4"),
        (f"{P}weight.v2.tar", "unknown ModelPack layer media type"),
        (f"{P}weight.v1.raw+gzip", "model-spec does not support compression for raw layers"),
        ("application/vnd.cnai.model.weight.v1.tar", "unknown ModelPack layer media type"),
    ],
)
def test_bad_modelpack_layer_types_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ModelKitError, match=message.replace("+", r"\+").replace(".", r"\.")):
        ModelPackLayerType.parse(text)


@pytest.mark.parametrize(
    ("kind", "layer_format", "compression", "expected"),
    [
        ("model", "tar", "none", f"{P}weight.v1.tar"),
        ("modelpart", "tar", "gzip", f"{P}weight.config.v1.tar+gzip"),
        ("modelpart", "tar", "gzip-fastest", f"{P}weight.config.v1.tar+gzip"),
        ("code", "tar", "zstd", f"{P}code.v1.tar+zstd"),
        ("prompt", "tar", "none", f"{P}code.v1.tar"),
        ("dataset", "raw", "none", f"{P}dataset.v1.raw"),
        ("docs", "tar", "none", f"{P}doc.v1.tar"),
        ("model", "raw", "none", f"{P}weight.v1.raw"),
    ],
)
def test_kitfile_elements_map_to_kits_modelpack_types(
    kind: str, layer_format: str, compression: str, expected: str
) -> None:
    assert str(modelpack_layer_type(kind, layer_format, compression)) == expected  # type: ignore[arg-type]


def test_mcpservers_and_compressed_raw_cannot_be_modelpack_layers() -> None:
    with pytest.raises(PackError, match=r"^mcpServers are not supported when packing in modelpack format$"):
        modelpack_layer_type("mcpserver", "raw", "none")
    with pytest.raises(PackError, match=r"^compression for raw layers is not supported for ModelPack$"):
        modelpack_layer_type("model", "raw", "zstd")


def test_reading_maps_modelpack_kinds_to_kitops_bases() -> None:
    assert parse_layer_media_type(f"{P}weight.v1.tar+zstd") == LayerMediaType("model", "tar", "zstd")
    assert parse_layer_media_type(f"{P}weight.config.v1.raw") == LayerMediaType("modelpart", "raw", "none")
    assert parse_layer_media_type(f"{P}doc.v1.tar+gzip") == LayerMediaType("docs", "tar", "gzip")
    assert parse_layer_media_type(f"{P}dataset.v1.tar") == LayerMediaType("dataset", "tar", "none")
    assert parse_layer_media_type(f"{P}code.v1.tar") == LayerMediaType("code", "tar", "none")
    kitops = "application/vnd.kitops.modelkit.dataset.v1.raw+gzip"
    assert parse_layer_media_type(kitops) == LayerMediaType("dataset", "raw", "gzip")


def test_reading_an_unknown_layer_family_names_the_type() -> None:
    with pytest.raises(ModelKitError, match=r"^unknown layer media type 'application/vnd\.oci\.image\.layer\.v1\.tar'"):
        parse_layer_media_type("application/vnd.oci.image.layer.v1.tar")
