"""``save`` and ``load``: ModelKits between the local store and an OCI archive or layout, for air-gapped transfer
(spec ``spec/transport.md`` §6; Docker's save/load names, skopeo's ``oci:`` and ``oci-archive:`` formats).

``save`` streams a ModelKit from the local store (optionally with the parents its Kitfile names, and with its
signatures read from the registry it came from) into a standard OCI archive: skopeo and every OCI tool read it.
``load`` checks the whole archive first — its structure, every manifest, every blob's presence and size, duplicate
members — then copies each blob into the store's ingest, where its digest is verified before it is committed, and
only then adds the manifests and tags. ``push REF oci:…`` and ``pull oci:…`` are these two calls; ``copy`` (in
:mod:`pymodelkit.registry.copy`) moves archives to and from registries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pymodelkit.errors import InvalidReferenceError, ModelKitError, NotFoundError
from pymodelkit.kitfile import kitfile_from_json_bytes
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference, parse_single_reference
from pymodelkit.ocilayout.archive import ArchiveReader
from pymodelkit.ocilayout.endpoint import (
    BlobSource,
    CopyResult,
    ManifestItem,
    SourceManifest,
    collect_signatures,
    copy_items,
    manifest_item,
)
from pymodelkit.ocilayout.layout import (
    LayoutLocation,
    check_archive_path,
    is_layout_location,
    parse_layout_location,
    ref_name_of,
)
from pymodelkit.ocilayout.local import (
    LayoutSource,
    StoreSink,
    StoreSource,
    is_signature_name,
    open_layout_sink,
    open_layout_source,
    select_root,
)
from pymodelkit.pack.parents import resolve_parent_chain
from pymodelkit.progress import ProgressCallback
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.copy import RegistryEndpoint
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.registry.transfer import DEFAULT_CONCURRENCY
from pymodelkit.store import LocalStore
from pymodelkit.store.repoindex import check_tag

if TYPE_CHECKING:
    from collections.abc import Generator

    from pymodelkit.registry.credentials import CredentialSource

__all__ = ["LoadResult", "LoadedModelKit", "load", "save", "to_layout_location"]

logger = logging.getLogger(__name__)

_REPOSITORY_CHARS_RE = re.compile(r"[^a-z0-9._-]+")
_SEPARATORS_RE = re.compile(r"[._-]{2,}")


@dataclass(frozen=True, slots=True)
class LoadedModelKit:
    """One ModelKit ``load`` put into the local store: the reference it is stored as, and its manifest digest."""

    reference: Reference
    digest: Digest


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What ``load`` did: the ModelKits stored (the root first), the manifests it left in the archive (signatures,
    referrers: kit's store has no place for them), and the blob copy's details."""

    modelkits: tuple[LoadedModelKit, ...]
    left_out: tuple[Digest, ...]
    copy: CopyResult

    @property
    def digest(self) -> Digest:
        """The first (root) ModelKit's manifest digest."""
        return self.modelkits[0].digest


def to_layout_location(target: str | os.PathLike[str] | LayoutLocation) -> LayoutLocation:
    """``oci:DIR[:NAME]`` and ``oci-archive:FILE[:NAME]`` as written; any other path is an archive file. A string
    that starts with another transport (``docker-archive:``, ``dir:``) is refused; a :class:`~pathlib.Path` is a path.

    Raises:
        InvalidReferenceError: a malformed ``oci:``/``oci-archive:`` location, or another transport's.
    """
    if isinstance(target, LayoutLocation):
        return target
    text = os.fspath(target)
    if is_layout_location(text):
        return parse_layout_location(text)
    if isinstance(target, str):
        check_archive_path(text, "location")
    return LayoutLocation("oci-archive", Path(text))


def save(
    reference: str | Reference,
    output: str | os.PathLike[str] | LayoutLocation,
    *,
    with_signatures: bool = False,
    with_parents: bool = False,
    store: LocalStore | None = None,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    on_progress: ProgressCallback | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> CopyResult:
    """Write a ModelKit from the local store as a standard OCI archive (or layout directory), streamed.

    The index names the ModelKit by its tag (``org.opencontainers.image.ref.name``, what ``skopeo copy
    oci-archive:FILE:TAG`` selects) and by its full reference (``io.containerd.image.name``, so ``load`` restores
    it to its repository). The same ModelKit always gives the same archive bytes.

    Args:
        reference: the local ModelKit (no tag means ``latest``).
        output: an archive path, ``oci-archive:FILE[:NAME]`` or ``oci:DIR[:NAME]``; ``NAME`` (a tag) replaces the
            reference's tag in the index.
        with_signatures: also fetch the ModelKit's signatures (cosign ``.sig`` tag, referrers and their fallback
            index) from the registry the reference names, and write them into the archive.
        with_parents: also write the parent ModelKits its Kitfile's ``model.path`` names (from the local store).
        store: the local store; default: the one under ``KITOPS_HOME``.
        credentials, plain_http, tls_verify, ca_bundle, retry: for the registry, with ``with_signatures``.
        on_progress: per-blob events and a ``total`` event.

    Returns:
        a :class:`CopyResult` (``destination`` names the archive; ``signatures`` the signature manifests saved).

    Raises:
        NotFoundError: the ModelKit, or a parent, is not in the local store. InvalidReferenceError: signatures
        asked for a reference without a registry. RegistryError, AuthError: fetching signatures failed.
        DigestMismatchError: a store blob does not match its digest (nothing is left at ``output``).
    """
    store = store if store is not None else LocalStore()
    ref = _parse(reference)
    location = to_layout_location(output)
    descriptor, manifest = store.read_manifest(ref)
    data = store.read_blob(descriptor.digest, max_bytes=MAX_MANIFEST_BYTES)
    tag = location.name if location.name and ":" not in location.name else (ref.tag or None)
    if tag is not None:
        check_tag(tag)
    named = ref.with_tag(tag) if tag else ref
    items = [manifest_item(SourceManifest(data, manifest.media_type or MEDIA_TYPE_MANIFEST, descriptor.digest),
                           tag=tag, reference=named, kind="modelkit")]
    store_source = StoreSource(store, ref)
    if with_parents:
        items += _parent_items(store, ref, manifest)
    with contextlib.ExitStack() as stack:
        blobs = _BlobRouter(store_source)
        if with_signatures:
            if ref.is_local:
                raise InvalidReferenceError(
                    f"signatures are read from a registry: {ref.display()} has no registry host", reference=str(ref)
                )
            client = stack.enter_context(RegistryClient(ref.registry, credentials=credentials, plain_http=plain_http,
                                                        tls_verify=tls_verify, ca_bundle=ca_bundle, retry=retry))
            registry = RegistryEndpoint(client, ref, retry=retry)
            signatures = collect_signatures(registry, descriptor.digest, named)
            if not signatures:
                logger.warning("no signatures found for %s in %s", descriptor.digest, registry.description)
            for item in signatures:
                blobs.route(item.blobs, registry)
            items += signatures
        sink = stack.enter_context(open_layout_sink(location))
        result = copy_items(blobs, sink, items, on_progress=on_progress)
        sink.finish()
    logger.info("saved %s (%s) to %s", ref.display(), descriptor.digest, location)
    return result


def load(
    source: str | os.PathLike[str] | LayoutLocation,
    *,
    reference: str | Reference | None = None,
    store: LocalStore | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
) -> LoadResult:
    """Load the ModelKits of an OCI archive (or layout directory) into the local store, verifying every digest.

    Each ModelKit is stored as the full reference the archive gives it (``io.containerd.image.name``); one with
    only a tag (skopeo writes that) goes to ``localhost/<file name>:<tag>``. ``NAME`` in
    ``oci-archive:FILE:NAME`` loads only that manifest (and the parents saved with it). Signatures and referrers
    stay in the archive: kit's store has no place for them (``copy`` or ``push`` the archive to carry them).

    Nothing is added to the store's indexes unless every check passes: the archive's structure (see
    :class:`~pymodelkit.ocilayout.archive.ArchiveReader`), each manifest's digest, the presence and size of every
    blob, and each blob's digest as it is ingested.

    Args:
        source: an archive path, ``oci-archive:FILE[:NAME]`` or ``oci:DIR[:NAME]``.
        reference: store the root ModelKit (the selected one, else the first) as this reference instead.
        store: the local store; default: the one under ``KITOPS_HOME``.

    Raises:
        NotFoundError: no such file; the archive holds no ModelKit or none by that name; its index names a blob
            that is not in it (naming the digest).
        UnsafeArchiveError: a refused member (link, device, absolute or ``..`` name, unexpected file), a
            truncated or corrupt archive, duplicate members with different content.
        DigestMismatchError: a blob or manifest whose bytes do not match its digest or size.
        ModelKitError: no ``oci-layout`` or ``index.json``, or either malformed.
    """
    store = store if store is not None else LocalStore()
    location = to_layout_location(source)
    rename = _parse(reference) if reference is not None else None
    with open_layout_source(location) as layout:
        entries = _entries_to_load(layout, location)
        items: list[ManifestItem] = []
        left_out: list[Digest] = []
        for entry in entries:
            data = layout.read_manifest(entry)
            if not _is_modelkit(data, entry):
                left_out.append(entry.digest)
                continue
            is_root = not items
            ref = rename if is_root and rename is not None else _stored_reference(layout, entry, location)
            fetched = SourceManifest(data, entry.media_type or MEDIA_TYPE_MANIFEST, entry.digest)
            items.append(manifest_item(fetched, tag=ref.tag or None, reference=ref,
                                       kind="modelkit" if is_root else "parent"))
        if not items:
            raise NotFoundError(f"{layout.description} holds no ModelKit")
        for item in items:
            for blob in item.blobs:
                layout.check_blob(blob, f"manifest {item.digest}")
        if isinstance(layout.reader, ArchiveReader):
            layout.reader.check_duplicates()
        result = copy_items(layout, StoreSink(store), items, concurrency=concurrency, on_progress=on_progress)
    loaded = tuple(LoadedModelKit(item.reference, item.digest) for item in items if item.reference is not None)
    for kit in loaded:
        logger.info("loaded %s as %s", kit.digest, kit.reference)
    return LoadResult(modelkits=loaded, left_out=tuple(left_out), copy=result)


# ----- internals -------------------------------------------------------------------------------------------------


class _BlobRouter:
    """A blob source that serves each blob from the source it was routed to (signature blobs from the registry),
    every other blob from the default source (the store)."""

    def __init__(self, default: BlobSource) -> None:
        self._default = default
        self._routes: dict[Digest, BlobSource] = {}
        self.description = default.description

    def route(self, blobs: tuple[Descriptor, ...], source: BlobSource) -> None:
        for blob in blobs:
            self._routes[blob.digest] = source

    def open_blob(
        self, descriptor: Descriptor, offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        return self._routes.get(descriptor.digest, self._default).open_blob(descriptor, offset, length)


def _parent_items(store: LocalStore, ref: Reference, manifest: Manifest) -> list[ManifestItem]:
    if manifest.format != "kitops":
        return []
    items: list[ManifestItem] = []
    kitfile = kitfile_from_json_bytes(store.read_blob(manifest.config.digest))

    def fetch_parent(parent: Reference) -> tuple[Manifest, bytes]:
        descriptor, parent_manifest = store.read_manifest(parent)
        data = store.read_blob(descriptor.digest, max_bytes=MAX_MANIFEST_BYTES)
        fetched = SourceManifest(data, parent_manifest.media_type or MEDIA_TYPE_MANIFEST, descriptor.digest)
        # No ref.name: the archive's tags select the ModelKit itself; the full name restores the parent on load.
        items.append(manifest_item(fetched, tag=None, reference=parent, kind="parent"))
        return parent_manifest, store.read_blob(parent_manifest.config.digest)

    resolve_parent_chain(kitfile, ref.display(), fetch_parent)
    return items


def _entries_to_load(layout: LayoutSource, location: LayoutLocation) -> list[Descriptor]:
    """Every entry, or (with a name) the named one then the parents saved beside it (full name, no ``ref.name``)."""
    if location.name is None:
        return list(layout.index)
    root = select_root(layout, location.name)
    return [root, *(d for d in layout.index
                    if d.digest != root.digest and ref_name_of(d) is None and layout.reference_of(d) is not None)]


def _is_modelkit(data: bytes, entry: Descriptor) -> bool:
    if is_signature_name(ref_name_of(entry)) or entry.media_type not in ("", MEDIA_TYPE_MANIFEST):
        return False
    try:
        manifest = Manifest.parse(data)
        if manifest.media_type not in (None, MEDIA_TYPE_MANIFEST):
            return False
        manifest.format  # noqa: B018 - raises for artifacts that are not models
    except ModelKitError:
        return False
    return True


def _stored_reference(layout: LayoutSource, entry: Descriptor, location: LayoutLocation) -> Reference:
    named = layout.reference_of(entry)
    if named is not None:
        return named
    tag = ref_name_of(entry) or "latest"
    try:
        check_tag(tag)
    except InvalidReferenceError:
        logger.warning("%s: name %r is not a tag; loading %s as 'latest'", layout.description, tag, entry.digest)
        tag = "latest"
    return Reference("localhost", _repository_from_path(location.path), tag)


def _repository_from_path(path: Path) -> str:
    """``/mnt/usb/Churn Model.tar`` -> ``churn-model``: a valid repository name from a file or directory name."""
    stem = path.name
    for suffix in (".tar", ".oci"):
        stem = stem.removesuffix(suffix)
    name = _SEPARATORS_RE.sub("-", _REPOSITORY_CHARS_RE.sub("-", stem.lower())).strip("._-")
    return name or "modelkit"


def _parse(reference: str | Reference) -> Reference:
    return parse_single_reference(reference).with_default_tag()
