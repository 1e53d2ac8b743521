"""The public surface of pymodelkit.kitfile (style rule 2: a test pins __all__)."""

from __future__ import annotations

import pymodelkit.kitfile as kitfile


def test_kitfile_package_exports() -> None:
    assert sorted(kitfile.__all__) == [
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
    for name in kitfile.__all__:
        assert getattr(kitfile, name) is not None
