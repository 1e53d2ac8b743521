"""The local store: kit's ``$KITOPS_HOME/storage`` read and written exactly as kit lays it out (spec §3).

Write order. Every step is one atomic file operation, and a reference is written only after what it points at, so a
process killed between any two steps leaves a store that lists and reads correctly:

1. config and layer blobs (ingest, verify, rename), then the manifest blob: until step 2 they are unreferenced
   (``gc`` reclaims them after a crash);
2. ``storage/index.json`` gains the manifest: oras (kit's AutoGC) now counts the manifest's config and layers as in
   use, before anything can show the ModelKit;
3. the repo's ``-index.json`` gains it: ``list`` shows it, untagged, and a digest reference resolves;
4. the repo's ``-tags.json`` points the tags at it (a tag that moves, moves in this one rename).

Removal runs the same steps backwards: tags, repo index, ``storage/index.json``, manifest blob, then the config and
layer blobs no remaining manifest references. Index and tags updates are read-modify-write under :class:`StoreLock`,
so concurrent writers in threads or processes do not lose each other's entries. Readers take no lock: every file is
replaced whole, and every intermediate state above is valid. (The module is a little over 400 lines because it is one
class, the store's whole public surface; the mechanisms live in the sibling modules.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pymodelkit import settings
from pymodelkit._atomic import fsync_dir
from pymodelkit.errors import DigestMismatchError, InvalidReferenceError, ModelKitError, NotFoundError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference, format_for_display
from pymodelkit.store import layout
from pymodelkit.store.check import FsckReport, GcReport, collect_references, run_fsck, run_gc
from pymodelkit.store.holds import Hold, held_name
from pymodelkit.store.ingest import INGEST_PREFIX, BlobWriter
from pymodelkit.store.lock import StoreLock
from pymodelkit.store.repoindex import (
    check_tag,
    read_repo_manifests,
    read_repo_tags,
    tags_for,
    write_repo_manifests,
    write_repo_tags,
)

__all__ = ["LocalStore", "Removal", "StoredModelKit"]

logger = logging.getLogger(__name__)

DEFAULT_READ_LIMIT = 4 << 20


@dataclass(frozen=True)
class StoredModelKit:
    """One manifest of one repository: its digest, manifest size in bytes, sorted tags and parsed manifest."""

    repo_key: str
    digest: Digest
    size: int
    tags: tuple[str, ...]
    manifest: Manifest


@dataclass(frozen=True)
class Removal:
    """One thing ``remove`` did: untagged ``tag`` (``untagged_only``), or deleted the manifest ``digest`` from
    ``repo_key`` (``tag`` is the tag it was removed by, ``None`` when removed by digest or by ``remove_all``)."""

    repo_key: str
    digest: Digest
    tag: str | None
    untagged_only: bool


class LocalStore:
    """kit's local storage under ``home`` (default: :func:`pymodelkit.settings.kitops_home`).

    Nothing is created on disk until the first write; reading a store that does not exist finds it empty. Safe to
    share between threads, and between processes using the same home.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home: Path = Path(home).absolute() if home is not None else settings.kitops_home()
        self.storage: Path = self.home / "storage"
        self._lock = StoreLock(self.storage / layout.LOCK_FILE)
        self._layout_ready = False

    # ----- blobs -------------------------------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        """The path of a blob: ``storage/blobs/<algorithm>/<hex>`` (whether or not it exists)."""
        return layout.blob_path(self.storage, digest)

    def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        """Tell whether the blob is in the store (no verification), with ``size`` bytes when a size is given."""
        try:
            info = os.stat(self.blob_path(digest))
        except OSError:  # missing, or not reachable (a permission, a name too long): not usable either way
            return False
        return stat.S_ISREG(info.st_mode) and (size is None or info.st_size == size)

    def open_blob(self, digest: Digest) -> BinaryIO:
        """Open a blob for reading. Raises :class:`NotFoundError` if it is not in the store."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found in local storage", path=str(self.blob_path(digest))) from None

    def read_blob(self, digest: Digest, *, max_bytes: int = DEFAULT_READ_LIMIT) -> bytes:
        """Read a small blob whole and verify it against its digest.

        Raises:
            NotFoundError: the blob is not in the store.
            StoreError: the blob is larger than ``max_bytes``.
            DigestMismatchError: the bytes do not hash to ``digest``.
        """
        with self.open_blob(digest) as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise StoreError(f"blob {digest} is larger than {max_bytes} bytes", digest=str(digest))
        actual = Digest.from_bytes(data)
        if digest.algorithm == actual.algorithm and actual != digest:
            raise DigestMismatchError(
                f"blob {digest} is corrupt: its content hashes to {actual}", expected=str(digest), actual=str(actual)
            )
        return data

    def ingest(
        self, *, hashing: bool = True, size_hint: int | None = None, hash_when_direct: bool = False
    ) -> BlobWriter:
        """Start writing a blob; use the writer as a context manager and call ``commit`` inside it.

        ``hashing=False``: the caller hashes the bytes itself and passes the digest to ``commit``. ``size_hint``: the
        expected size; a large blob is written bypassing the page cache (:class:`BlobWriter`), and then hashed by the
        writer off the caller's thread also with ``hashing=False`` when ``hash_when_direct`` (``writer.hashing``).
        """
        self._ensure_layout()
        return BlobWriter(self.storage, hashing=hashing, size_hint=size_hint, hash_when_direct=hash_when_direct)

    def link_blob(self, source: str | os.PathLike[str], digest_of: Callable[[], Digest]) -> Digest | None:
        """Put the existing file ``source`` in the store by a hard link (no bytes copied), as the blob whose digest
        ``digest_of()`` computes (it hashes the file). The link is made first, so a file that cannot be linked
        (another filesystem, not allowed) is not read at all: then None, the store as it was, and the caller copies
        the file instead. Returns the digest when linked or already present.

        The blob then shares the file's inode: its mode is the file's own (never changed here; kit reads blobs of
        any mode), and a later in-place edit of the file changes the blob too (``fsck`` reports such a blob).

        Until it is renamed into ``blobs/`` the link is named as a parked ingest file
        (``pymodelkit_link_<hex>.held-<hold>``) and kept live for a concurrent ``gc`` by this process's hold file (a
        flock on the link itself would lock the caller's file).
        """
        self._ensure_layout()
        ingest = layout.ingest_dir(self.storage)
        hold: Hold | None = None
        temp: Path | None = None
        try:
            hold = Hold.acquire(ingest)
            temp = ingest / held_name(f"{INGEST_PREFIX}link_{secrets.token_hex(8)}", hold.token)
            try:
                os.link(source, temp)
            except OSError as exc:
                temp = None
                logger.debug("cannot hard-link %s into the store (%s): copying it", source, exc)
                return None
            digest = digest_of()
            target = self.blob_path(digest)
            if self.has_blob(digest):
                return digest  # the finally removes the link
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            target.parent.mkdir(mode=layout.DIR_MODE, parents=True, exist_ok=True)
            os.replace(temp, target)
            temp = None
        finally:
            if temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            if hold is not None:
                hold.release()
        fsync_dir(target.parent)
        return digest

    def write_blob(self, data: bytes, *, mode: int = 0o444) -> Digest:
        """Store a small blob (config, manifest) and return its digest; a blob already present is left alone."""
        digest = Digest.from_bytes(data)
        if self.has_blob(digest):
            return digest
        with self.ingest() as writer:
            writer.write(data)
            writer.commit(expected_digest=digest, expected_size=len(data), mode=mode)
        return digest

    # ----- manifests ---------------------------------------------------------------------------------------------

    def add_manifest(self, repo_key: str, manifest_bytes: bytes, *, tags: Sequence[str] = ()) -> Descriptor:
        """Store a manifest in ``repo_key`` (``registry/repository``) and point ``tags`` at it.

        The manifest's config and layers must already be in the store. A tag that pointed at another manifest of the
        repo moves; that manifest stays, untagged.

        Raises:
            InvalidReferenceError: a tag is not a valid tag.
            ModelKitError: the bytes are not an OCI image manifest.
            StoreError: the repository key is empty, or a blob the manifest references is missing or of another size.
        """
        _check_repo_key(repo_key)
        for tag in tags:
            check_tag(tag)
        manifest = Manifest.parse(manifest_bytes)
        desc = Descriptor(MEDIA_TYPE_MANIFEST, Digest.from_bytes(manifest_bytes), len(manifest_bytes))
        with self._lock:
            self._ensure_layout()
            self._check_children(desc.digest, manifest)
            self.write_blob(manifest_bytes, mode=0o444)
            self._add_to_storage_index(desc)
            self._add_to_repo(repo_key, desc, tags)
        logger.debug("added manifest %s to %s (tags %s)", desc.digest, repo_key, ", ".join(tags) or "none")
        return desc

    def resolve(self, ref: Reference) -> Descriptor:
        """Find the manifest descriptor ``ref`` names: by digest among the repo's manifests, else by tag.

        Raises:
            InvalidReferenceError: ``ref`` has neither tag nor digest.
            NotFoundError: ``Could not find modelkit <ref>``.
        """
        if not ref.has_reference:
            raise InvalidReferenceError(
                f"missing tag or digest from ModelKit reference '{ref.display()}'", reference=str(ref)
            )
        manifests = read_repo_manifests(layout.repo_index_path(self.storage, ref.repo_key))
        listed = {d.digest: d for d in manifests}
        found: Descriptor | None
        if ref.digest is not None:
            found = listed.get(ref.digest)
        else:
            found = read_repo_tags(layout.repo_tags_path(self.storage, ref.repo_key)).get(ref.tag)
            if found is not None and found.digest not in listed:  # kit's Fetch refuses a manifest not in the index
                found = None
        if found is None:
            raise NotFoundError(f"Could not find modelkit {ref.display()}", reference=str(ref))
        return found

    def read_manifest(self, ref: Reference) -> tuple[Descriptor, Manifest]:
        """Resolve ``ref`` and read its manifest, verified against the descriptor's digest and size.

        Raises:
            InvalidReferenceError, NotFoundError: as :meth:`resolve`; NotFoundError also when the blob is missing.
            DigestMismatchError: the manifest blob is corrupt.
            ModelKitError: the blob is not a manifest.
        """
        desc = self.resolve(ref)
        data = self.read_blob(desc.digest, max_bytes=MAX_MANIFEST_BYTES)
        if len(data) != desc.size:
            raise DigestMismatchError(
                f"manifest {desc.digest} is {len(data)} bytes, index records {desc.size}",
                expected=desc.size,
                actual=len(data),
            )
        return desc, Manifest.parse(data)

    def list_repositories(self) -> list[str]:
        """The repository keys (``localhost/test``) that have an index file, sorted."""
        return layout.list_repo_keys(self.storage)

    def list_modelkits(self, repo_key: str | None = None) -> list[StoredModelKit]:
        """Every ModelKit of every repository (or of ``repo_key``), by repository then digest, as ``kit list``.

        A manifest whose blob is missing or unreadable is skipped with a warning (``fsck`` reports it).
        """
        repos = [repo_key] if repo_key is not None else self.list_repositories()
        out: list[StoredModelKit] = []
        for repo in repos:
            manifests = read_repo_manifests(layout.repo_index_path(self.storage, repo))
            tags = read_repo_tags(layout.repo_tags_path(self.storage, repo))
            for desc in sorted(manifests, key=lambda d: str(d.digest)):
                try:
                    data = self.read_blob(desc.digest, max_bytes=MAX_MANIFEST_BYTES)
                    manifest = Manifest.parse(data)
                except ModelKitError as exc:
                    logger.warning("skipping %s@%s: %s", repo, desc.digest, exc)
                    continue
                out.append(StoredModelKit(repo, desc.digest, len(data), tags_for(tags, desc.digest), manifest))
        return out

    def tag(self, source: Reference, target: Reference) -> Descriptor:
        """Point ``target``'s tag at the manifest ``source`` names; another repository gets the manifest in its index
        (blobs are shared). Returns the manifest's descriptor.

        Raises:
            InvalidReferenceError: ``source`` has no tag or digest, or ``target`` has no tag.
            NotFoundError: ``source`` is not in the store.
        """
        if not source.has_reference:
            raise InvalidReferenceError(
                f"source ModelKit reference requires a tag or digest ({source.display()}:<tag>)", reference=str(source)
            )
        if not target.tag or target.digest is not None:
            raise InvalidReferenceError(
                f"target ModelKit reference requires a tag ({format_for_display(target.repo_key)}:<tag>)",
                reference=str(target),
            )
        check_tag(target.tag)
        with self._lock:
            try:
                desc = self.resolve(source)
            except NotFoundError:
                raise NotFoundError(f"model {source} not found", reference=str(source)) from None
            self._add_to_storage_index(desc)
            self._add_to_repo(target.repo_key, desc, (target.tag,))
        return desc

    # ----- removal -----------------------------------------------------------------------------------------------

    def remove(self, ref: Reference, *, force: bool = False) -> list[Removal]:
        """Remove a ModelKit as ``kit remove`` does.

        By digest, or with ``force``: delete the manifest from the repo with all its tags. By tag: untag when the
        manifest has other tags in this repo, else delete it. Deleting drops the manifest from the repo index and,
        when no other repo lists it, from ``storage/index.json`` and deletes its blobs nothing else references.

        Raises:
            InvalidReferenceError: ``ref`` has neither tag nor digest.
            NotFoundError: ``model <ref> not found``.
        """
        if not ref.has_reference:
            raise InvalidReferenceError(
                f"tag or digest is required when removing ({ref.display()}:<tag>)", reference=str(ref)
            )
        with self._lock:
            try:
                desc = self.resolve(ref)
            except NotFoundError:
                raise NotFoundError(f"model {ref.display()} not found", reference=str(ref)) from None
            repo = ref.repo_key
            tag = ref.tag or None
            if ref.digest is None and not force:
                tags = read_repo_tags(layout.repo_tags_path(self.storage, repo))
                if len(tags_for(tags, desc.digest)) > 1:
                    del tags[ref.tag]
                    write_repo_tags(layout.repo_tags_path(self.storage, repo), tags)
                    return [Removal(repo, desc.digest, ref.tag, True)]
            self._delete_manifest(repo, desc)
            return [Removal(repo, desc.digest, tag, False)]

    def remove_all(self, *, force: bool = False) -> list[Removal]:
        """Remove every untagged ModelKit of every repository; with ``force``, untag and remove everything.

        Returns, per manifest, one untag :class:`Removal` per tag (``force`` only) then the deletion.
        """
        removals: list[Removal] = []
        with self._lock:
            for repo in self.list_repositories():
                tags_path = layout.repo_tags_path(self.storage, repo)
                for desc in read_repo_manifests(layout.repo_index_path(self.storage, repo)):
                    tags = read_repo_tags(tags_path)
                    own = tags_for(tags, desc.digest)
                    if own and not force:
                        continue
                    for tag in own:
                        del tags[tag]
                        write_repo_tags(tags_path, tags)
                        removals.append(Removal(repo, desc.digest, tag, True))
                    self._delete_manifest(repo, desc)
                    removals.append(Removal(repo, desc.digest, None, False))
        return removals

    # ----- checks ------------------------------------------------------------------------------------------------

    def fsck(self) -> FsckReport:
        """Re-hash every blob and check every index, tag and manifest reference; report stray ingest files.

        The references are checked under the lock; hashing runs without it so writers are not held up.
        """
        layout.check_storage_dir(self.storage)
        if not self.storage.is_dir():
            return FsckReport(ok=True)
        return run_fsck(self.storage, self._lock)

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Delete blobs no manifest of any repo index references, and stray ingest and temp files.

        Do not run it while a pack or pull into this store is in progress (see :mod:`pymodelkit.store.check`).

        Raises:
            StoreError: a referenced manifest cannot be read (run :meth:`fsck`).
        """
        layout.check_storage_dir(self.storage)
        if not self.storage.is_dir():
            return GcReport(removed=[], freed_bytes=0)
        with self._lock:
            return run_gc(self.storage, dry_run=dry_run)

    # ----- internals ---------------------------------------------------------------------------------------------

    def _ensure_layout(self) -> None:
        if self._layout_ready:
            return
        with self._lock:
            layout.ensure_layout(self.storage)
        self._layout_ready = True

    def _check_children(self, digest: Digest, manifest: Manifest) -> None:
        children = [("config", manifest.config)] + [(f"layer {i}", d) for i, d in enumerate(manifest.layers or ())]
        for what, child in children:
            try:
                size = self.blob_path(child.digest).stat().st_size
            except FileNotFoundError:
                raise StoreError(
                    f"cannot add manifest {digest}: its {what} {child.digest} is not in local storage",
                    digest=str(child.digest),
                ) from None
            if size != child.size:
                raise StoreError(
                    f"cannot add manifest {digest}: its {what} {child.digest} is {size} bytes, manifest says "
                    f"{child.size}",
                    digest=str(child.digest),
                )

    def _add_to_storage_index(self, desc: Descriptor) -> None:
        entries = layout.read_storage_index(self.storage)
        if all(entry.digest != desc.digest for entry in entries):
            layout.write_storage_index(self.storage, [*entries, desc])

    def _add_to_repo(self, repo_key: str, desc: Descriptor, tags: Sequence[str]) -> None:
        index_path = layout.repo_index_path(self.storage, repo_key)
        manifests = read_repo_manifests(index_path)
        if all(d.digest != desc.digest for d in manifests):
            write_repo_manifests(index_path, [*manifests, desc])
        if tags:
            tags_path = layout.repo_tags_path(self.storage, repo_key)
            current = read_repo_tags(tags_path)
            updated = {**current, **dict.fromkeys(tags, desc)}
            if updated != current:
                write_repo_tags(tags_path, updated)

    def _delete_manifest(self, repo_key: str, desc: Descriptor) -> None:
        """Drop a manifest from a repo (tags, then index); if no other repo lists it, delete it and AutoGC."""
        tags_path = layout.repo_tags_path(self.storage, repo_key)
        tags = read_repo_tags(tags_path)
        kept_tags = {tag: d for tag, d in tags.items() if d.digest != desc.digest}
        if kept_tags != tags:
            write_repo_tags(tags_path, kept_tags)
        index_path = layout.repo_index_path(self.storage, repo_key)
        manifests = read_repo_manifests(index_path)
        write_repo_manifests(index_path, [d for d in manifests if d.digest != desc.digest])
        for other in self.list_repositories():
            if any(d.digest == desc.digest for d in read_repo_manifests(layout.repo_index_path(self.storage, other))):
                logger.debug("manifest %s is still in %s: keeping its blobs", desc.digest, other)
                return
        children: list[Digest] = []
        try:
            manifest = Manifest.parse(self.read_blob(desc.digest, max_bytes=MAX_MANIFEST_BYTES))
            children = [manifest.config.digest, *(d.digest for d in manifest.layers or ())]
        except ModelKitError as exc:
            logger.warning("manifest %s cannot be read (%s): leaving its blobs to gc", desc.digest, exc)
        entries = layout.read_storage_index(self.storage)
        kept = [entry for entry in entries if entry.digest != desc.digest]
        if len(kept) != len(entries):
            layout.write_storage_index(self.storage, kept)
        self._unlink_blob(desc.digest)
        if not children:
            return
        refs = collect_references(self.storage, include_storage_index=True)
        if refs.unreadable:
            logger.warning("some manifests cannot be read: leaving the blobs of %s to gc", desc.digest)
            return
        for child in dict.fromkeys(children):
            if not refs.is_referenced(child):
                self._unlink_blob(child)

    def _unlink_blob(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()
            logger.debug("deleted blob %s", digest)


def _check_repo_key(repo_key: str) -> None:
    if not repo_key or repo_key != repo_key.strip() or "/" not in repo_key:
        raise StoreError(f"invalid repository key {repo_key!r}: must be registry/repository", repo_key=repo_key)
