"""What a copy moves and how: endpoints (a registry repository, an OCI layout or archive, the local store), the
manifests to carry, and the engine that moves them blob by blob (spec ``spec/transport.md`` §4-§5).

A :class:`Source` serves manifests by name and blobs as streams from any offset; a :class:`Sink` says which blobs it
has, takes a blob as a stream, and stores manifests. :func:`collect_signatures` finds what signs a manifest: the
cosign ``sha256-<hex>.sig`` tag and the referrers (from the referrers API, else the ``sha256-<hex>`` fallback
index; spec ``signing.md`` §4, §8.3). :func:`copy_items` plans (which blobs the sink lacks), moves the missing blobs
on a thread pool, then stores the manifests in order — nothing names a manifest before all its blobs are there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal, Protocol

from pymodelkit.errors import ModelKitError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference
from pymodelkit.progress import TOTAL_PROGRESS_KEY, BlobProgress, ProgressCallback

__all__ = [
    "TOTAL_PROGRESS_KEY",
    "BlobSource",
    "CopyResult",
    "ItemKind",
    "ManifestItem",
    "Sink",
    "Source",
    "SourceManifest",
    "collect_signatures",
    "copy_items",
    "manifest_field",
    "manifest_item",
    "referrers_tag",
    "signature_tag",
]

logger = logging.getLogger(__name__)

ItemKind = Literal["modelkit", "parent", "signature", "referrer", "referrers-index"]
BlobAction = Literal["copied", "mounted"]
_MANIFEST_TYPES = frozenset({MEDIA_TYPE_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"})
_INDEX_TYPES = frozenset({MEDIA_TYPE_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})


def signature_tag(digest: Digest) -> str:
    """cosign's legacy signature tag of a manifest: ``sha256-<hex>.sig``."""
    return f"{digest.algorithm}-{digest.hex}.sig"


def referrers_tag(digest: Digest) -> str:
    """The referrers fallback tag of a manifest: ``sha256-<hex>``."""
    return f"{digest.algorithm}-{digest.hex}"


@dataclass(frozen=True, slots=True)
class SourceManifest:
    """A manifest as a source holds it: the exact bytes, the media type, and their digest."""

    data: bytes
    media_type: str
    digest: Digest


class BlobSource(Protocol):
    """Serves blobs as streams."""

    description: str

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        """The blob's bytes from ``offset`` (``length`` of them, default: to the end). Close the iterator when done
        early (generators release their file or connection then)."""
        ...


class Source(BlobSource, Protocol):
    """A repository-like place to copy from: manifests by tag (or layout name) or digest, blobs, referrers."""

    def fetch_manifest(self, name: str) -> SourceManifest | None:
        """The manifest a tag or digest names in this source, or ``None`` when there is none."""
        ...

    def fetch_referrers(self, digest: Digest) -> list[Descriptor] | None:
        """The referrers of ``digest`` from a referrers API, or ``None`` when the source has no such API."""
        ...


class Sink(Protocol):
    """A place to copy to."""

    description: str
    max_concurrency: int

    def accepts(self, item: ManifestItem) -> bool:
        """Tell whether this sink keeps manifests of this kind (their blobs are copied only if so)."""
        ...

    def has_blob(self, descriptor: Descriptor) -> bool:
        """Tell whether the blob is there already (of the descriptor's size)."""
        ...

    def write_blob(self, descriptor: Descriptor, source: BlobSource, on_bytes: Callable[[int], None]) -> BlobAction:
        """Copy one blob from ``source``; ``on_bytes(done)`` reports progress. Returns ``copied`` or ``mounted``."""
        ...

    def put_manifest(self, item: ManifestItem) -> bool:
        """Store a manifest whose blobs are all there; ``False`` when this sink chose not to keep it."""
        ...


@dataclass(frozen=True, slots=True)
class ManifestItem:
    """One manifest to copy: its bytes and media type, the tag it gets at the destination (``None``: by digest
    only), the full reference it stands for (for layouts and the store), its blobs, and what it is."""

    data: bytes
    media_type: str
    digest: Digest
    tag: str | None
    reference: Reference | None
    blobs: tuple[Descriptor, ...]
    kind: ItemKind
    subject: Digest | None = None  # the manifest a signature or referrers index is about

    @property
    def descriptor(self) -> Descriptor:
        """The manifest's descriptor (media type, digest, size; an image manifest's artifactType)."""
        return Descriptor(self.media_type, self.digest, len(self.data), None, manifest_field(self.data, "artifactType"))


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What a copy did: the root manifest's digest and where it went, the blobs copied, mounted and skipped
    (the destination had them), the manifests stored, and ``bytes_copied`` (the copied blobs' size)."""

    digest: Digest
    destination: str
    copied: tuple[Digest, ...]
    mounted: tuple[Digest, ...]
    skipped: tuple[Digest, ...]
    manifests: tuple[Digest, ...]
    bytes_copied: int
    signatures: tuple[Digest, ...] = ()
    left_out: tuple[Digest, ...] = ()  # manifests the destination does not keep (signatures in the local store)


def manifest_item(
    fetched: SourceManifest,
    *,
    tag: str | None,
    reference: Reference | None,
    kind: ItemKind,
    subject: Digest | None = None,
) -> ManifestItem:
    """A :class:`ManifestItem` for fetched manifest bytes: an image manifest's blobs are its config and layers, an
    index has none of its own (its manifests are items of their own).

    Raises:
        ModelKitError: the bytes are neither an image manifest nor an index.
    """
    media_type = _media_type(fetched)
    blobs: tuple[Descriptor, ...] = ()
    if media_type in _MANIFEST_TYPES:
        manifest = Manifest.parse(fetched.data)
        blobs = tuple({d.digest: d for d in [manifest.config, *(manifest.layers or ())]}.values())
    elif media_type not in _INDEX_TYPES:
        raise ModelKitError(f"manifest {fetched.digest} has media type {media_type!r}: not an OCI manifest or index")
    return ManifestItem(fetched.data, media_type, fetched.digest, tag, reference, blobs, kind, subject)


def collect_signatures(source: Source, subject: Digest, reference: Reference | None) -> list[ManifestItem]:
    """What signs ``subject`` in ``source``: the ``.sig`` tag's manifest, every referrer manifest, and the
    referrers fallback index (as the source has it, or built from the referrers API's answer), in the order a
    destination must store them. ``reference`` is the subject's own reference (its repository names them).

    Referrers that are indexes themselves are left out (logged).
    """
    items: list[ManifestItem] = []

    def named(tag: str) -> Reference | None:
        return reference.with_tag(tag) if reference is not None else None

    sig = source.fetch_manifest(signature_tag(subject))
    if sig is not None:
        items.append(manifest_item(sig, tag=signature_tag(subject), reference=named(signature_tag(subject)),
                                   kind="signature", subject=subject))
    listed = source.fetch_referrers(subject)
    index: SourceManifest | None = None
    if listed is None:
        index = source.fetch_manifest(referrers_tag(subject))
        listed = _index_manifests(index) if index is not None else []
    for descriptor in listed:
        if descriptor.media_type in _INDEX_TYPES:
            logger.warning("referrer %s of %s is an index: not copied", descriptor.digest, subject)
            continue
        found = source.fetch_manifest(str(descriptor.digest))
        if found is None:
            logger.warning("referrer %s of %s is listed but missing in %s", descriptor.digest, subject,
                           source.description)
            continue
        items.append(manifest_item(found, tag=None, reference=None, kind="referrer", subject=subject))
    if index is None and listed:
        data = go_json_bytes(Struct(schemaVersion=2, mediaType=MEDIA_TYPE_INDEX,
                                    manifests=[d.to_json() for d in listed]))
        index = SourceManifest(data, MEDIA_TYPE_INDEX, Digest.from_bytes(data))
    if index is not None:
        items.append(manifest_item(index, tag=referrers_tag(subject), reference=named(referrers_tag(subject)),
                                   kind="referrers-index", subject=subject))
    return items


def copy_items(
    source: BlobSource,
    sink: Sink,
    items: Sequence[ManifestItem],
    *,
    concurrency: int = 5,
    on_progress: ProgressCallback | None = None,
) -> CopyResult:
    """Copy ``items`` (the first is the root) from ``source`` to ``sink``: every blob the sink lacks, then each
    manifest, in the order given.

    Raises:
        whatever the source or sink raise: RegistryError, DigestMismatchError, NotFoundError, UnsafeArchiveError.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    kept = [item for item in items if sink.accepts(item)]
    blobs = list({d.digest: d for item in kept for d in item.blobs}.values())
    workers = max(1, min(concurrency, sink.max_concurrency, len(blobs) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        present = list(pool.map(sink.has_blob, blobs))
    missing = [blob for blob, have in zip(blobs, present, strict=True) if not have]
    progress = BlobProgress(on_progress, [(d.digest.short(), d.size) for d in missing])

    def run(blob: Descriptor) -> BlobAction:
        key = blob.digest.short()
        action = sink.write_blob(blob, source, lambda done: progress.update(key, done))
        progress.update(key, blob.size, finished=True)
        return action

    actions = _run_all(missing, run, workers)
    stored: list[Digest] = []
    for item in kept:
        if sink.put_manifest(item):
            stored.append(item.digest)
    root = items[0]
    copied = tuple(d.digest for d, a in zip(missing, actions, strict=True) if a == "copied")
    return CopyResult(
        digest=root.digest,
        destination=sink.description,
        copied=copied,
        mounted=tuple(d.digest for d, a in zip(missing, actions, strict=True) if a == "mounted"),
        skipped=tuple(blob.digest for blob, have in zip(blobs, present, strict=True) if have),
        manifests=tuple(stored),
        bytes_copied=sum(d.size for d, a in zip(missing, actions, strict=True) if a == "copied"),
        signatures=tuple(i.digest for i in kept if i.kind in ("signature", "referrer") and i.digest in stored),
        left_out=tuple(i.digest for i in items if not sink.accepts(i)),
    )


def manifest_field(data: bytes, name: str) -> str | None:
    """The non-empty string ``name`` of a manifest or index document (``mediaType``, ``artifactType``); ``None`` when
    it is absent, not a string, or the bytes are not a JSON object."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    value = doc.get(name) if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value else None


# ----- internals -------------------------------------------------------------------------------------------------


def _media_type(fetched: SourceManifest) -> str:
    """The manifest's own ``mediaType`` when it has one, else the type it was served as."""
    try:
        doc = json.loads(fetched.data)
    except (ValueError, UnicodeDecodeError):
        raise ModelKitError(f"manifest {fetched.digest} is not JSON") from None
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    return fetched.media_type or MEDIA_TYPE_MANIFEST


def _index_manifests(index: SourceManifest) -> list[Descriptor]:
    if len(index.data) > MAX_MANIFEST_BYTES:
        raise ModelKitError(f"referrers index {index.digest} is larger than 4 MiB")
    try:
        doc = json.loads(index.data)
    except (ValueError, UnicodeDecodeError):
        raise ModelKitError(f"referrers index {index.digest} is not JSON") from None
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ModelKitError(f"referrers index {index.digest} is not an image index")
    return [Descriptor.from_json(entry) for entry in entries]


def _run_all(items: Sequence[Descriptor], run: Callable[[Descriptor], BlobAction], workers: int) -> list[BlobAction]:
    """Run ``run`` over ``items`` on ``workers`` threads; the first failure cancels what has not started, and is
    raised once the running ones end."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pymodelkit-copy") as pool:
        futures: list[Future[BlobAction]] = [pool.submit(run, item) for item in items]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        wait(futures)
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future.result() for future in futures]
