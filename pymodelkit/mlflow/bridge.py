"""``pack_mlflow_model``: an MLflow model URI in, a ModelKit (with the run's provenance) in the store or registry out.

Spec ``mlflow.md`` §9. The steps: fetch the model through MLflow into a work folder of ours
(:mod:`pymodelkit.mlflow.resolve`), read its provenance (:mod:`pymodelkit.mlflow.provenance`), generate the Kitfile
with :func:`pymodelkit.kitfile.generate.generate_kitfile` (the model folder is ``model/``), pack with the provenance
annotations and, if asked, push. The work folder is removed afterwards unless the caller gave one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow

from pymodelkit.errors import InvalidReferenceError, ModelKitError
from pymodelkit.kitfile import Kitfile, dump_kitfile
from pymodelkit.kitfile.generate import generate_kitfile
from pymodelkit.mlflow.provenance import Provenance, fetch_provenance, redact_uri
from pymodelkit.mlflow.resolve import (
    _fetch_checked_model,
    check_model_uri,
    check_tracking_store,
    is_local_model_uri,
    tracking_client,
)
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import Reference, parse_reference
from pymodelkit.pack.pipeline import PackResult, pack
from pymodelkit.progress import ProgressCallback
from pymodelkit.registry.credentials import CredentialSource
from pymodelkit.registry.transfer import PushResult
from pymodelkit.registry.transfer import push as push_modelkit
from pymodelkit.signing.keys import SigningKey
from pymodelkit.signing.signer import SignResult, resolve_signing_key, sign
from pymodelkit.store import LocalStore

__all__ = ["MODEL_DIR", "MlflowPackResult", "pack_mlflow_model"]

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
"""The model folder's name inside the ModelKit (``model.path`` is ``model/``)."""


@dataclass(frozen=True, slots=True)
class MlflowPackResult:
    """What :func:`pack_mlflow_model` did: the pack (and push) results, the Kitfile and the provenance recorded.

    ``reference`` is the tagged reference (``None`` for an untagged pack); ``workdir`` the kept work folder (only
    when the caller gave one: it holds ``model/`` and the generated ``Kitfile``); ``signature`` what signing did
    (with ``sign_key``).
    """

    reference: Reference | None
    digest: Digest
    kitfile: Kitfile
    provenance: Provenance
    pack: PackResult
    push: PushResult | None = None
    workdir: Path | None = None
    signature: SignResult | None = None


def pack_mlflow_model(
    model_uri: str,
    *,
    tag: str | None = None,
    push: bool = False,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    name: str | None = None,
    description: str | None = None,
    author: str | None = None,
    version: str | None = None,
    license: str = "",
    compression: str = "none",
    store: LocalStore | None = None,
    workdir: str | os.PathLike[str] | None = None,
    credentials: CredentialSource | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: str | None = None,
    on_progress: ProgressCallback | None = None,
    sign_key: SigningKey | str | os.PathLike[str] | None = None,
    sign_password: bytes | Callable[[], bytes] | None = None,
) -> MlflowPackResult:
    """Turn the MLflow model ``model_uri`` into a ModelKit, with the run's provenance inside; optionally push it.

    Args:
        model_uri: any model URI MLflow understands (``models:/<model_id>``, ``models:/<name>/<version>``,
            ``models:/<name>@<alias>``, ``runs:/<run_id>/<name>``, ``mlflow-artifacts:/…``, ``file://…``) or a
            local model folder; see :func:`pymodelkit.mlflow.resolve.fetch_model`.
        tag: ``[registry/]repository[:tag][,tag2...]`` as for :func:`pymodelkit.pack`; ``None`` packs untagged.
        push: push the ModelKit to ``tag``'s registry after packing (``tag`` must then name a registry).
        tracking_uri: the MLflow tracking store; default: MLflow's active one (``MLFLOW_TRACKING_URI``…).
        registry_uri: the MLflow model registry; default: MLflow's (usually the tracking store).
        name, description, author, version, license: the Kitfile's ``package``; defaults: the registered (else
            logged) model name, the run's description, the run's user, the registered version, none.
        compression: layer compression, as for :func:`pymodelkit.pack`.
        store: the local store; default: the one under ``KITOPS_HOME``.
        workdir: an empty (or missing) folder to download into and keep; default: a temporary folder, removed.
        credentials, plain_http, tls_verify, ca_bundle: for the push, as :func:`pymodelkit.push`.
        on_progress: layer progress while packing and blob progress while pushing.
        sign_key: after the push, sign the pushed manifest digest with this private key (or key file), as
            :func:`pymodelkit.signing.signer` does; needs ``push``. The bridge never pulls, so it has no ``verify``.
        sign_password: the key file's password (bytes or a callable); default: ``PYMODELKIT_KEY_PASSWORD``.

    Returns:
        An :class:`MlflowPackResult`.

    Raises:
        InvalidReferenceError: a ``model_uri`` that cannot name a model (refused first, before any tracking store
            is asked), a malformed ``tag``, or ``push`` without a tag naming a registry.
        NotFoundError: the URI names no run, model, version, alias or folder, or there is no ``MLmodel``.
        KitfileError: the ``MLmodel`` does not parse (an invalid MLflow model; the message names it and the line).
        ModelKitError: the tracking store does not exist, is not reachable or MLflow refuses it, or MLflow failed
            otherwise (one line naming the URI and MLflow's reason).
        PackError, RegistryError, AuthError: from packing and pushing.
    """
    check_model_uri(model_uri)
    destination = _check_tag(tag, push)
    if sign_key is not None and not push:
        raise InvalidReferenceError("sign_key needs push=True: a ModelKit is signed in its registry")
    # The key is loaded (and its password asked) before anything is downloaded or packed.
    signing_key = resolve_signing_key(sign_key, password=sign_password) if sign_key is not None else None
    signed: SignResult | None = None
    tracking = tracking_uri or mlflow.get_tracking_uri()
    client = _client(model_uri, tracking, registry_uri, explicit=tracking_uri is not None)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="pymodelkit-mlflow-")) if workdir is None else _prepare_workdir(Path(workdir))
    try:
        resolved = _fetch_checked_model(model_uri, work / MODEL_DIR, client=client, tracking_uri=tracking)
        provenance = fetch_provenance(resolved, client=client, tracking_uri=tracking)
        kitfile = _kitfile(work, provenance, name=name, description=description, author=author, version=version,
                           license=license)
        (work / "Kitfile").write_text(dump_kitfile(kitfile), encoding="utf-8")
        packed = pack(work, kitfile=kitfile, tag=tag, compression=compression, store=store,
                      on_progress=on_progress, annotations=provenance.to_annotations())
        logger.info("Packed MLflow model %s as %s", redact_uri(model_uri), packed.digest)
        pushed = None
        if destination is not None:
            pushed = push_modelkit(destination, store=store, credentials=credentials, plain_http=plain_http,
                                   tls_verify=tls_verify, ca_bundle=ca_bundle, on_progress=on_progress)
            if signing_key is not None:
                signed = sign(pushed.reference.with_digest(pushed.digest), signing_key, credentials=credentials,
                              plain_http=plain_http, tls_verify=tls_verify, ca_bundle=ca_bundle)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    return MlflowPackResult(reference=packed.reference, digest=packed.digest, kitfile=packed.kitfile,
                            provenance=provenance, pack=packed, push=pushed, workdir=None if own_dir else work,
                            signature=signed)


def _check_tag(tag: str | None, push: bool) -> Reference | None:
    """The reference to push (``None`` without ``push``); a malformed tag fails here, before any download."""
    if tag is None:
        if push:
            raise InvalidReferenceError("push=True needs a tag naming a registry (e.g. registry.example.com/ns/m:v1)")
        return None
    reference = parse_reference(tag)[0]
    if not push:
        return None
    if reference.is_local:
        raise InvalidReferenceError(f"cannot push {tag}: the tag names no registry host", reference=tag)
    return reference if reference.tag or reference.digest else reference.with_default_tag()


def _client(uri: str, tracking: str, registry_uri: str | None, *, explicit: bool) -> mlflow.MlflowClient | None:
    """The tracking client, after checking the store answers and MLflow accepts it (else a one-line
    :class:`ModelKitError` naming it); ``None`` when a local model needs no store (none configured, or one that is
    unreachable or refused: then only the MLmodel's facts are recorded, with a warning)."""
    if not is_local_model_uri(uri):
        check_tracking_store(tracking)
        return tracking_client(tracking, registry_uri)
    if not (explicit or mlflow.is_tracking_uri_set()):  # type: ignore[no-untyped-call]
        logger.info("No MLflow tracking URI set; recording only what the MLmodel file says")
        return None
    try:
        check_tracking_store(tracking)
        return tracking_client(tracking, registry_uri)
    except ModelKitError as err:
        logger.warning("%s; recording only what the MLmodel file says", err)
        return None


def _prepare_workdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise ModelKitError(f"work folder {path} is not empty", path=str(path))
    return path


def _kitfile(work: Path, provenance: Provenance, *, name: str | None, description: str | None, author: str | None,
             version: str | None, license: str) -> Kitfile:
    kitfile = generate_kitfile(
        work,
        name=name if name is not None else provenance.registered_name or provenance.model_name,
        description=description if description is not None else provenance.description.strip().splitlines()[0]
        if provenance.description.strip() else "",
        author=author if author is not None else provenance.user,
        version=version if version is not None else provenance.registered_version,
        license=license,
    )
    model = kitfile.model
    if model is None:  # fetch_model guarantees work/model/MLmodel, which generate_kitfile always makes the model
        raise ModelKitError(f"no model section generated for {work / MODEL_DIR}")
    model.name = provenance.model_name or model.name
    model.parameters = provenance.to_parameters()
    return kitfile
