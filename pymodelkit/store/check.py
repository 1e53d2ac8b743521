"""Checking and cleaning the store: who references which blob, ``fsck`` (re-hash everything) and ``gc``.

The reference graph starts at the manifests the per-repo indexes (and their tags) list, optionally also those in
``storage/index.json`` (what oras' AutoGC counts), and follows each manifest to its config and layers. ``gc`` plans
first (which blobs and stray files go, how many bytes that frees) and then deletes, unless ``dry_run``. ``gc`` must
not race a pack or pull that has written blobs but not yet added its manifest: such blobs look unreferenced; the
writer's ``add_manifest`` then fails with a :class:`StoreError` instead of leaving a broken ModelKit.

Stray ingest files (no writer holds them: :mod:`pymodelkit.store.holds`) may go at any time, also while a pack or
pull runs: each is unlinked while ``gc`` holds the lock it probed it with, so a writer that has just made the file
and waits for that lock sees it gone and makes another.
"""

from __future__ import annotations

import contextlib
import logging
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from pymodelkit.errors import ModelKitError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import SHA256, Digest, compute_file_digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.store.holds import is_ingest_live, remove_stray
from pymodelkit.store.layout import (
    BLOBS_DIR,
    TEMP_FILE_RE,
    blob_path,
    ingest_dir,
    list_repo_keys,
    read_storage_index,
    repo_index_path,
    repo_tags_path,
    write_storage_index,
)
from pymodelkit.store.repoindex import read_repo_manifests, read_repo_tags

__all__ = ["FsckReport", "GcReport", "References", "collect_references", "run_fsck", "run_gc", "stray_files"]

logger = logging.getLogger(__name__)

STORAGE_INDEX_REFERRER = "storage/index.json"


@dataclass(frozen=True)
class FsckReport:
    """What ``fsck`` found. ``ok`` is true when nothing is corrupt, missing or otherwise wrong; stray ingest files
    are reported but do not make the store unhealthy. Each corrupt or missing blob comes with who references it."""

    ok: bool
    corrupt_blobs: list[tuple[Digest, str]] = field(default_factory=list)
    missing_blobs: list[tuple[Digest, str]] = field(default_factory=list)
    stray_ingest: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed (or would remove, with ``dry_run``): blob digests, and the bytes freed including stray
    ingest and temp files."""

    removed: list[Digest]
    freed_bytes: int


@dataclass
class References:
    """The reference graph of a store. ``manifests``/``blobs`` map a digest to (descriptor, who references it)."""

    manifests: dict[Digest, list[tuple[Descriptor, str]]] = field(default_factory=dict)
    blobs: dict[Digest, list[tuple[Descriptor, str]]] = field(default_factory=dict)
    unreadable: dict[Digest, str] = field(default_factory=dict)  # manifest blobs present but not parseable
    missing_manifests: set[Digest] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def is_referenced(self, digest: Digest) -> bool:
        """Tell whether any manifest root or any manifest's config/layers is ``digest``."""
        return digest in self.manifests or digest in self.blobs


def collect_references(storage: Path, *, include_storage_index: bool) -> References:
    """Walk every repo index and tags file (and ``storage/index.json`` if asked) to the blobs they reach."""
    refs = References()
    for repo_key in list_repo_keys(storage):
        manifests = read_repo_manifests(repo_index_path(storage, repo_key))
        listed = {d.digest for d in manifests}
        for desc in manifests:
            refs.manifests.setdefault(desc.digest, []).append((desc, repo_key))
        for tag, desc in sorted(read_repo_tags(repo_tags_path(storage, repo_key)).items()):
            refs.manifests.setdefault(desc.digest, []).append((desc, f"{repo_key}:{tag}"))
            if desc.digest not in listed:
                refs.problems.append(f"tag {repo_key}:{tag} points at {desc.digest}, which is not in the repo index")
    if include_storage_index:
        for desc in read_storage_index(storage):
            refs.manifests.setdefault(desc.digest, []).append((desc, STORAGE_INDEX_REFERRER))
    for digest in refs.manifests:
        manifest = _read_manifest(storage, digest, refs)
        if manifest is None:
            continue
        owner = f"manifest {digest}"
        refs.blobs.setdefault(manifest.config.digest, []).append((manifest.config, f"{owner} (config)"))
        for index, layer in enumerate(manifest.layers or ()):
            refs.blobs.setdefault(layer.digest, []).append((layer, f"{owner} (layer {index})"))
    return refs


def stray_files(storage: Path) -> list[Path]:
    """Ingest files no live writer holds, and temp files an interrupted index write left in ``storage/``."""
    strays: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.scandir(ingest_dir(storage)), key=lambda e: e.name):
            path = Path(entry.path)
            if not is_ingest_live(path):
                strays.append(path)
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.scandir(storage), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False) and TEMP_FILE_RE.match(entry.name):
                strays.append(Path(entry.path))
    return strays


def run_fsck(storage: Path, lock: AbstractContextManager[object]) -> FsckReport:
    """Check every reference against the blobs on disk, then re-hash every blob.

    The references, their blobs' presence and sizes, and the stray files are read while holding ``lock`` (the store
    lock), so a concurrent writer cannot make them disagree; hashing runs after it is released, so writers are not
    held up for the minutes a big store takes to hash.
    """
    corrupt: list[tuple[Digest, str]] = []
    missing: list[tuple[Digest, str]] = []
    with lock:
        refs = collect_references(storage, include_storage_index=True)
        strays = stray_files(storage)
        problems = list(refs.problems)
        for digest, who in refs.unreadable.items():
            problems.append(f"manifest {digest} ({who}) cannot be read: fix or remove it")
        for table in (refs.manifests, refs.blobs):
            for digest, users in table.items():
                try:
                    size = blob_path(storage, digest).stat().st_size
                except FileNotFoundError:
                    missing.extend((digest, who) for _, who in users)
                    continue
                for desc, who in users:
                    if desc.size != size:
                        problems.append(f"blob {digest} is {size} bytes but {who} records {desc.size}")
        files = _blob_files(storage, problems)
    for path, named in files:
        if named.algorithm != SHA256:
            problems.append(f"blob {named} uses an algorithm fsck cannot verify")
            continue
        try:
            actual, _ = compute_file_digest(path)
        except FileNotFoundError:  # removed since the listing
            continue
        if actual != named:
            users = refs.manifests.get(named, []) + refs.blobs.get(named, [])
            whos = [who for _, who in users] or ["unreferenced"]
            corrupt.extend((named, who) for who in whos)
    ok = not corrupt and not missing and not problems
    return FsckReport(ok=ok, corrupt_blobs=corrupt, missing_blobs=missing, stray_ingest=strays, problems=problems)


def run_gc(storage: Path, *, dry_run: bool) -> GcReport:
    """Delete blobs no manifest in any repo index references, and stray ingest/temp files. Call under the lock.

    Raises:
        StoreError: a referenced manifest cannot be parsed, so what it references is unknown (run ``fsck``).
    """
    refs = collect_references(storage, include_storage_index=False)
    if refs.unreadable:
        digest, who = next(iter(refs.unreadable.items()))
        raise StoreError(f"gc refused: manifest {digest} ({who}) cannot be read; run fsck", digest=str(digest))
    doomed: list[tuple[Digest, Path, int]] = []
    for path, named in _blob_files(storage, []):
        if not refs.is_referenced(named):
            with contextlib.suppress(FileNotFoundError):
                doomed.append((named, path, path.stat().st_size))
    strays: list[tuple[Path, int]] = []
    for path in stray_files(storage):
        try:
            strays.append((path, path.stat().st_size))
        except FileNotFoundError:  # gone since, or a dangling symlink
            strays.append((path, 0))
    freed = sum(size for _, _, size in doomed) + sum(size for _, size in strays)
    if not dry_run:
        gone = {digest for digest, _, _ in doomed}
        index = read_storage_index(storage)
        kept = [d for d in index if d.digest not in gone]
        if len(kept) != len(index):
            write_storage_index(storage, kept)  # drop entries first: the index never points at a deleted blob
        for _, path, _ in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        ingest = ingest_dir(storage)
        for path, size in strays:
            if path.parent == ingest:
                if not remove_stray(path):  # live again (a writer made it just then) or gone: not freed here
                    freed -= size
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    removed = sorted((digest for digest, _, _ in doomed), key=str)
    logger.info("gc %s %d blobs, %d bytes", "would remove" if dry_run else "removed", len(removed), freed)
    return GcReport(removed=removed, freed_bytes=freed)


def _read_manifest(storage: Path, digest: Digest, refs: References) -> Manifest | None:
    path = blob_path(storage, digest)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        refs.missing_manifests.add(digest)
        return None
    try:
        return Manifest.parse(data)
    except ModelKitError as exc:
        users = ", ".join(who for _, who in refs.manifests.get(digest, []))
        refs.unreadable[digest] = users
        logger.warning("manifest %s cannot be parsed: %s", digest, exc)
        return None


def _blob_files(storage: Path, problems: list[str]) -> list[tuple[Path, Digest]]:
    """Every file under ``blobs/<alg>/``, with the digest its name claims; odd names go to ``problems``."""
    out: list[tuple[Path, Digest]] = []
    root = storage / BLOBS_DIR
    try:
        algorithms = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for algo in algorithms:
        if not algo.is_dir(follow_symlinks=False):
            problems.append(f"unexpected file {algo.path} in blobs/")
            continue
        for entry in sorted(os.scandir(algo.path), key=lambda e: e.name):
            try:
                named = Digest.parse(f"{algo.name}:{entry.name}")
            except ModelKitError:
                problems.append(f"blob file {entry.path} is not named by a digest")
                continue
            if not entry.is_file(follow_symlinks=False):
                problems.append(f"blob {named} is not a regular file")
                continue
            out.append((Path(entry.path), named))
    return out
