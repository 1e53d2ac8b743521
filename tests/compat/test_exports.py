"""The compat surface: pykitops' module layout under ``pymodelkit.compat.kitops``, and the pinned ``__all__``."""

from __future__ import annotations

import importlib

import pymodelkit.compat
import pymodelkit.compat.kitops.cli.kit as kit_module
from pymodelkit.compat import kit


def test_compat_all_is_pinned() -> None:
    assert pymodelkit.compat.__all__ == [
        "CodeEntry", "DatasetEntry", "DocsEntry", "KitCommandError", "Kitfile", "McpServerEntry", "ModelKitManager",
        "ModelKitReference", "ModelPart", "ModelSection", "Package", "PromptEntry", "UserCredentials", "kit",
    ]
    for name in pymodelkit.compat.__all__:
        assert getattr(pymodelkit.compat, name) is not None


def test_pykitops_modules_exist_with_their_names() -> None:
    expected = {
        "cli.kit": ["import_from_hf", "info", "init", "inspect", "list", "login", "logout", "pack", "pull", "push",
                    "remove", "tag", "unpack", "version"],
        "modelkit": ["Package", "CodeEntry", "DatasetEntry", "DocsEntry", "ModelSection"],
        "modelkit.kitfile": ["Kitfile"],
        "modelkit.manager": ["ModelKitManager"],
        "modelkit.reference": ["ModelKitReference"],
        "modelkit.user": ["UserCredentials"],
        "modelkit.utils": ["Color", "IS_A_TTY", "validate_dict", "clean_empty_items", "get_or_create_directory",
                           "parse_modelkit_tag", "load_environment_variables"],
        "modelkit._pydantic_kit": ["PromptEntry", "ModelPart", "BasePathModel", "PydanticKitfile"],
    }
    for module_name, names in expected.items():
        module = importlib.import_module(f"pymodelkit.compat.kitops.{module_name}")
        assert [name for name in names if not hasattr(module, name)] == [], module_name


def test_star_import_works_unlike_pykitops_1_5() -> None:
    namespace: dict[str, object] = {}
    exec("from pymodelkit.compat.kitops import *", namespace)
    assert {"cli", "modelkit", "__version__"} <= set(namespace)
    assert namespace["__version__"] == "1.5.0"


def test_every_import_path_gives_the_same_functions() -> None:
    assert kit_module.push is kit.push and kit_module.list is kit.list
