"""``unpack``: a ModelKit from the local store into a directory, verified before a byte is written.

The plan is computed first (parents' model layers, then the ModelKit's Kitfile and selected layers, picked by
digest in kit's order: model, parts, datasets, code, docs, prompts, mcpServers). Every selected layer is then read
once to check its size and digest and to scan every tar entry for anything unsafe. Only when all of them pass are
files written, each under a temporary name renamed into place once complete; if writing fails or is interrupted,
everything this unpack created (files, directories, the target itself) is removed again (spec ``format.md`` §7).

A ModelKit (or parent) that is not in the local store and whose registry is not ``localhost`` is read from its
registry, as kit does: ``pymodelkit.registry.remote`` (imported only then) fetches its manifest and config into the
store while planning, then only the selected layers, so verification and extraction still read the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pymodelkit.errors import (
    DigestMismatchError,
    KitfileError,
    ModelKitError,
    NotFoundError,
    SignatureError,
    UnpackError,
    UnsafeArchiveError,
)
from pymodelkit.kitfile import Kitfile, dump_kitfile, is_modelkit_reference, kitfile_from_json_bytes
from pymodelkit.kitfile.model import LayerElement, LayerKind
from pymodelkit.kitfile.paths import clean_path
from pymodelkit.kitfile.validate import modelkit_reference_text
from pymodelkit.modelpack import has_kitfile_annotation, kitfile_from_modelpack, parse_layer_media_type
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import ANNOTATION_FILE_METADATA, ANNOTATION_FILEPATH, LayerMediaType
from pymodelkit.oci.reference import Reference, parse_reference
from pymodelkit.pack.plan import MEDIA_BASE, gets_layer
from pymodelkit.progress import ProgressCallback, ProgressEvent
from pymodelkit.store import LocalStore
from pymodelkit.unpack.extract import TarMember, check_tar_target, extract_raw, extract_tar, scan_tar, write_kitfile
from pymodelkit.unpack.filters import (
    MATCH_NOTHING,
    UnpackFilter,
    parse_filter,
    reduce_filters_for_parent,
    should_unpack,
    should_unpack_kitfile,
)
from pymodelkit.unpack.journal import UnpackJournal

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource
    from pymodelkit.registry.remote import RemoteModelKits
    from pymodelkit.signing.verification import ManifestVerifier

__all__ = ["MAX_PARENT_REFERENCES", "UnpackResult", "unpack"]

# Finds a ModelKit's manifest; once it returns, the manifest's config is in the local store.
_FetchManifest = Callable[[Reference], tuple[Descriptor, Manifest]]

logger = logging.getLogger(__name__)

MAX_PARENT_REFERENCES = 10
_READ_BYTES = 4 << 20
_SELECTION_ORDER: tuple[LayerKind, ...] = ("model", "modelpart", "dataset", "code", "docs", "prompt", "mcpserver")


@dataclass(frozen=True, slots=True)
class UnpackResult:
    """What ``unpack`` wrote: the ModelKit's manifest digest, the files written, and the Kitfile's path if written;
    ``unmatched_filters`` are the filters that selected nothing (neither the Kitfile nor any layer)."""

    digest: Digest
    files: tuple[Path, ...]
    kitfile_path: Path | None
    unmatched_filters: tuple[UnpackFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class _LayerStep:
    descriptor: Descriptor
    media_type: LayerMediaType
    element_path: str


@dataclass
class _ModelKitStep:
    reference: Reference
    digest: Digest
    kitfile: Kitfile
    write_kitfile: bool
    layers: list[_LayerStep] = field(default_factory=list)


def unpack(
    reference: str | Reference,
    directory: str | os.PathLike[str],
    *,
    filters: Sequence[str | UnpackFilter] = (),
    overwrite: bool = False,
    ignore_existing: bool = False,
    store: LocalStore | None = None,
    on_progress: ProgressCallback | None = None,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    verify: ManifestVerifier | None = None,
) -> UnpackResult:
    """Unpack a ModelKit from the local store, or else from its registry, into ``directory``.

    Args:
        reference: ``[registry/]repository[:tag|@digest]``; no tag means ``latest``.
        directory: where to write; created if missing.
        filters: kit's filter syntax (``model``, ``datasets:train``, ``kitfile,docs``…); none means everything.
        overwrite: replace existing files (and a different Kitfile); a replaced file keeps its permission bits.
        ignore_existing: leave existing files alone instead of failing.
        store: the local store; default: the one under ``KITOPS_HOME``.
        on_progress: called with a :class:`ProgressEvent` while layers are downloaded, verified (key ``verify
            <path>``) and written (key ``unpack <path>``, counting layer bytes read).
        credentials, plain_http, tls_verify, ca_bundle: for a ModelKit read from a registry, as ``pymodelkit.pull``.
        verify: checks the ModelKit's signatures in its registry before anything is written (to the store or to
            ``directory``), also when the store holds it already; default: what the signature policy requires
            (nothing when there is no policy). Parents are not verified.

    A ModelKit (or parent) the store does not have, whose registry is not ``localhost``, is read from the registry:
    its manifest, its config and only the selected layers are downloaded into the store (each verified before it is
    committed). The store records it under its tag only when that leaves every blob of it in the store.

    Files are written under temporary names and renamed into place once complete. If anything fails while writing,
    or the call is interrupted (``KeyboardInterrupt`` included), every file and directory it created is removed, so
    ``directory`` is as it was and the same call can simply be made again; files that existed before are never
    removed (with ``overwrite``, those already replaced keep their new content). A filter that selects nothing is
    no error, as in kit: it is logged at INFO and listed in ``UnpackResult.unmatched_filters`` (the CLI warns).

    Raises:
        SignatureError: ``verify`` (or the policy) found no acceptable signature, or ``verify`` was given for a
            local-only reference (no registry host to read signatures from).
        NotFoundError: the ModelKit or a blob is not in the store (and not in a registry).
        DigestMismatchError: a blob is corrupt. RegistryError, AuthError: a registry refused or could not be reached.
        UnsafeArchiveError: a layer entry would escape ``directory``. UnpackError: a file is in the way, or a
            filter does not parse.
        KitfileError: the parent chain (``model.path`` references) has a cycle or more than 10 links.
        ModelKitError: the operating system refused a write (no space, no permission); the message names the
            full path.
    """
    store = store if store is not None else LocalStore()
    ref = _parse(reference)
    active = [f if isinstance(f, UnpackFilter) else parse_filter(f) for f in filters]
    if verify is not None and ref.is_local:
        raise SignatureError(
            f"cannot verify a local-only ModelKit: {ref.display()} has no registry host to read signatures from",
            reference=str(ref),
        )
    if verify is None and not ref.is_local:
        from pymodelkit.signing.policy import policy_verifier

        verify = policy_verifier(ref)
    pending = [verify] if verify is not None else []  # for the ModelKit asked for (the first fetch), not parents

    with contextlib.ExitStack() as stack:
        remote: list[RemoteModelKits] = []  # opened for the first ModelKit the store does not have

        def registry() -> RemoteModelKits:
            if not remote:
                from pymodelkit.registry.remote import RemoteModelKits

                opened = RemoteModelKits(store, credentials=credentials, plain_http=plain_http,
                                         tls_verify=tls_verify, ca_bundle=ca_bundle, on_progress=on_progress)
                remote.append(stack.enter_context(opened))
            return remote[0]

        def fetch(target: Reference) -> tuple[Descriptor, Manifest]:
            check = pending.pop() if pending and target == ref else None
            if target.is_local or _is_stored(store, target):
                found = store.read_manifest(target)
                if check is not None:
                    registry().verify_stored(target, found[0].digest, check)
                return found
            return registry().fetch_manifest(target, verify=check)

        steps = _plan(store, ref, active, visited=[], fetch=fetch)
        if remote:  # between planning and verification: download the selected layers of what came from a registry
            for step in steps:
                remote[0].fetch_layers(step.reference, [layer.descriptor for layer in step.layers])
    unmatched = _unmatched(active, steps)
    members = {
        id(layer): _verify_layer(store, layer, on_progress) for step in steps for layer in step.layers
    }

    target = Path(directory)
    journal = UnpackJournal(target)
    written: list[Path] = []
    kitfile_path: Path | None = None
    try:
        try:
            journal.make_target()
        except OSError as exc:
            shown = os.path.abspath(target)
            raise ModelKitError(
                f"cannot create unpack directory {shown}: {exc.strerror or exc}", path=shown, errno=exc.errno
            ) from None
        for scanned in members.values():
            if scanned is not None:
                check_tar_target(scanned, target, overwrite=overwrite, ignore_existing=ignore_existing)
        for step in steps:
            if step.write_kitfile:
                kitfile = dump_kitfile(_without_digests(step.kitfile))
                kitfile_path = write_kitfile(target, kitfile, overwrite=overwrite, journal=journal)
            for layer in step.layers:
                written += _extract_layer(
                    store,
                    layer,
                    members[id(layer)],
                    target,
                    overwrite=overwrite,
                    ignore_existing=ignore_existing,
                    journal=journal,
                    on_progress=on_progress,
                )
    except BaseException:
        journal.rollback()
        raise
    return UnpackResult(
        digest=steps[-1].digest, files=tuple(written), kitfile_path=kitfile_path, unmatched_filters=unmatched
    )


def _unmatched(filters: list[UnpackFilter], steps: list[_ModelKitStep]) -> tuple[UnpackFilter, ...]:
    """The filters that select nothing: not the Kitfile, and no layer of the ModelKit or its parents."""
    top = steps[-1]
    unmatched = []
    for wanted in filters:
        if "kitfile" in wanted.types and top.write_kitfile:
            continue
        if any(_selects_layer(wanted, step, is_parent=step is not top) for step in steps):
            continue
        logger.info("filter %s matches nothing in %s", wanted, top.reference.display())
        unmatched.append(wanted)
    return tuple(unmatched)


def _selects_layer(wanted: UnpackFilter, step: _ModelKitStep, *, is_parent: bool) -> bool:
    for kind, element in step.kitfile.elements():
        if not gets_layer(kind, element) or (is_parent and kind not in ("model", "modelpart")):
            continue
        if wanted.matches(kind, _element_name(element), element.path):
            return True
    return False


def _parse(reference: str | Reference) -> Reference:
    ref = parse_reference(reference)[0] if isinstance(reference, str) else reference
    if not ref.has_reference:
        logger.info("No tag or digest specified. Using 'latest' as default")
    return ref.with_default_tag()


def _is_stored(store: LocalStore, ref: Reference) -> bool:
    try:
        store.resolve(ref)
    except NotFoundError:
        return False
    return True


def _plan(
    store: LocalStore,
    ref: Reference,
    filters: list[UnpackFilter],
    *,
    visited: list[str],
    fetch: _FetchManifest | None = None,
) -> list[_ModelKitStep]:
    """The steps for ``ref`` and its parents, parents first. ``visited`` holds the parents followed so far (full
    references, as kit's ``unpackRecursive`` keeps them; the ModelKit asked for is not in it). ``fetch`` finds each
    manifest (default: ``store.read_manifest``) and leaves its config in the store."""
    fetch = fetch if fetch is not None else store.read_manifest
    if len(visited) > MAX_PARENT_REFERENCES:
        raise KitfileError(f"reached maximum number of model references: [{'=>'.join(visited)}]")
    descriptor, manifest = fetch(ref)
    has_kitfile = True
    if manifest.format == "modelpack":  # the Kitfile annotation, else one rebuilt from the layers (modelpack.md §8)
        kitfile = kitfile_from_modelpack(manifest, store.read_blob(manifest.config.digest))
        has_kitfile = has_kitfile_annotation(manifest)
        if not has_kitfile:
            logger.warning("Artifact does not include Kitfile: functionality may be impacted")
    else:
        kitfile = kitfile_from_json_bytes(store.read_blob(manifest.config.digest))
    steps: list[_ModelKitStep] = []
    is_parent = bool(visited)
    if kitfile.model is not None and is_modelkit_reference(kitfile.model.path):
        parent = _parse(modelkit_reference_text(kitfile.model.path))
        parent_key = str(parent)
        if parent_key in visited:
            cycle = visited[visited.index(parent_key) :]
            raise KitfileError(f"found cycle in modelkit references: [{'=>'.join([*cycle, parent_key])}]")
        parent_filters = reduce_filters_for_parent(filters)
        if parent_filters != [MATCH_NOTHING]:
            steps += _plan(store, parent, parent_filters, visited=[*visited, parent_key], fetch=fetch)
    step = _ModelKitStep(
        reference=ref,
        digest=descriptor.digest,
        kitfile=kitfile,
        write_kitfile=has_kitfile and not is_parent and should_unpack_kitfile(filters),
    )
    step.layers = _select_layers(manifest, kitfile, filters)
    steps.append(step)
    return steps


def _element_name(element: LayerElement) -> str:
    return getattr(element, "name", "") or ""


def _select_layers(manifest: Manifest, kitfile: Kitfile, filters: list[UnpackFilter]) -> list[_LayerStep]:
    layers = manifest.layers or ()
    elements = [(kind, element) for kind, element in kitfile.elements() if gets_layer(kind, element)]
    by_digest = {str(layer.digest): layer for layer in layers}
    selected: list[_LayerStep] = []
    with_info = sum(1 for _, element in elements if element.digest)
    if 0 < with_info < len(elements):
        raise UnpackError(
            f"invalid ModelKit config: only {with_info} of its {len(elements)} layered entries have layer digests"
        )
    if with_info == len(elements):
        for wanted in _SELECTION_ORDER:
            for kind, element in elements:
                if kind != wanted or not should_unpack(filters, kind, _element_name(element), element.path):
                    continue
                layer = by_digest.get(element.digest)
                if layer is None:
                    raise UnpackError(f"layer {element.digest} of {kind} {element.path!r} is not in the manifest")
                selected.append(_LayerStep(layer, parse_layer_media_type(layer.media_type), element.path))
        return selected
    # Kitfiles without digests (very old ModelKits): pair manifest layers with elements by type, in order.
    queues: dict[str, list[tuple[LayerKind, LayerElement]]] = {}
    for kind, element in elements:
        queues.setdefault(MEDIA_BASE[kind], []).append((kind, element))
    for layer in layers:
        media_type = parse_layer_media_type(layer.media_type)
        queue = queues.get(media_type.base) or []
        if not queue:
            raise ModelKitError(f"manifest layer {layer.digest} has no matching entry in the Kitfile")
        kind, element = queue.pop(0)
        if should_unpack(filters, kind, _element_name(element), element.path):
            selected.append(_LayerStep(layer, media_type, element.path))
    return selected


class _CountingReader:
    """Passes reads through, counting the bytes read (``size``) and reporting them as ``key`` progress; with
    ``hashing``, also hashing them (``hasher``), so a verification scan reads each byte once. Not seekable."""

    def __init__(
        self, raw: BinaryIO, key: str, on_progress: ProgressCallback | None, total: int, *, hashing: bool = False
    ) -> None:
        self._raw = raw
        self.hasher = hashlib.sha256() if hashing else None
        self.size = 0
        self._key = key
        self._on_progress = on_progress
        self._total = total

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._count(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = int(self._raw.readinto(buffer))  # type: ignore[attr-defined]
        self._count(memoryview(buffer)[:count])
        return count

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def _count(self, data: bytes | memoryview) -> None:
        if self.hasher is not None:
            self.hasher.update(data)
        if len(data):
            self.size += len(data)
            if self._on_progress is not None:
                self._on_progress(ProgressEvent(self._key, self.size, self._total))

    def drain(self) -> None:
        buffer = bytearray(_READ_BYTES)
        while self.readinto(buffer):
            pass

    def finish(self) -> None:
        """Report the progress as finished."""
        if self._on_progress is not None:
            self._on_progress(ProgressEvent(self._key, self.size, self._total, finished=True))


def _verify_layer(
    store: LocalStore, layer: _LayerStep, on_progress: ProgressCallback | None
) -> list[TarMember] | None:
    """Check a layer's size and digest, scanning a tar layer's entries in the same read; return the entries."""
    descriptor = layer.descriptor
    members: list[TarMember] | None = None
    with store.open_blob(descriptor.digest) as raw:
        reader = _CountingReader(raw, f"verify {layer.element_path}", on_progress, descriptor.size, hashing=True)
        scan_error: UnsafeArchiveError | None = None
        if layer.media_type.format == "tar":
            try:
                members = scan_tar(reader, compression=layer.media_type.compression)  # type: ignore[arg-type]
            except UnsafeArchiveError as exc:  # report corruption (a digest mismatch) first, if that is the cause
                scan_error = exc
        reader.drain()
    assert reader.hasher is not None
    actual = Digest("sha256", reader.hasher.hexdigest())
    if actual != descriptor.digest or reader.size != descriptor.size:
        raise DigestMismatchError(
            f"layer {descriptor.digest} ({layer.element_path}) is corrupt: its content hashes to {actual} "
            f"({reader.size} bytes, expected {descriptor.size}); nothing was unpacked",
            expected=str(descriptor.digest),
            actual=str(actual),
        ) from scan_error
    if scan_error is not None:
        raise scan_error
    return members


def _extract_layer(
    store: LocalStore,
    layer: _LayerStep,
    members: list[TarMember] | None,
    target: Path,
    *,
    overwrite: bool,
    ignore_existing: bool,
    journal: UnpackJournal,
    on_progress: ProgressCallback | None,
) -> list[Path]:
    descriptor = layer.descriptor
    compression = layer.media_type.compression
    with store.open_blob(descriptor.digest) as blob:
        progress = None
        source: BinaryIO = blob
        if on_progress is not None:
            progress = _CountingReader(blob, f"unpack {layer.element_path}", on_progress, descriptor.size)
            source = progress  # type: ignore[assignment]
        if layer.media_type.format == "tar":
            written = extract_tar(
                source,
                target,
                overwrite=overwrite,
                ignore_existing=ignore_existing,
                compression=compression,
                members=members,
                journal=journal,
            )
        else:
            annotations = descriptor.annotations or {}
            file_path = annotations.get(ANNOTATION_FILEPATH) or clean_path(layer.element_path)
            written = [
                extract_raw(
                    source,
                    target,
                    file_path=file_path,
                    metadata_json=annotations.get(ANNOTATION_FILE_METADATA),
                    expected_size=None,
                    overwrite=overwrite,
                    ignore_existing=ignore_existing,
                    compression=compression,
                    journal=journal,
                )
            ]
        if progress is not None:
            progress.finish()
        return written


def _without_digests(kitfile: Kitfile) -> Kitfile:
    clean = kitfile.copy()
    for _, element in clean.elements():
        element.digest = ""
        element.diff_id = ""
    return clean

