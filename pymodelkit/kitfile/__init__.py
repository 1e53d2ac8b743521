"""The Kitfile: its model, YAML as kit reads and writes it, the config-blob JSON, and kit's validation rules."""

from pymodelkit.kitfile.configjson import kitfile_from_json_bytes, kitfile_to_json_bytes
from pymodelkit.kitfile.model import (
    Code,
    Dataset,
    Docs,
    Kitfile,
    LayerElement,
    LayerKind,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
)
from pymodelkit.kitfile.validate import PathType, classify_path, is_modelkit_reference, validate_kitfile
from pymodelkit.kitfile.yamldump import dump_kitfile
from pymodelkit.kitfile.yamlload import load_kitfile, read_kitfile

__all__ = [
    "Code",
    "Dataset",
    "Docs",
    "Kitfile",
    "LayerElement",
    "LayerKind",
    "McpServer",
    "Model",
    "ModelPart",
    "Package",
    "PathType",
    "Prompt",
    "classify_path",
    "dump_kitfile",
    "is_modelkit_reference",
    "kitfile_from_json_bytes",
    "kitfile_to_json_bytes",
    "load_kitfile",
    "read_kitfile",
    "validate_kitfile",
]
