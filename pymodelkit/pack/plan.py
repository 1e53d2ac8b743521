"""The layer plan: which Kitfile elements get a layer, in which order, as what media type, excluding what.

Order is kit's: model, parts, code, datasets (local only), docs, prompts (``code`` layers with the ``prompt``
subtype), mcpServers (verbatim ``mcpb.v1.raw``). A model whose path references a parent ModelKit and remote datasets
get no layer, but their paths still exclude files from other layers, as do the paths of the parent chain (spec
``format.md``, "Layers").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymodelkit.kitfile import is_modelkit_reference
from pymodelkit.kitfile.model import Dataset, Kitfile, LayerElement, LayerKind
from pymodelkit.kitfile.paths import clean_path

__all__ = ["MEDIA_BASE", "LayerPlan", "PlannedLayer", "exclusion_paths", "gets_layer", "plan_layers"]

MEDIA_BASE: dict[str, str] = {
    "model": "model",
    "modelpart": "modelpart",
    "code": "code",
    "dataset": "dataset",
    "docs": "docs",
    "prompt": "code",
    "mcpserver": "mcpb",
}


@dataclass(frozen=True, slots=True)
class PlannedLayer:
    """One layer to build: the element it comes from, its Kitfile path, and its media-type base."""

    kind: LayerKind
    element: LayerElement
    path: str
    media_base: str

    @property
    def clean_path(self) -> str:
        """The cleaned path, which is also the layer's ``org.cncf.model.filepath`` annotation."""
        return clean_path(self.path)


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """Every layer of a ModelKit in manifest order, and the paths that no layer may take files from twice."""

    layers: tuple[PlannedLayer, ...]
    exclusions: tuple[str, ...]


def gets_layer(kind: LayerKind, element: LayerElement) -> bool:
    """Whether an element has a layer: not a model that references a parent ModelKit, not a remote dataset."""
    if kind == "model":
        return bool(element.path) and not is_modelkit_reference(element.path)
    if kind == "dataset":
        assert isinstance(element, Dataset)
        return not element.remote_path
    return True


def exclusion_paths(kitfile: Kitfile, parent_paths: Sequence[str] = ()) -> list[str]:
    """Other-layer paths in kit's order: code, datasets, docs, prompts, mcpServers, model, parts, then parents."""
    paths: list[str] = [c.path for c in kitfile.code]
    paths += [d.path for d in kitfile.datasets]
    paths += [d.path for d in kitfile.docs]
    paths += [p.path for p in kitfile.prompts]
    paths += [m.path for m in kitfile.mcp_servers]
    if kitfile.model is not None:
        if kitfile.model.path and not is_modelkit_reference(kitfile.model.path):
            paths.append(kitfile.model.path)
        paths += [part.path for part in kitfile.model.parts]
    paths += list(parent_paths)
    return [clean_path(p.strip()) for p in paths]


def plan_layers(kitfile: Kitfile, parent_paths: Sequence[str] = ()) -> LayerPlan:
    """Compute the layer plan of ``kitfile``; ``parent_paths`` are the layer paths of its parent ModelKits."""
    layers = tuple(
        PlannedLayer(kind, element, element.path, MEDIA_BASE[kind])
        for kind, element in kitfile.elements()
        if gets_layer(kind, element)
    )
    return LayerPlan(layers=layers, exclusions=tuple(exclusion_paths(kitfile, parent_paths)))
