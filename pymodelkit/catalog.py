"""What is in the local store, as kit shows it: ``list``, ``inspect``, ``info``, ``tag``, ``remove`` and ``diff``.

Each function is one library call behind one CLI command; the output formats (table, JSON) are kit's (spec
``format.md``, §6.4 "List, tag, remove"). The same commands against a registry are in
:mod:`pymodelkit.registry.remote` (``list_remote``, ``inspect_remote``, ``info_remote``, ``remove_remote``), which
builds its rows and documents with :func:`listed_modelkit`, :func:`format_inspect_json` and
:func:`kitfile_for_info`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.kitfile import Kitfile, kitfile_to_json_bytes
from pymodelkit.modelpack.convert import kitfile_for_manifest
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes, indent_json
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import ANNOTATION_CLI_VERSION, ANNOTATION_FILEPATH, ANNOTATION_TOOL_VERSION
from pymodelkit.oci.reference import Reference, format_for_display, parse_reference, parse_single_reference
from pymodelkit.store import LocalStore, Removal

__all__ = [
    "LayerDiff",
    "ListedModelKit",
    "ModelKitDiff",
    "diff_modelkits",
    "format_bytes",
    "format_inspect_json",
    "format_list_json",
    "format_list_table",
    "info",
    "inspect",
    "kitfile_for_info",
    "list_modelkits",
    "listed_modelkit",
    "remove",
    "tag",
]


@dataclass(frozen=True, slots=True)
class ListedModelKit:
    """One row of ``list``: a manifest in a repository, with its tags, Kitfile name and author, and layer bytes."""

    repo: str
    digest: Digest
    tags: tuple[str, ...]
    model_name: str
    author: str
    size: int


def _reference(text: str | Reference) -> Reference:
    ref = parse_reference(text)[0] if isinstance(text, str) else text
    if not ref.has_reference:
        raise InvalidReferenceError(f"missing tag or digest from ModelKit reference '{text}'", reference=str(text))
    return ref


def _config(store: LocalStore, manifest: Manifest) -> Kitfile:
    # A ModelPack's Kitfile is its annotation or one rebuilt from its layers (spec modelpack.md §8).
    return kitfile_for_manifest(manifest, store.read_blob(manifest.config.digest))


def list_modelkits(
    store: LocalStore | None = None, repository: str | Reference | None = None
) -> list[ListedModelKit]:
    """Every ModelKit in the local store, sorted by repository then digest, as ``kit list [REPOSITORY]`` lists them.

    ``repository`` narrows the list as kit's argument does: ``repo`` (or ``registry/repo``) to that repository's
    ModelKits, ``repo:tag`` to the row of that tag (showing only that tag), ``repo@digest`` to that manifest (with
    all its tags). A tag or digest the repository does not have gives no row.

    Raises:
        InvalidReferenceError: ``repository`` does not parse, or names several tags (``repo:a,b``).
    """
    store = store if store is not None else LocalStore()
    ref = parse_single_reference(repository) if repository else None
    rows = [
        listed_modelkit(stored.repo_key, stored.digest, sorted(stored.tags), stored.manifest,
                        _config(store, stored.manifest))
        for stored in store.list_modelkits(ref.repo_key if ref is not None else None)
        if ref is None or _selected(ref, stored.digest, stored.tags)
    ]
    if ref is not None and ref.digest is None and ref.tag:  # kit's list of REPOSITORY:TAG shows that tag only
        rows = [replace(row, tags=(ref.tag,)) for row in rows]
    rows.sort(key=lambda row: (row.repo, str(row.digest)))
    return rows


def _selected(ref: Reference, digest: Digest, tags: Sequence[str]) -> bool:
    """Whether a manifest of ``ref``'s repository is the one ``ref`` names (any, when it names no tag or digest)."""
    if ref.digest is not None:
        return digest == ref.digest
    return not ref.tag or ref.tag in tags


def listed_modelkit(
    repo: str, digest: Digest, tags: Sequence[str], manifest: Manifest, kitfile: Kitfile | None
) -> ListedModelKit:
    """The ``list`` row of one manifest: name and first author from its Kitfile, size = the sum of its layers."""
    return ListedModelKit(
        repo=repo,
        digest=digest,
        tags=tuple(tags),
        model_name=kitfile.package.name if kitfile is not None else "",
        author=kitfile.package.authors[0] if kitfile is not None and kitfile.package.authors else "",
        size=sum(layer.size for layer in manifest.layers or ()),
    )


def format_bytes(size: int) -> str:
    """kit's ``FormatBytes``: ``<n> B`` under 1 KiB, else floor to 0.1 of KiB/MiB/GiB/TiB, else PiB unfloored."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{math.floor(value * 10) / 10:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def format_list_table(rows: Sequence[ListedModelKit]) -> str:
    """The ``list`` table as Go's tabwriter prints it (padding 3), one line per tag."""
    lines = [["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]]
    for row in rows:
        repo = format_for_display(row.repo) or "<none>"
        for tag in row.tags or ("<none>",):
            lines.append([repo, tag, row.author or "<none>", row.model_name or "<none>", format_bytes(row.size),
                          str(row.digest)])
    widths = [max(len(line[col]) for line in lines) + 3 for col in range(5)]
    return "".join(
        "".join(cell.ljust(widths[col]) for col, cell in enumerate(line[:5])) + line[5] + "\n" for line in lines
    )


def format_list_json(rows: Sequence[ListedModelKit]) -> str:
    """The ``list --format json`` output: kit's objects, two-space indented."""
    items = [
        Struct(
            repo=format_for_display(row.repo),
            digest=str(row.digest),
            tags=list(row.tags) if row.tags else None,
            modelName=row.model_name,
            size=format_bytes(row.size),
            author=row.author,
        )
        for row in rows
    ]
    return indent_json(go_json_bytes(items)).decode("utf-8")


def inspect(reference: str | Reference, store: LocalStore | None = None) -> str:
    """kit's ``inspect`` JSON for a ModelKit: its digest, cliVersion, Kitfile (config) and manifest."""
    store = store if store is not None else LocalStore()
    ref = _reference(reference)
    descriptor, manifest = store.read_manifest(ref)
    return format_inspect_json(descriptor.digest, manifest, _config(store, manifest))


def format_inspect_json(digest: Digest, manifest: Manifest, kitfile: Kitfile) -> str:
    """kit's ``inspect`` document for a manifest and its Kitfile (config), indented as ``json.MarshalIndent``."""
    annotations = manifest.annotations or {}
    version = annotations.get(ANNOTATION_CLI_VERSION) or annotations.get(ANNOTATION_TOOL_VERSION) or "unknown"
    kitfile_json = kitfile_to_json_bytes(kitfile)
    compact = b"".join(
        [
            b'{"digest":',
            go_json_bytes(str(digest)),
            b',"cliVersion":',
            go_json_bytes(version),
            b',"kitfile":',
            kitfile_json,
            b',"manifest":',
            manifest.to_json_bytes(),
            b"}",
        ]
    )
    return indent_json(compact).decode("utf-8")


def info(reference: str | Reference, store: LocalStore | None = None) -> Kitfile:
    """The Kitfile of a ModelKit, rebuilt from its config as kit does (dump it with ``dump_kitfile``)."""
    store = store if store is not None else LocalStore()
    ref = _reference(reference)
    _, manifest = store.read_manifest(ref)
    return kitfile_for_info(_config(store, manifest))


def kitfile_for_info(config: Kitfile) -> Kitfile:
    """The Kitfile ``info`` shows for a config: a copy without the layer digests and diffIDs pack recorded."""
    kitfile = config.copy()
    for _, element in kitfile.elements():
        element.digest = ""
        element.diff_id = ""
    return kitfile


def tag(source: str | Reference, target: str | Reference, store: LocalStore | None = None) -> Descriptor:
    """Give the ModelKit ``source`` the extra name ``target`` (another tag, or another repository)."""
    store = store if store is not None else LocalStore()
    src = _reference(source)
    dst = parse_reference(target)[0] if isinstance(target, str) else target
    if not dst.tag:
        raise InvalidReferenceError(f"a tag is required for the target reference '{target}'", reference=str(target))
    return store.tag(src, dst)


def remove(reference: str | Reference, *, force: bool = False, store: LocalStore | None = None) -> list[Removal]:
    """Remove a ModelKit or one of its tags from the local store (kit's ``remove`` semantics)."""
    store = store if store is not None else LocalStore()
    ref = parse_reference(reference)[0] if isinstance(reference, str) else reference
    if not ref.has_reference:
        raise InvalidReferenceError(f"tag or digest is required when removing ({reference})", reference=str(reference))
    return store.remove(ref, force=force)


@dataclass(frozen=True, slots=True)
class LayerDiff:
    """A layer in a diff: its media type, digest, size and Kitfile path."""

    media_type: str
    digest: Digest
    size: int
    path: str


@dataclass(frozen=True, slots=True)
class ModelKitDiff:
    """kit's ``CompareManifests`` result between ModelKits A and B."""

    identical: bool
    same_config: bool
    annotations_match: bool
    shared_layers: tuple[LayerDiff, ...]
    only_in_a: tuple[LayerDiff, ...]
    only_in_b: tuple[LayerDiff, ...]


def _layer_diff(layer: Descriptor) -> LayerDiff:
    return LayerDiff(layer.media_type, layer.digest, layer.size, (layer.annotations or {}).get(ANNOTATION_FILEPATH, ""))


def diff_modelkits(a: str | Reference, b: str | Reference, store: LocalStore | None = None) -> ModelKitDiff:
    """Compare two ModelKits of the local store: config, annotations, and layers matched by digest and path."""
    store = store if store is not None else LocalStore()
    desc_a, man_a = store.read_manifest(_reference(a))
    desc_b, man_b = store.read_manifest(_reference(b))
    layers_a = [_layer_diff(layer) for layer in man_a.layers or ()]
    layers_b = [_layer_diff(layer) for layer in man_b.layers or ()]
    unmatched_a = list(layers_a)
    shared: list[LayerDiff] = []
    only_b: list[LayerDiff] = []
    for layer in layers_b:
        match = next((x for x in unmatched_a if x.digest == layer.digest and x.path == layer.path), None)
        if match is None:
            only_b.append(layer)
        else:
            unmatched_a.remove(match)
            shared.append(layer)

    def by_type(items: list[LayerDiff]) -> tuple[LayerDiff, ...]:
        return tuple(sorted(items, key=lambda x: x.media_type))

    return ModelKitDiff(
        identical=desc_a.digest == desc_b.digest,
        same_config=man_a.config.digest == man_b.config.digest,
        annotations_match=dict(man_a.annotations or {}) == dict(man_b.annotations or {}),
        shared_layers=by_type(shared),
        only_in_a=by_type(unmatched_a),
        only_in_b=by_type(only_b),
    )

