"""Parent ModelKits: a ``model.path`` that is a ModelKit reference, resolved through the local store.

kit follows at most 10 references and refuses cycles (spec ``format.md``, "ModelKit references"). The chain's layer
paths exclude files from the child's layers, so files a parent already carries are not packed twice.
"""

from __future__ import annotations

from collections.abc import Callable

from pymodelkit.errors import PackError
from pymodelkit.kitfile import Kitfile, is_modelkit_reference, kitfile_from_json_bytes
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.reference import Reference, parse_reference

__all__ = ["MAX_MODEL_REF_CHAIN", "parent_layer_paths", "resolve_parent_chain"]

MAX_MODEL_REF_CHAIN = 10

# Fetches a ModelKit's manifest and config bytes; raises NotFoundError when it is not there.
FetchModelKit = Callable[[Reference], tuple[Manifest, bytes]]


def resolve_parent_chain(kitfile: Kitfile, start: str, fetch: FetchModelKit) -> list[Kitfile]:
    """Return the parent Kitfiles of ``kitfile``, nearest first. ``start`` is the display form of the reference
    being packed (the first link of the cycle check). Raises :class:`PackError` for a cycle or a chain over 10."""
    if kitfile.model is None or not is_modelkit_reference(kitfile.model.path):
        return []
    chain = [start, kitfile.model.path]
    parents: list[Kitfile] = []
    current = kitfile.model.path
    for _ in range(MAX_MODEL_REF_CHAIN):
        ref = parse_reference(current)[0].with_default_tag()
        _, config = fetch(ref)
        parent = kitfile_from_json_bytes(config)
        parents.append(parent)
        if parent.model is None or not is_modelkit_reference(parent.model.path):
            return parents
        following = parent.model.path
        if following in chain:
            raise PackError(f"Found cycle in modelkit references: [{'=>'.join([*chain, following])}]")
        chain.append(following)
        current = following
    raise PackError(f"reached maximum number of model references: [{'=>'.join(chain)}]")


def parent_layer_paths(parents: list[Kitfile]) -> list[str]:
    """The layer paths of the merged parent chain: parts, code, datasets and docs of each, then the model path."""
    paths: list[str] = []
    model_path = ""
    for parent in parents:
        if parent.model is not None:
            paths += [part.path for part in parent.model.parts]
            if parent.model.path and not is_modelkit_reference(parent.model.path):
                model_path = parent.model.path
        paths += [c.path for c in parent.code]
        paths += [d.path for d in parent.datasets]
        paths += [d.path for d in parent.docs]
    if model_path:
        paths.append(model_path)
    return paths
