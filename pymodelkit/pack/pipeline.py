"""``pack``: a directory and its Kitfile in, a ModelKit in the local store out.

Each layer is streamed once: the walk yields entries, the tar writer reads each file into one reused buffer, the
codec compresses, and the store's ingest writer hashes and writes; nothing holds a file in memory. Then the config
(the Kitfile with every layer's digest and diffId) and the manifest are stored, and the tags are set. A failure at
any point leaves the store as it was, apart from layer blobs nothing references yet (``gc`` removes them).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pymodelkit._version import __version__
from pymodelkit.errors import InvalidReferenceError, NotFoundError, PackError
from pymodelkit.kitfile import Kitfile, kitfile_to_json_bytes, read_kitfile, validate_kitfile
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import (
    ANNOTATION_CREATED,
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    ANNOTATION_LAYER_SUBTYPE,
    ANNOTATION_TOOL_VERSION,
    MEDIA_TYPE_MODELKIT_CONFIG,
    LayerMediaType,
)
from pymodelkit.oci.reference import DEFAULT_REGISTRY, UNTAGGED_REPOSITORY, Reference, parse_reference
from pymodelkit.pack.compression import COMPRESSION_CHOICES, media_type_compression, open_compressing_writer
from pymodelkit.pack.ignore import IgnoreMatcher
from pymodelkit.pack.parents import parent_layer_paths, resolve_parent_chain
from pymodelkit.pack.plan import PlannedLayer, plan_layers
from pymodelkit.pack.tarstream import write_tar
from pymodelkit.pack.walk import walk_layer
from pymodelkit.progress import ProgressCallback, ProgressEvent
from pymodelkit.settings import created_time
from pymodelkit.store import LocalStore

__all__ = ["KITFILE_NAMES", "LAYER_FORMATS", "PackResult", "find_kitfile", "pack"]

logger = logging.getLogger(__name__)

KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
LAYER_FORMATS = ("tar", "raw")
_READ_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class PackResult:
    """What ``pack`` stored: the manifest (and its digest and bytes), the config bytes, the filled-in Kitfile, and
    the reference it was tagged as (``None`` for an untagged pack, stored in ``localhost/_``)."""

    digest: Digest
    manifest: Manifest
    manifest_bytes: bytes
    config_bytes: bytes
    kitfile: Kitfile
    reference: Reference | None
    tags: tuple[str, ...]


def find_kitfile(context: Path) -> Path:
    """The Kitfile kit would use in ``context``: the first existing of ``Kitfile``, ``kitfile``, ``.kitfile``."""
    for name in KITFILE_NAMES:
        candidate = context / name
        if candidate.is_file():
            return candidate
    raise NotFoundError(f"no Kitfile found in {context} (looked for Kitfile, kitfile, .kitfile)", path=str(context))


def pack(
    context: str | os.PathLike[str],
    *,
    kitfile: str | os.PathLike[str] | Kitfile | None = None,
    tag: str | None = None,
    compression: str = "none",
    layer_format: str = "tar",
    store: LocalStore | None = None,
    on_progress: ProgressCallback | None = None,
    annotations: Mapping[str, str] | None = None,
) -> PackResult:
    """Pack the directory ``context`` into a ModelKit in the local store.

    Args:
        context: the directory the Kitfile's paths are relative to.
        kitfile: a Kitfile path (relative paths are relative to ``context``, as in kit), a parsed :class:`Kitfile`,
            or ``None`` for the first of ``Kitfile``, ``kitfile``, ``.kitfile`` in ``context``.
        tag: ``[registry/]repository[:tag][,tag2...]``; no tag means ``latest``; ``None`` stores the ModelKit
            untagged in ``localhost/_``.
        compression: ``none`` (byte-identical to kit), ``gzip``, ``gzip-fastest`` or ``zstd``.
        layer_format: ``tar``, or ``raw`` (each layer path must then be one regular file).
        store: the local store; default: the one under ``KITOPS_HOME``.
        on_progress: called with a :class:`ProgressEvent` per chunk of each layer (key = the layer's path).
        annotations: extra manifest annotations (e.g. provenance); they must not set the created or tool-version
            keys pack writes itself.

    Returns:
        A :class:`PackResult`.

    Raises:
        KitfileError: the Kitfile (or the merged parent chain) does not parse or validate, or the parent chain is too
        long or has a cycle. PackError: a path is missing or not packable. InvalidReferenceError: ``tag`` does not
        parse. NotFoundError: no Kitfile, or a parent ModelKit is not in the local store.
    """
    if compression not in COMPRESSION_CHOICES:
        raise PackError(f"invalid compression {compression!r}: must be one of {', '.join(COMPRESSION_CHOICES)}")
    if layer_format not in LAYER_FORMATS:
        raise PackError(f"invalid layer format {layer_format!r}: must be tar or raw")
    reserved = sorted({ANNOTATION_TOOL_VERSION, ANNOTATION_CREATED} & set(annotations or {}))
    if reserved:
        raise PackError(f"annotation {reserved[0]} is set by pack and cannot be given")
    context_dir = Path(context).absolute()
    if not context_dir.is_dir():
        raise PackError(f"context directory {context} does not exist or is not a directory", path=str(context))
    store = store if store is not None else LocalStore()
    reference, extra_tags = _parse_tag(tag)
    spec = _load_kitfile(context_dir, kitfile)
    for warning in validate_kitfile(spec):
        logger.warning("%s", warning)

    start = reference.display() if reference is not None else ""
    parents = resolve_parent_chain(spec, start, lambda ref: _fetch_local(store, ref))
    plan = plan_layers(spec, parent_layer_paths(parents))
    matcher = IgnoreMatcher.load(context_dir, plan.exclusions)

    filled = spec.copy()
    filled_elements = [element for _, element in filled.elements()]
    element_index = {id(element): i for i, (_, element) in enumerate(spec.elements())}
    layers: list[Descriptor] = []
    for layer in plan.layers:
        descriptor, diff_id = _build_layer(store, context_dir, layer, matcher, compression, layer_format, on_progress)
        target = filled_elements[element_index[id(layer.element)]]
        target.digest = str(descriptor.digest)
        target.diff_id = str(diff_id)
        layers.append(descriptor)

    config_bytes = kitfile_to_json_bytes(filled)
    config_digest = store.write_blob(config_bytes, mode=0o444)
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, config_digest, len(config_bytes)),
        layers=tuple(layers) if layers else None,
        annotations={
            **(annotations or {}),
            ANNOTATION_TOOL_VERSION: __version__,
            ANNOTATION_CREATED: _format_created(created_time()),
        },
    )
    manifest_bytes = manifest.to_json_bytes()
    tags: tuple[str, ...] = ()
    if reference is None:
        repo_key = f"{DEFAULT_REGISTRY}/{UNTAGGED_REPOSITORY}"
    else:
        repo_key, tags = reference.repo_key, (reference.tag, *extra_tags)
    descriptor = store.add_manifest(repo_key, manifest_bytes, tags=tags)
    logger.info("Model saved: %s", descriptor.digest)
    return PackResult(
        digest=descriptor.digest,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        config_bytes=config_bytes,
        kitfile=filled,
        reference=reference,
        tags=tuple(tags),
    )


def _parse_tag(tag: str | None) -> tuple[Reference | None, list[str]]:
    if tag is None:
        return None, []
    reference, extra = parse_reference(tag)
    if reference.digest is not None:
        raise InvalidReferenceError(f"cannot tag a pack with a digest ({tag}): give a tag", reference=tag)
    if not reference.tag:
        logger.info("No tag or digest specified with --tag flag. Using 'latest' as default")
        reference = reference.with_default_tag()
    return reference, extra


def _load_kitfile(context: Path, kitfile: str | os.PathLike[str] | Kitfile | None) -> Kitfile:
    if isinstance(kitfile, Kitfile):
        return kitfile
    path = find_kitfile(context) if kitfile is None else context / Path(kitfile)
    if not path.is_file():
        raise NotFoundError(f"Kitfile {kitfile} not found", path=str(path))
    return read_kitfile(path)


def _fetch_local(store: LocalStore, ref: Reference) -> tuple[Manifest, bytes]:
    _, manifest = store.read_manifest(ref)
    return manifest, store.read_blob(manifest.config.digest)


def _format_created(when: _dt.datetime) -> str:
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _layer_annotations(layer: PlannedLayer) -> dict[str, str]:
    annotations = {ANNOTATION_FILEPATH: layer.clean_path}
    if layer.kind == "prompt":
        annotations[ANNOTATION_LAYER_SUBTYPE] = "prompt"
    return annotations


def _build_layer(
    store: LocalStore,
    context: Path,
    layer: PlannedLayer,
    matcher: IgnoreMatcher,
    compression: str,
    layer_format: str,
    on_progress: ProgressCallback | None,
) -> tuple[Descriptor, Digest]:
    if layer.kind == "mcpserver":
        return _build_raw_layer(store, context, layer, "none", on_progress, check_mcpb=True)
    if layer_format == "raw":
        return _build_raw_layer(store, context, layer, compression, on_progress)

    diff_hasher = hashlib.sha256() if compression != "none" else None
    done = 0
    with store.ingest() as writer:
        compressor = open_compressing_writer(compression, writer.write)

        def sink(chunk: memoryview) -> None:
            nonlocal done
            if diff_hasher is not None:
                diff_hasher.update(chunk)
            compressor.write(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(ProgressEvent(layer.path, done))

        entries = walk_layer(context, layer.path, matcher, on_warning=_warn, layer_type=layer.kind)
        write_tar(entries, sink)
        compressor.close()
        digest, size = writer.commit(mode=0o600)
    if on_progress is not None:
        on_progress(ProgressEvent(layer.path, done, done, finished=True))
    diff_id = Digest("sha256", diff_hasher.hexdigest()) if diff_hasher is not None else digest
    media_type = LayerMediaType(layer.media_base, "tar", media_type_compression(compression))
    logger.info("Saved %s layer: %s", layer.kind, digest)
    return Descriptor(str(media_type), digest, size, _layer_annotations(layer)), diff_id


def _build_raw_layer(
    store: LocalStore,
    context: Path,
    layer: PlannedLayer,
    compression: str,
    on_progress: ProgressCallback | None,
    *,
    check_mcpb: bool = False,
) -> tuple[Descriptor, Digest]:
    path = context / layer.clean_path
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PackError(f"path {layer.path} does not exist", path=layer.path) from None
    if not stat.S_ISREG(info.st_mode):
        raise PackError(f"file {layer.path} is not a regular file", path=layer.path)
    if check_mcpb:
        _check_mcpb(path, layer.path)
    diff_hasher = hashlib.sha256() if compression != "none" else None
    buffer = bytearray(_READ_BYTES)
    view = memoryview(buffer)
    done = 0
    with store.ingest() as writer, open(path, "rb", buffering=0) as source:
        compressor = open_compressing_writer(compression, writer.write)
        while count := source.readinto(buffer):
            chunk = view[:count]
            if diff_hasher is not None:
                diff_hasher.update(chunk)
            compressor.write(chunk)
            done += count
            if on_progress is not None:
                on_progress(ProgressEvent(layer.path, done, info.st_size))
        compressor.close()
        if done != info.st_size:
            raise PackError(f"file {layer.path} changed size while it was being packed", path=layer.path)
        digest, size = writer.commit(mode=0o600)
    if on_progress is not None:
        on_progress(ProgressEvent(layer.path, done, done, finished=True))
    diff_id = Digest("sha256", diff_hasher.hexdigest()) if diff_hasher is not None else digest
    annotations = _layer_annotations(layer)
    annotations[ANNOTATION_FILE_METADATA] = _raw_metadata(path, info)
    if check_mcpb:
        media_type = "application/vnd.kitops.modelkit.mcpb.v1.raw"
        logger.info("Saved mcpb layer: %s", digest)
    else:
        media_type = str(LayerMediaType(layer.media_base, "raw", media_type_compression(compression)))
        logger.info("Saved %s layer: %s", layer.kind, digest)
    return Descriptor(media_type, digest, size, annotations), diff_id


def _check_mcpb(path: Path, display: str) -> None:
    try:
        with zipfile.ZipFile(path) as bundle:
            names = bundle.namelist()
    except (zipfile.BadZipFile, OSError):
        raise PackError(f"invalid mcpb bundle {display}: not a ZIP archive", path=display) from None
    if "manifest.json" not in names:
        raise PackError(f"invalid mcpb bundle {display}: no manifest.json at its root", path=display)


def _raw_metadata(path: Path, info: os.stat_result) -> str:
    """kit's ``org.cncf.model.file.metadata+json``: name, mode, uid, gid, size, mtime (local, RFC 3339 nano)."""
    mtime = _dt.datetime.fromtimestamp(info.st_mtime_ns // 1_000_000_000).astimezone()
    nanos = info.st_mtime_ns % 1_000_000_000
    text = mtime.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += ("." + f"{nanos:09d}").rstrip("0")
    offset = mtime.strftime("%z")
    text += "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    metadata = Struct(
        name=path.name,
        mode=stat.S_IMODE(info.st_mode),
        uid=0,
        gid=0,
        size=info.st_size,
        mtime=text,
        typeflag=0,
    )
    return go_json_bytes(metadata).decode("utf-8")


def _warn(message: str) -> None:
    logger.warning("%s", message)

