"""Parent ModelKits: a ``model.path`` that is a ModelKit reference, resolved through the local store.

kit follows at most 10 references and refuses cycles, then merges the parents' Kitfiles and validates the result
(spec ``format.md`` §1.6). The merged chain's layer paths exclude files from the child's layers, so files a parent
already carries are not packed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pymodelkit.errors import KitfileError
from pymodelkit.kitfile import Kitfile, Model, is_modelkit_reference, kitfile_from_json_bytes, validate_kitfile
from pymodelkit.kitfile.validate import modelkit_reference_text
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.reference import Reference, parse_reference

__all__ = ["MAX_MODEL_REF_CHAIN", "merge_parent_chain", "parent_layer_paths", "resolve_parent_chain"]

logger = logging.getLogger(__name__)

MAX_MODEL_REF_CHAIN = 10

# Fetches a ModelKit's manifest and config bytes; raises NotFoundError when it is not there.
FetchModelKit = Callable[[Reference], tuple[Manifest, bytes]]


def resolve_parent_chain(kitfile: Kitfile, start: str, fetch: FetchModelKit) -> list[Kitfile]:
    """Return the parent Kitfiles of ``kitfile``, nearest first, after validating their merge.

    ``start`` is the display form of the reference being packed (the first link of the cycle check).

    Raises:
        KitfileError: a cycle, a chain still unresolved after 10 fetches, or a merged chain that does not validate.
        NotFoundError: a parent is not in the store (from ``fetch``).
    """
    if kitfile.model is None or not is_modelkit_reference(kitfile.model.path):
        return []
    chain = [start, kitfile.model.path]
    parents: list[Kitfile] = []
    current = kitfile.model.path
    for _ in range(MAX_MODEL_REF_CHAIN):
        ref = parse_reference(modelkit_reference_text(current))[0].with_default_tag()
        _, config = fetch(ref)
        parent = kitfile_from_json_bytes(config)
        parents.append(parent)
        if parent.model is None or not is_modelkit_reference(parent.model.path):
            for warning in validate_kitfile(merge_parent_chain(parents)):
                logger.warning("%s", warning)
            return parents
        following = parent.model.path
        if following in chain:
            # kit shows the cycle from the first occurrence of the repeated reference, not the whole chain.
            cycle = chain[chain.index(following) :]
            raise KitfileError(f"Found cycle in modelkit references: [{'=>'.join([*cycle, following])}]")
        chain.append(following)
        current = following
    raise KitfileError(f"reached maximum number of model references: [{'=>'.join(chain)}]")


def merge_parent_chain(parents: Sequence[Kitfile]) -> Kitfile:
    """kit's ``mergeKitfiles`` over the chain, nearest parent first.

    The first non-empty value wins for ``manifestVersion``, package name/description/license/version and model
    name/description/framework/version; authors, parts, code, datasets and docs are concatenated; ``model.path`` is
    the last parent's. Model license, format and parameters, prompts and mcpServers are not carried over.
    """
    merged = Kitfile()
    for parent in parents:
        merged.manifest_version = merged.manifest_version or parent.manifest_version
        package, other = merged.package, parent.package
        package.name = package.name or other.name
        package.description = package.description or other.description
        package.license = package.license or other.license
        package.version = package.version or other.version
        package.authors = [*package.authors, *other.authors]
        if merged.model is not None or parent.model is not None:
            into = merged.model if merged.model is not None else Model()
            source = parent.model if parent.model is not None else Model()
            merged.model = Model(
                name=into.name or source.name,
                path=source.path,
                framework=into.framework or source.framework,
                version=into.version or source.version,
                description=into.description or source.description,
                parts=[*into.parts, *source.parts],
            )
        merged.code = [*merged.code, *parent.code]
        merged.datasets = [*merged.datasets, *parent.datasets]
        merged.docs = [*merged.docs, *parent.docs]
    return merged


def parent_layer_paths(parents: Sequence[Kitfile]) -> list[str]:
    """kit's ``LayerPathsFromKitfile`` of the merged chain: code, datasets, docs, the model path (if any), parts."""
    merged = merge_parent_chain(parents)
    paths = [c.path for c in merged.code] + [d.path for d in merged.datasets] + [d.path for d in merged.docs]
    if merged.model is not None:
        if merged.model.path:
            paths.append(merged.model.path)
        paths += [part.path for part in merged.model.parts]
    return paths
