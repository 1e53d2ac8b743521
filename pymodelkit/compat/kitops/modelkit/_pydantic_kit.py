"""pykitops' ``kitops.modelkit._pydantic_kit`` (private there, imported by some code): the section models."""

from __future__ import annotations

from pymodelkit.compat.kitfile import (
    BasePathModel,
    CodeEntry,
    DatasetEntry,
    DocsEntry,
    McpServerEntry,
    ModelPart,
    ModelSection,
    Package,
    PromptEntry,
    PydanticKitfile,
)

__all__ = [
    "BasePathModel",
    "CodeEntry",
    "DatasetEntry",
    "DocsEntry",
    "McpServerEntry",
    "ModelPart",
    "ModelSection",
    "Package",
    "PromptEntry",
    "PydanticKitfile",
]
