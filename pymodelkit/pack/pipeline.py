"""``pack``: a directory and its Kitfile in, a ModelKit in the local store out (or, with ``no_store``, only its
digests: spec ``format.md`` §5.4).

Each layer's inputs are gathered first, in manifest order on the calling thread (the walks, kit's checks and
warnings, the digest-cache keys); a layer whose key the digest cache knows and whose blob is still in the store is
reused without reading a byte (:mod:`pymodelkit.pack.digestcache`). The others are built by a small pool of
threads, :data:`LAYER_WORKERS` at a time, each streamed once through hashing, compression and the store's ingest
(:mod:`pymodelkit.pack.layers`). Then the config (the Kitfile with every layer's digest and diffId, in manifest
order whatever order the layers finished in) and the manifest are stored, and the tags are set. A failure at any
point leaves the store as it was, apart from layer blobs nothing references yet (``gc`` removes them); the error
raised is that of the first failing layer in manifest order.

With ``no_store`` the same steps run with no destination: each layer is read once and hashed (no blob, no ingest
file, no page-cache churn beyond the reads), the config and manifest are assembled to the same bytes and digests a
pack would store, and nothing is written but the digest cache. A cache hit then needs no blob in the store: the
check that the blob is there protects a stored manifest from naming a missing blob, and nothing is stored; the cached
digest itself stands for the files' bytes whether or not the blob exists (the cache keys on ctime and inode, so it
never answers for changed bytes).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pymodelkit._version import __version__
from pymodelkit.errors import InvalidReferenceError, NotFoundError, PackError
from pymodelkit.kitfile import Kitfile, kitfile_to_json_bytes, read_kitfile, validate_kitfile
from pymodelkit.modelpack.convert import check_modelpack_options, modelpack_manifest
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import (
    ANNOTATION_CREATED,
    ANNOTATION_KITFILE,
    ANNOTATION_TOOL_VERSION,
    MEDIA_TYPE_MODELKIT_CONFIG,
)
from pymodelkit.oci.reference import DEFAULT_REGISTRY, UNTAGGED_REPOSITORY, Reference, parse_reference
from pymodelkit.pack.compression import COMPRESSION_CHOICES
from pymodelkit.pack.digestcache import DigestCache
from pymodelkit.pack.ignore import IgnoreMatcher
from pymodelkit.pack.layers import (
    BlobTarget,
    BuiltLayer,
    LayerJob,
    StoreTarget,
    build_layer,
    cached_entry,
    job_media_type,
    layer_descriptor,
    prepare_layer,
)
from pymodelkit.pack.parents import parent_layer_paths, resolve_parent_chain
from pymodelkit.pack.plan import LayerPlan, plan_layers
from pymodelkit.progress import ProgressCallback, ProgressEvent
from pymodelkit.settings import created_time
from pymodelkit.store import LocalStore
from pymodelkit.store.repoindex import check_tag

__all__ = ["KITFILE_NAMES", "LAYER_FORMATS", "LAYER_WORKERS", "PACK_FORMATS", "PackResult", "find_kitfile", "pack"]

logger = logging.getLogger(__name__)

KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
LAYER_FORMATS = ("tar", "raw")
PACK_FORMATS = ("kitops", "modelpack")
LAYER_WORKERS = 2  # layers built at once; each layer's stages already run on threads of their own


@dataclass(frozen=True, slots=True)
class PackResult:
    """What ``pack`` stored: the manifest (and its digest and bytes), the config bytes, the filled-in Kitfile, and
    the reference it was tagged as (``None`` for an untagged pack, stored in ``localhost/_``). ``reused``: the layer
    digests taken from the digest cache, not re-read. ``stored``: False for ``pack(no_store=True)``, which stored
    nothing (``reference`` and ``tags`` are then those a pack would have set)."""

    digest: Digest
    manifest: Manifest
    manifest_bytes: bytes
    config_bytes: bytes
    kitfile: Kitfile
    reference: Reference | None
    tags: tuple[str, ...]
    reused: tuple[Digest, ...] = ()
    stored: bool = True


@dataclass(frozen=True, slots=True)
class PackInputs:
    """A pack's inputs, checked and gathered before any layer is built (shared with the streaming push)."""

    context: Path
    reference: Reference | None
    extra_tags: tuple[str, ...]
    kitfile: Kitfile
    plan: LayerPlan
    jobs: tuple[LayerJob, ...]
    format: str = "kitops"


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
    link: bool = False,
    digest_cache: bool = True,
    format: str = "kitops",
    no_store: bool = False,
) -> PackResult:
    """Pack the directory ``context`` into a ModelKit in the local store (or, ``no_store``, only compute its digests).

    Args:
        context: the directory the Kitfile's paths are relative to.
        kitfile: a Kitfile path (relative paths are relative to ``context``, as in kit), a parsed :class:`Kitfile`,
            or ``None`` for the first of ``Kitfile``, ``kitfile``, ``.kitfile`` in ``context``.
        tag: ``[registry/]repository[:tag][,tag2...]``; no tag means ``latest``; ``None`` stores the ModelKit
            untagged in ``localhost/_``.
        compression: ``none`` (byte-identical to kit), ``gzip``, ``gzip-fastest`` or ``zstd``.
        layer_format: ``tar``, or ``raw`` (each layer path must then be one regular file).
        store: the local store; default: the one under ``KITOPS_HOME``.
        on_progress: called with a :class:`ProgressEvent` per chunk of each layer (key = the layer's path); layers
            are built on worker threads, so it is called from them.
        annotations: extra manifest annotations (e.g. provenance); they must not set the created or tool-version
            keys pack writes itself.
        link: uncompressed raw layers (``layer_format="raw"``, mcpb) are hard-linked into the store, not copied,
            when the file is on the store's filesystem: the blob then shares the file's inode and keeps its mode
            (pack never changes the file); editing the file in place afterwards corrupts the blob (``fsck`` tells).
            Ignored with ``no_store`` (nothing is stored; the digests are the same either way).
        digest_cache: reuse layers whose files have not changed since a previous pack into this store
            (:mod:`pymodelkit.pack.digestcache`), and record the layers built now.
        format: ``kitops`` (kit's default), or ``modelpack``: a CNCF ModelPack artifact as ``kit pack
            --use-model-pack`` writes it (same layer bytes; ModelPack media types and config; the Kitfile in the
            ``ml.kitops.modelkit.kitfile`` annotation; :mod:`pymodelkit.modelpack`).
        no_store: store nothing: read and hash each layer once, and return the manifest, config and digests a pack
            would store, byte for byte (``stored=False``). No blob, manifest, index or tag is written and
            ``storage/`` is not created; only the digest cache (``pymodelkit-cache/``) is read and updated (a hit is
            used whether or not the blob is in the store). Without ``SOURCE_DATE_EPOCH`` the manifest records the
            current time, so its digest is that of a pack made now; layer and config digests do not depend on it.
            Parents named by ``model.path`` are still read from the store.

    Returns:
        A :class:`PackResult`.

    Raises:
        KitfileError: the Kitfile (or the merged parent chain) does not parse or validate, or the parent chain is too
        long or has a cycle. PackError: a path is missing or not packable. InvalidReferenceError: ``tag`` does not
        parse. NotFoundError: no Kitfile, or a parent ModelKit is not in the local store.
    """
    store = store if store is not None else LocalStore()
    inputs = gather_inputs(context, kitfile=kitfile, tag=tag, compression=compression, layer_format=layer_format,
                           store=store, annotations=annotations, format=format)
    cache = DigestCache.for_home(store.home) if digest_cache else None

    def present(digest: Digest, size: int) -> bool:
        return no_store or store.has_blob(digest, size)

    def targets_for(job: LayerJob) -> Callable[[], list[BlobTarget]]:
        # the layer's size tells the blob writer whether to write around the page cache (store/directio.py)
        return lambda: [] if no_store else [StoreTarget(store, size_hint=job.size)]

    def produce(job: LayerJob) -> BuiltLayer:
        return build_layer(job, targets_for(job), on_progress, link_store=store if link and not no_store else None)

    def build(job: LayerJob) -> BuiltLayer:
        return cached_or_built(cache, job, present, produce, on_progress, stored=not no_store)

    built = build_layers(inputs.jobs, build)
    filled, config_bytes, manifest, manifest_bytes = assemble(inputs, built, annotations)
    tags: tuple[str, ...] = ()
    reference = inputs.reference
    if reference is None:
        repo_key = f"{DEFAULT_REGISTRY}/{UNTAGGED_REPOSITORY}"
    else:
        repo_key, tags = reference.repo_key, (reference.tag, *inputs.extra_tags)
    if no_store:
        digest = Digest.from_bytes(manifest_bytes)
        logger.info("Model digest: %s (nothing stored)", digest)
    else:
        config_digest = store.write_blob(config_bytes, mode=0o444)
        assert config_digest == manifest.config.digest
        digest = store.add_manifest(repo_key, manifest_bytes, tags=tags).digest
        logger.info("Model saved: %s", digest)
    if cache is not None:
        cache.save()
    return PackResult(
        digest=digest,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        config_bytes=config_bytes,
        kitfile=filled,
        reference=reference,
        tags=tags,
        reused=tuple(b.descriptor.digest for b in built if b.reused),
        stored=not no_store,
    )


def gather_inputs(
    context: str | os.PathLike[str],
    *,
    kitfile: str | os.PathLike[str] | Kitfile | None,
    tag: str | None,
    compression: str,
    layer_format: str,
    store: LocalStore,
    annotations: Mapping[str, str] | None,
    format: str = "kitops",
) -> PackInputs:
    """Check the options, read the Kitfile and its parents, plan the layers and gather each layer's inputs (the
    walks run here, in manifest order, with kit's warnings). Raises as :func:`pack`."""
    if compression not in COMPRESSION_CHOICES:
        raise PackError(f"invalid compression {compression!r}: must be one of {', '.join(COMPRESSION_CHOICES)}")
    if layer_format not in LAYER_FORMATS:
        raise PackError(f"invalid layer format {layer_format!r}: must be tar or raw")
    if format not in PACK_FORMATS:
        raise PackError(f"invalid format {format!r}: must be kitops or modelpack")
    reserved = sorted({ANNOTATION_TOOL_VERSION, ANNOTATION_CREATED, ANNOTATION_KITFILE} & set(annotations or {}))
    if reserved:
        raise PackError(f"annotation {reserved[0]} is set by pack and cannot be given")
    context_dir = Path(context).absolute()
    if not context_dir.is_dir():
        raise PackError(f"context directory {context} does not exist or is not a directory", path=str(context))
    reference, extra_tags = _parse_tag(tag)
    spec = _load_kitfile(context_dir, kitfile)
    for warning in validate_kitfile(spec):
        logger.warning("%s", warning)
    if format == "modelpack":  # before any layer is built (kit fails only after writing the earlier ones)
        check_modelpack_options(spec, layer_format, compression)
    start = reference.display() if reference is not None else ""
    parents = resolve_parent_chain(spec, start, lambda ref: _fetch_local(store, ref))
    plan = plan_layers(spec, parent_layer_paths(parents))
    matcher = IgnoreMatcher.load(context_dir, plan.exclusions)
    jobs = tuple(prepare_layer(context_dir, layer, matcher, compression, layer_format, _warn) for layer in plan.layers)
    return PackInputs(context_dir, reference, tuple(extra_tags), spec, plan, jobs, format)


def lookup_cached(
    cache: DigestCache,
    job: LayerJob,
    present: Callable[[Digest, int], bool],
    on_progress: ProgressCallback | None,
    *,
    stored: bool = True,
) -> BuiltLayer | None:
    """The layer from the digest cache, if recorded for these inputs and ``present(digest, size)`` confirms the blob
    is where it is needed; else None. ``stored``: the pack stores its layers (only the INFO log line differs)."""
    hit = cache.lookup(job.cache_key)
    if hit is None or hit.media_type != job_media_type(job) or not present(hit.digest, hit.size):
        return None
    if on_progress is not None:
        on_progress(ProgressEvent(job.layer.path, job.size, job.size, finished=True))
    kind = "mcpb" if job.layer.kind == "mcpserver" else job.layer.kind
    if stored:
        logger.info("Already saved %s layer: %s (unchanged since the last pack)", kind, hit.digest)
    else:
        logger.info("%s layer: %s (unchanged since the last pack, from the digest cache)", kind.capitalize(),
                    hit.digest)
    return BuiltLayer(layer_descriptor(job, hit.digest, hit.size, hit.media_type), hit.diff_id, reused=True)


def cached_or_built(
    cache: DigestCache | None,
    job: LayerJob,
    present: Callable[[Digest, int], bool],
    produce: Callable[[LayerJob], BuiltLayer],
    on_progress: ProgressCallback | None,
    *,
    stored: bool = True,
) -> BuiltLayer:
    """The layer from the digest cache (``reused``; as :func:`lookup_cached`), else ``produce(job)``, then recorded
    in the cache. With no cache, just ``produce(job)``."""
    if cache is None:
        return produce(job)
    hit = lookup_cached(cache, job, present, on_progress, stored=stored)
    if hit is not None:
        return hit
    built = produce(job)
    cache.record(job.cache_key, cached_entry(job, built), job.newest_ns, job.stat_ns)
    return built


def build_layers(
    jobs: Sequence[LayerJob], build: Callable[[LayerJob], BuiltLayer], workers: int = LAYER_WORKERS
) -> list[BuiltLayer]:
    """``build`` every job, ``workers`` at a time; the results in job order. On failure the first failing job's
    error (in job order) is raised once every started job has ended; jobs not started yet are not started."""
    if workers <= 1 or len(jobs) <= 1:
        return [build(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="pack-layer") as pool:
        futures: list[Future[BuiltLayer]] = [pool.submit(build, job) for job in jobs]
        try:
            for future in futures:
                if future.exception() is not None:
                    break
        finally:
            for future in futures:
                future.cancel()
    return [future.result() for future in futures]


def assemble(
    inputs: PackInputs, built: Sequence[BuiltLayer], annotations: Mapping[str, str] | None
) -> tuple[Kitfile, bytes, Manifest, bytes]:
    """The filled-in Kitfile, the config bytes, the manifest and its bytes for the built layers (in plan order), in
    the format ``inputs`` asks for."""
    filled = inputs.kitfile.copy()
    filled_elements = [element for _, element in filled.elements()]
    element_index = {id(element): i for i, (_, element) in enumerate(inputs.kitfile.elements())}
    layers: list[Descriptor] = []
    for layer, result in zip(inputs.plan.layers, built, strict=True):
        target = filled_elements[element_index[id(layer.element)]]
        target.digest = str(result.descriptor.digest)
        target.diff_id = str(result.diff_id)
        layers.append(result.descriptor)
    created = created_time()
    written = {
        **(annotations or {}),
        ANNOTATION_TOOL_VERSION: __version__,
        ANNOTATION_CREATED: _format_created(created),
    }
    if inputs.format == "modelpack":
        pairs = [(result.descriptor, result.diff_id) for result in built]
        manifest_bytes, config_bytes = modelpack_manifest(filled, pairs, annotations=written, created=created)
        return filled, config_bytes, Manifest.parse(manifest_bytes), manifest_bytes
    config_bytes = kitfile_to_json_bytes(filled)
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, Digest.from_bytes(config_bytes), len(config_bytes)),
        layers=tuple(layers) if layers else None,
        annotations=written,
    )
    return filled, config_bytes, manifest, manifest.to_json_bytes()


def _parse_tag(tag: str | None) -> tuple[Reference | None, list[str]]:
    if tag is None:
        return None, []
    reference, extra = parse_reference(tag)
    for extra_tag in extra:  # before any layer is built (the store would refuse it only once they are)
        check_tag(extra_tag)
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


def _warn(message: str) -> None:
    logger.warning("%s", message)

