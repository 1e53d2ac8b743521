"""``push`` and ``pull``: a ModelKit between the local store and a registry (spec ``kitops-modelkit.md`` §5.2, §5.3;
``oci-distribution.md`` §1, §2; STYLE rules 5, 10, 11, 13).

Each call plans first — which blobs the other side has, which can be mounted from another repository of the same
registry, which must be sent — then runs the plan on a thread pool, ``concurrency`` blobs in flight, config and layers
before the manifest. An upload retries as a whole session: after a dropped connection or a 5xx it asks the registry
where the upload stands and continues from the acknowledged offset, or restarts the blob when the registry lost the
session. Pulls resume with ``Range`` (``download.py``) and recurse into parent ModelKits named by ``model.path``.
(Over 400 lines because push and pull share the plan/progress/pool machinery; the natural split is ``push.py`` and
``pull.py`` over a shared private module.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from pymodelkit.errors import InvalidReferenceError, ModelKitError, RegistryError, StoreError
from pymodelkit.kitfile import kitfile_from_json_bytes
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.oci.reference import Reference, parse_single_reference
from pymodelkit.pack.parents import resolve_parent_chain
from pymodelkit.progress import TOTAL_PROGRESS_KEY, ProgressCallback
from pymodelkit.progress import BlobProgress as _Progress
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.download import DownloadStopped, fetch_blob
from pymodelkit.registry.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from pymodelkit.registry.upload import FileSpan, UploadStopped, run_upload
from pymodelkit.store import LocalStore
from pymodelkit.store.ingest import BlobWriter

if TYPE_CHECKING:
    from pymodelkit.registry.credentials import CredentialSource
    from pymodelkit.registry.tls import CaBundle, ClientCert
    from pymodelkit.signing.verification import ManifestVerifier

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_CONCURRENCY",
    "TOTAL_PROGRESS_KEY",
    "BlobStep",
    "PullResult",
    "PushPlan",
    "PushResult",
    "plan_push",
    "pull",
    "push",
]

logger = logging.getLogger(__name__)

# Both chosen by benchmarks/push_pull.py (its README has the tables): pushes of 4 x 256 MiB layers to a loopback
# docker-registry 2.8 on 2 CPUs, best of 2-4 interleaved runs, three sweeps. Concurrency: 1 is clearly slower
# (138-145 MB/s); 2, 4, 5 and 8 are the same within the runs' 30-50 % spread (push 195-229 MB/s, pull 240-294 MB/s,
# a different one "best" in each sweep), so kit's 5 (oras.Copy; containerd 3, containers/image 6) stays: the plateau
# holds it, and more streams help where latency, not CPU, is the limit. Chunk size: 128 MiB had the best mean over
# the concurrencies in both full sweeps (205 and 203 MB/s against 184-194 for 64 MiB, 189-191 for 32 MiB, 181-189
# for 16 MiB; one PUT per layer 175-195) - a small margin, but fewer round trips and never worse; kit uses 100 MiB.
# Re-measured for issue #6 (concurrency 5, best of 3): 128 MiB 151.7, PUT 150.6, 32 MiB 142.1, 64 MiB 127.0 MB/s -
# still first, within the noise of PUT; the registry's own hashing (about 6 CPU-seconds per GiB received on this
# machine, one core per upload) is the limit, not the chunking, so it stays.
DEFAULT_CONCURRENCY = 5
DEFAULT_CHUNK_BYTES = 128 << 20  # blobs smaller than this go in one PUT; larger ones in PATCHes of this size
_MIN_CHUNK_BYTES = 1

BlobAction = Literal["skip", "mount", "upload"]
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class BlobStep:
    """What a push does with one blob: ``skip`` (the repository has it), ``mount`` it from ``mount_from`` (another
    repository of the registry), or ``upload`` it."""

    descriptor: Descriptor
    action: BlobAction
    mount_from: str | None = None


@dataclass(frozen=True, slots=True)
class PushPlan:
    """A push, decided before anything is sent: the manifest and, per distinct blob, its :class:`BlobStep`."""

    destination: Reference
    manifest_digest: Digest
    blobs: tuple[BlobStep, ...]

    @property
    def bytes_to_send(self) -> int:
        """The size of the blobs to upload (a mount that falls back to uploading is not counted)."""
        return sum(step.descriptor.size for step in self.blobs if step.action == "upload")


@dataclass(frozen=True, slots=True)
class PushResult:
    """What ``push`` did: the reference and manifest digest it pushed, and which blobs it uploaded, mounted or
    found already there; ``bytes_uploaded`` is the size of the uploaded blobs."""

    reference: Reference
    digest: Digest
    uploaded: tuple[Digest, ...]
    mounted: tuple[Digest, ...]
    skipped: tuple[Digest, ...]
    bytes_uploaded: int


@dataclass(frozen=True, slots=True)
class PullResult:
    """What ``pull`` did: the reference and manifest, the blobs fetched and those the store had, and the parent
    ModelKits pulled with it (nearest first)."""

    reference: Reference
    digest: Digest
    manifest: Manifest
    fetched: tuple[Digest, ...]
    present: tuple[Digest, ...]
    bytes_fetched: int
    parents: tuple[Reference, ...] = ()


def push(
    reference: str | Reference,
    destination: str | Reference | None = None,
    *,
    store: LocalStore | None = None,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: CaBundle | None = None,
    client_cert: ClientCert | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    on_progress: ProgressCallback | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> PushResult:
    """Push a ModelKit from the local store to a registry.

    Args:
        reference: the local ModelKit (``registry/repository[:tag|@digest]``; no tag means ``latest``).
        destination: where to push; default: ``reference`` itself. No tag means ``latest``.
        store: the local store; default: the one under ``KITOPS_HOME``.
        credentials: the credential source; default: the documented chain.
        plain_http, tls_verify, ca_bundle, client_cert: as :class:`RegistryClient`.
        concurrency: blobs in flight at once (at least 1).
        chunk_bytes: blobs of at least this size are sent in PATCH chunks of this size; smaller ones in one PUT.
        on_progress: per-blob events (key: short digest) and a ``total`` event; called from worker threads.
        retry: retries of each request and of each blob's upload session.

    Raises:
        InvalidReferenceError: a malformed reference, several tags, or a destination without registry.
        NotFoundError: the ModelKit is not in the local store.
        RegistryError: the registry refused or could not be reached; names the blob, the OCI code and message.
        AuthError: credentials missing or refused.
    """
    _check_options(concurrency, chunk_bytes)
    store = store if store is not None else LocalStore()
    source = _parse(reference, "pushing")
    target = source if destination is None else _parse(destination, "pushing")
    if target.is_local:
        raise InvalidReferenceError(
            f"registry is required when pushing: {target.display()} has no registry host", reference=str(target)
        )
    descriptor, manifest = store.read_manifest(source)
    manifest_bytes = store.read_blob(descriptor.digest, max_bytes=MAX_MANIFEST_BYTES)
    if target.digest is not None and target.digest != descriptor.digest:
        raise InvalidReferenceError(
            f"cannot push {source.display()} as {target}: its manifest digest is {descriptor.digest}",
            reference=str(target),
        )
    with RegistryClient(target.registry, credentials=credentials, plain_http=plain_http, tls_verify=tls_verify,
                        ca_bundle=ca_bundle, client_cert=client_cert, retry=retry) as client:
        plan = plan_push(client, store, source, target, manifest, manifest_digest=descriptor.digest,
                         concurrency=concurrency)
        outcome = _run_push(client, store, plan, concurrency=concurrency, chunk_bytes=chunk_bytes,
                            on_progress=on_progress, retry=retry)
        client.put_manifest(target.repository, target.tag or str(descriptor.digest), manifest_bytes,
                            manifest.media_type or MEDIA_TYPE_MANIFEST)
    logger.info("pushed %s to %s", descriptor.digest, target)
    uploaded = tuple(d for d, action in outcome.items() if action == "upload")
    sizes = {step.descriptor.digest: step.descriptor.size for step in plan.blobs}
    return PushResult(
        reference=target,
        digest=descriptor.digest,
        uploaded=uploaded,
        mounted=tuple(d for d, action in outcome.items() if action == "mount"),
        skipped=tuple(step.descriptor.digest for step in plan.blobs if step.action == "skip"),
        bytes_uploaded=sum(sizes[d] for d in uploaded),
    )


def plan_push(
    client: RegistryClient,
    store: LocalStore,
    source: Reference,
    destination: Reference,
    manifest: Manifest,
    *,
    manifest_digest: Digest,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> PushPlan:
    """Decide, per distinct blob of ``manifest``, whether to skip, mount or upload it (HEAD requests only).

    Mount sources are repositories of the destination registry that the local store knows hold the blob: the
    source's own repository first, then any other locally stored ModelKit from that registry.
    """
    blobs = list({d.digest: d for d in [manifest.config, *(manifest.layers or ())]}.values())
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(blobs)))) as pool:
        present = list(pool.map(lambda d: client.has_blob(destination.repository, d.digest, d.size), blobs))
    known = _local_repositories_by_blob(store, source, destination)
    steps: list[BlobStep] = []
    for blob, has in zip(blobs, present, strict=True):
        if has:
            steps.append(BlobStep(blob, "skip"))
        elif known.get(blob.digest):
            steps.append(BlobStep(blob, "mount", known[blob.digest][0]))
        else:
            steps.append(BlobStep(blob, "upload"))
    return PushPlan(destination=destination, manifest_digest=manifest_digest, blobs=tuple(steps))


def pull(
    reference: str | Reference,
    *,
    store: LocalStore | None = None,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: CaBundle | None = None,
    client_cert: ClientCert | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    verify: ManifestVerifier | None = None,
) -> PullResult:
    """Pull a ModelKit (and the parents its ``model.path`` names) from a registry into the local store.

    The manifest must be an OCI image manifest of a KitOps or ModelPack artifact. Every blob goes through the
    store's ingest and is checked for size and digest; none is committed until every one of the ModelKit checked
    out, so a failed pull leaves nothing of it in the store. The manifest is added with the tag (none when pulled
    by digest).

    ``verify`` (e.g. ``pymodelkit.signing.verifier([key])``) checks the manifest's signatures right after it is
    fetched, before any blob is downloaded; default: what the signature policy requires for ``reference`` (nothing
    when there is no policy). Only the ModelKit asked for is verified, not its parents.

    Raises:
        InvalidReferenceError: a malformed reference, several tags, or no registry host.
        RegistryError: not found (404, naming the tag or digest), refused, unreachable, or failing past the retries.
        AuthError: credentials missing or refused. DigestMismatchError: bytes that do not match their digest.
        ModelKitError: the reference is not a ModelKit. KitfileError: a parent cycle or a chain over 10.
        SignatureError: ``verify`` (or the policy) found no acceptable signature; nothing was stored.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    store = store if store is not None else LocalStore()
    ref = _parse(reference, "pulling")
    if verify is None and not ref.is_local:
        from pymodelkit.signing.policy import policy_verifier

        verify = policy_verifier(ref)
    clients: dict[str, RegistryClient] = {}

    def client_for(registry: str) -> RegistryClient:
        if registry not in clients:
            clients[registry] = RegistryClient(registry, credentials=credentials, plain_http=plain_http,
                                               tls_verify=tls_verify, ca_bundle=ca_bundle, client_cert=client_cert,
                                               retry=retry)
        return clients[registry]

    def pull_one(target: Reference, check: ManifestVerifier | None = None) -> PullResult:
        if target.is_local:
            raise InvalidReferenceError(
                f"registry is required when pulling: {target.display()} has no registry host", reference=str(target)
            )
        return _pull_modelkit(client_for(target.registry), store, target, concurrency=concurrency,
                              on_progress=on_progress, retry=retry, verify=check)

    try:
        result = pull_one(ref, verify)
        parents: list[Reference] = []
        if result.manifest.format == "kitops":
            kitfile = kitfile_from_json_bytes(store.read_blob(result.manifest.config.digest))

            def fetch_parent(parent: Reference) -> tuple[Manifest, bytes]:
                parents.append(parent)
                if parent.is_local:  # a parent packed locally, as kit allows: read it from the store
                    _, local = store.read_manifest(parent)
                    return local, store.read_blob(local.config.digest)
                pulled = pull_one(parent)
                return pulled.manifest, store.read_blob(pulled.manifest.config.digest)

            resolve_parent_chain(kitfile, ref.display(), fetch_parent)
    finally:
        for client in clients.values():
            client.close()
    return PullResult(
        reference=result.reference, digest=result.digest, manifest=result.manifest, fetched=result.fetched,
        present=result.present, bytes_fetched=result.bytes_fetched, parents=tuple(parents),
    )


# ----- push internals ------------------------------------------------------------------------------------------


def _run_push(
    client: RegistryClient,
    store: LocalStore,
    plan: PushPlan,
    *,
    concurrency: int,
    chunk_bytes: int,
    on_progress: ProgressCallback | None,
    retry: RetryPolicy,
) -> dict[Digest, BlobAction]:
    work = [step for step in plan.blobs if step.action != "skip"]
    progress = _Progress(on_progress, [(_key(s.descriptor.digest), s.descriptor.size) for s in work])
    stop = threading.Event()

    def run(step: BlobStep) -> BlobAction:
        return _push_blob(client, store, plan.destination.repository, step, chunk_bytes=chunk_bytes,
                          retry=retry, progress=progress, stop=stop)

    outcome = _run_all(work, run, concurrency, stop)
    return {step.descriptor.digest: action for step, action in zip(work, outcome, strict=True)}


def _push_blob(
    client: RegistryClient,
    store: LocalStore,
    repository: str,
    step: BlobStep,
    *,
    chunk_bytes: int,
    retry: RetryPolicy,
    progress: _Progress,
    stop: threading.Event,
) -> BlobAction:
    """Upload (or mount) one blob from the store, retrying the whole session; returns what was done in the end."""
    digest, size = step.descriptor.digest, step.descriptor.size
    key = _key(digest)
    fd = os.open(store.blob_path(digest), os.O_RDONLY)
    try:
        if os.fstat(fd).st_size != size:
            raise StoreError(f"blob {digest} in local storage is {os.fstat(fd).st_size} bytes, manifest says {size}")

        def sent(position: int) -> None:
            progress.update(key, position)

        outcome = run_upload(
            client, repository, digest, size,
            span=lambda offset, length: FileSpan(fd, offset, length, on_sent=sent),
            chunk_bytes=chunk_bytes, retry=retry, on_offset=sent, mount_from=step.mount_from, stop=stop,
            failed=lambda error, attempts: _blob_error(client, repository, digest, error, attempts),
        )
    finally:
        os.close(fd)
    progress.update(key, size, finished=True)
    return "mount" if outcome == "mounted" else "upload"


def _blob_error(
    client: RegistryClient, repository: str, digest: Digest, error: RegistryError, attempts: int
) -> RegistryError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return type(error)(
        f"pushing blob {digest} to {client.registry}/{repository} failed{tries}: {error.message}",
        method=error.method, url=error.url, status=error.status, code=error.code, oci_message=error.oci_message,
        detail=error.detail, errors=error.errors, is_temporary=error.is_temporary,
    )


def _local_repositories_by_blob(
    store: LocalStore, source: Reference, destination: Reference
) -> dict[Digest, list[str]]:
    """Repositories of the destination registry (other than the destination) that local ModelKits came from."""
    found: dict[Digest, list[str]] = {}
    prefix = destination.registry + "/"
    keys = [source.repo_key] + [k for k in store.list_repositories() if k != source.repo_key]
    for key in keys:
        if not key.startswith(prefix) or key == destination.repo_key:
            continue
        repository = key[len(prefix):]
        for kit in store.list_modelkits(key):
            for blob in [kit.manifest.config, *(kit.manifest.layers or ())]:
                repos = found.setdefault(blob.digest, [])
                if repository not in repos:
                    repos.append(repository)
    return found


# ----- pull internals ------------------------------------------------------------------------------------------


def _pull_modelkit(
    client: RegistryClient,
    store: LocalStore,
    ref: Reference,
    *,
    concurrency: int,
    on_progress: ProgressCallback | None,
    retry: RetryPolicy,
    verify: ManifestVerifier | None = None,
) -> PullResult:
    fetched = client.fetch_manifest(ref.repository, ref.tag or str(ref.digest))  # digest-checked
    manifest = _parse_model_manifest(ref, fetched.data, fetched.media_type)
    if verify is not None:  # before any blob is downloaded or the manifest recorded
        verify(client, ref, fetched.digest)
    blobs = list({d.digest: d for d in [manifest.config, *(manifest.layers or ())]}.values())
    present = [d for d in blobs if store.has_blob(d.digest)]
    missing = [d for d in blobs if not store.has_blob(d.digest)]
    progress = _Progress(on_progress, [(_key(d.digest), d.size) for d in missing])
    stop = threading.Event()

    # Every blob is downloaded and verified before any is committed. A verified writer is parked (its fd closed, the
    # file kept for the commit), so the pull holds O(concurrency) open files, not one per layer (EMFILE past 1024).
    # Once the pull has ended (``closed``: committed, failed, or interrupted twice so that a worker outlived the
    # wait), a worker aborts its own writer instead of handing it over.
    verified: list[BlobWriter] = []
    lock = threading.Lock()
    closed = False

    def run(blob: Descriptor) -> bool:
        key = _key(blob.digest)
        writer = fetch_blob(client, ref.repository, blob, store, retry=retry, stop=stop,
                            on_bytes=lambda held: progress.update(key, held))
        if writer is not None:
            try:
                writer.park()
                with lock:
                    kept = not closed
                    if kept:
                        verified.append(writer)
            except BaseException:
                writer.abort()
                raise
            if not kept:
                writer.abort()
                raise DownloadStopped(f"blob {blob.digest}: the pull of {ref} has ended")
        progress.update(key, blob.size, finished=True)
        return writer is not None

    try:
        _run_all(missing, run, concurrency, stop)
        for writer in verified:
            writer.commit(mode=0o600)
    finally:
        with lock:
            closed = True
        for writer in verified:
            writer.abort()  # after a failure: nothing of this pull is left in the store
    store.add_manifest(ref.repo_key, fetched.data, tags=(ref.tag,) if ref.tag else ())
    logger.info("pulled %s as %s", fetched.digest, ref)
    return PullResult(
        reference=ref, digest=fetched.digest, manifest=manifest, fetched=tuple(d.digest for d in missing),
        present=tuple(d.digest for d in present), bytes_fetched=sum(d.size for d in missing),
    )


def _parse_model_manifest(ref: Reference, data: bytes, media_type: str) -> Manifest:
    if media_type and media_type != MEDIA_TYPE_MANIFEST:
        raise ModelKitError(f"reference {ref} is not an image manifest (it is {media_type})")
    manifest = Manifest.parse(data)
    if manifest.media_type and manifest.media_type != MEDIA_TYPE_MANIFEST:
        raise ModelKitError(f"reference {ref} is not an image manifest (it is {manifest.media_type})")
    try:
        manifest.format  # noqa: B018 - raises for artifacts that are not models
    except ModelKitError:
        raise ModelKitError(f"reference {ref} does not refer to a model") from None
    return manifest


# ----- shared --------------------------------------------------------------------------------------------------


def _run_all(items: Sequence[_T], run: Callable[[_T], _R], concurrency: int, stop: threading.Event) -> list[_R]:
    """Run ``run`` over ``items`` on ``concurrency`` threads; the first failure stops the rest and is raised.

    Stopping sets ``stop`` (which ``run`` watches) and drops the items not started; the call returns once every
    running one has ended. Interrupted while waiting (``KeyboardInterrupt``), it stops them the same way, waits, and
    raises the interrupt; a second interrupt during that wait is raised at once.
    """
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items))), thread_name_prefix="pymodelkit")
    futures: list[Future[_R]] = []
    try:
        for item in items:
            futures.append(pool.submit(run, item))
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        if len(futures) < len(items) or not all(f.done() for f in futures):
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    first = next((e for e in errors if not isinstance(e, (UploadStopped, DownloadStopped))), None)
    if first is not None:
        raise first
    return [f.result() for f in futures]


def _parse(reference: str | Reference, doing: str) -> Reference:
    ref = parse_single_reference(reference)
    if not ref.has_reference:
        logger.info("No tag specified for %s. Using 'latest' as default ('%s:latest')", doing, ref)
    return ref.with_default_tag()


def _check_options(concurrency: int, chunk_bytes: int) -> None:
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if chunk_bytes < _MIN_CHUNK_BYTES:
        raise ValueError("chunk_bytes must be at least 1")


def _key(digest: Digest) -> str:
    return digest.short()
