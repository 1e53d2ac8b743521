"""CNCF ModelPack artifacts: the layer media types, the config blob, and the Kitfile ↔ ModelPack conversion as kit
does it (spec ``modelpack.md``). Pack writes a ModelPack through :func:`modelpack_manifest`; every reader (``info``,
``inspect``, ``unpack``, remote reads) gets the Kitfile through :func:`kitfile_for_manifest`."""

from pymodelkit.modelpack.config import collect_licenses, modelpack_config, modelpack_config_bytes, read_config_diff_ids
from pymodelkit.modelpack.convert import (
    check_modelpack_options,
    has_kitfile_annotation,
    kitfile_for_manifest,
    kitfile_from_modelpack,
    modelpack_from_modelkit,
    modelpack_layer_descriptor,
    modelpack_manifest,
)
from pymodelkit.modelpack.mediatypes import (
    ModelPackLayerType,
    is_modelpack_layer_type,
    modelpack_layer_type,
    parse_layer_media_type,
)

__all__ = [
    "ModelPackLayerType",
    "check_modelpack_options",
    "collect_licenses",
    "has_kitfile_annotation",
    "is_modelpack_layer_type",
    "kitfile_for_manifest",
    "kitfile_from_modelpack",
    "modelpack_config",
    "modelpack_config_bytes",
    "modelpack_from_modelkit",
    "modelpack_layer_descriptor",
    "modelpack_layer_type",
    "modelpack_manifest",
    "parse_layer_media_type",
    "read_config_diff_ids",
]
