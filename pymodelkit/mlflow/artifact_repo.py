"""``ModelKitArtifactRepository``: MLflow's artifact repository for ``modelkit://`` URIs (spec ``mlflow.md`` §7,
§10; ``spec/mlflow-plugin.md``).

Registered as the ``modelkit`` entry point of the ``mlflow.artifact_repository`` group, so that wherever
``pymodelkit[mlflow]`` is installed, ``mlflow.pyfunc.load_model("modelkit://registry.example.com/team/churn:v3")``,
the flavor loaders, ``mlflow.artifacts.download_artifacts``/``list_artifacts`` and ``models:/name/N`` versions whose
source is a ``modelkit://`` URI read ModelKits from OCI registries. What a URI names (:mod:`.modelkit_uri` parses it):

* ``modelkit://REGISTRY/REPO:TAG`` (or ``@sha256:…``), nothing after the reference: the ModelKit's MLflow model,
  the folder holding ``MLmodel`` (found in the model layers, else in the code layers). A ModelKit without one is
  an MLflow ``RESOURCE_DOES_NOT_EXIST`` error.
* ``…/PATH``: that file or folder of the ModelKit as ``unpack`` lays it out (Kitfile paths: ``/model``,
  ``/data/train.csv``, ``/Kitfile``). A ``PATH`` that no Kitfile entry covers is looked up inside the MLflow model
  folder, so that what MLflow itself appends to a model URI (``…/MLmodel``) resolves.
* ``…/.``: every file of the ModelKit.

Reading goes through :func:`pymodelkit.unpack` with filters: only the layers a request needs are downloaded, into
the local store (verified before they are committed), so a second load downloads no blob; the credential chain,
the loopback plain-HTTP rule and the signature-verification policy are unpack's. Writing (``log_artifact(s)``)
stages the files under the URI's path, generates a Kitfile as ``init`` does (an ``MLmodel`` folder becomes the
model) unless the files bring one, packs and pushes to the URI's tag: every call publishes a new ModelKit.
Every pymodelkit failure reaches MLflow as an :class:`~mlflow.exceptions.MlflowException` with an error code
(``RESOURCE_DOES_NOT_EXIST``, ``UNAUTHENTICATED``, ``PERMISSION_DENIED``, ``TEMPORARILY_UNAVAILABLE``, …), a
one-line message naming the URI, and the pymodelkit error as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    DATA_LOSS,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
    UNAUTHENTICATED,
)
from mlflow.store.artifact.artifact_repo import ArtifactRepository

from pymodelkit.errors import (
    AuthError,
    DigestMismatchError,
    InvalidReferenceError,
    ModelKitError,
    NotFoundError,
    PackError,
    RegistryError,
    SignatureError,
    UnsafeArchiveError,
)
from pymodelkit.kitfile import Kitfile, is_modelkit_reference, read_kitfile
from pymodelkit.kitfile.generate import generate_kitfile
from pymodelkit.kitfile.mlmodel import MLMODEL_FILE
from pymodelkit.kitfile.paths import clean_path
from pymodelkit.mlflow.modelkit_uri import WHOLE_MODELKIT, ModelKitURI, join_artifact_path, parse_modelkit_uri
from pymodelkit.mlflow.provenance import redact_uri
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import Reference
from pymodelkit.pack.pipeline import pack
from pymodelkit.pack.plan import gets_layer
from pymodelkit.registry.transfer import push
from pymodelkit.unpack.filters import UnpackFilter
from pymodelkit.unpack.unpacker import unpack

if TYPE_CHECKING:
    from pymodelkit.registry.client import RegistryClient
    from pymodelkit.signing.verification import ManifestVerifier

__all__ = ["ModelKitArtifactRepository", "verify_modelkits"]

logger = logging.getLogger(__name__)

KITFILE_NAME = "Kitfile"
_BASE_PARAMETERS = frozenset(inspect.signature(ArtifactRepository.__init__).parameters) - {"self", "artifact_uri"}
_KIND_FILTER = {"model": "model", "modelpart": "model", "code": "code", "dataset": "datasets", "docs": "docs",
                "prompt": "prompts", "mcpserver": "mcpservers"}
_UNSAFE_NAME_CHARS = str.maketrans({":": "_", "@": "_"})


_verifiers: list[ManifestVerifier] = []  # one per active verify_modelkits() block, in any thread
_verifiers_lock = threading.Lock()


@contextlib.contextmanager
def verify_modelkits(
    keys: Sequence[str | os.PathLike[str]], *, annotations: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Inside the block, every ``modelkit://`` read in this process checks the ModelKit's signatures against
    ``keys`` (public key files) and ``annotations`` before anything is stored or loaded, as ``pull --verify``::

        with verify_modelkits(["cosign.pub"]):
            model = mlflow.pyfunc.load_model("modelkit://registry.example.com/team/churn:v3")

    Process-wide (MLflow may read on its own threads): while several blocks are active, in one thread or several,
    a ModelKit must verify under every one of them, so no block weakens another's check. Outside any block the
    signature policy applies (``docs/signing.md``). A ModelKit that does not verify fails with
    ``PERMISSION_DENIED``.

    Raises:
        SigningKeyError: a key file cannot be read (at the start of the block).
    """
    from pymodelkit.signing.verification import verifier

    check = verifier(keys, annotations=annotations)
    with _verifiers_lock:
        _verifiers.append(check)
    try:
        yield
    finally:
        with _verifiers_lock:
            _verifiers.remove(check)


def _active_verifier() -> ManifestVerifier | None:
    with _verifiers_lock:
        active = tuple(_verifiers)
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def every(client: RegistryClient, ref: Reference, digest: Digest) -> None:
        for check in active:
            check(client, ref, digest)

    return every


class _PathNotFound(NotFoundError):
    """A path the ModelKit does not hold (as opposed to a ModelKit that is not there)."""


class _NoMlflowModel(NotFoundError):
    """A ModelKit without a folder holding ``MLmodel``."""


class ModelKitArtifactRepository(ArtifactRepository):
    """MLflow's view of ModelKits: ``modelkit://REGISTRY/REPOSITORY(:TAG|@DIGEST)[/PATH]``.

    MLflow constructs it with the URI up to the last ``/`` (e.g. ``modelkit://host/team``) and asks for the rest
    (``churn:v3``); every call joins the two and parses them. Accepts the keyword arguments of every MLflow the
    ``pymodelkit[mlflow]`` extra allows (``tracking_uri`` and ``registry_uri`` from MLflow 3.1.4 on, anything
    later), passing on to the base class only those it takes.
    """

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None, **kwargs: Any
    ) -> None:
        with _mlflow_errors(artifact_uri, "use"):
            parse_modelkit_uri(artifact_uri)
        given = {"tracking_uri": tracking_uri, "registry_uri": registry_uri, **kwargs}
        super().__init__(artifact_uri, **{k: v for k, v in given.items() if k in _BASE_PARAMETERS})
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri

    # --- reading -------------------------------------------------------------------------------------------------

    def download_artifacts(self, artifact_path: str | None = None, dst_path: str | None = None) -> str:
        """Fetch what ``artifact_path`` names into ``dst_path`` (created if missing; default: a new temp folder) and
        return its local path: ``dst_path/<artifact_path>`` with ``:`` and ``@`` made ``_``, or ``dst_path`` itself
        when ``artifact_path`` is empty (the files are then written directly into it)."""
        uri = join_artifact_path(self.artifact_uri, artifact_path)
        with _mlflow_errors(uri, "download"):
            target = parse_modelkit_uri(uri)
            target.require_reference()
            destination = Path(dst_path).resolve() if dst_path else Path(tempfile.mkdtemp(prefix="modelkit-"))
            destination.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".modelkit-", dir=destination))
            try:
                selected = _ModelKitFiles(target, staging).select()
                return str(_place(selected, destination, artifact_path or ""))
            except BaseException:
                if not dst_path:  # a temp folder of ours: nothing to hand back
                    shutil.rmtree(destination, ignore_errors=True)
                raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` (paths relative to this repository's URI); an empty list
        for a file or a path the ModelKit does not hold."""
        uri = join_artifact_path(self.artifact_uri, path)
        with _mlflow_errors(uri, "list"), tempfile.TemporaryDirectory(prefix="modelkit-list-") as staging:
            target = parse_modelkit_uri(uri)
            target.require_reference()
            try:
                selected = _ModelKitFiles(target, Path(staging)).select()
            except _PathNotFound:
                return []
            if not selected.is_dir():
                return []
            prefix = _clean_relative(path or "")
            rows = []
            for child in sorted(selected.iterdir(), key=lambda p: p.name):
                relative = f"{prefix}/{child.name}" if prefix else child.name
                is_dir = child.is_dir()
                rows.append(FileInfo(relative, is_dir, None if is_dir else child.stat().st_size))
            return rows

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        """Fetch the one file ``remote_file_path`` to ``local_path`` (MLflow's per-file download hook)."""
        uri = join_artifact_path(self.artifact_uri, remote_file_path)
        with _mlflow_errors(uri, "download"), tempfile.TemporaryDirectory(prefix="modelkit-file-") as staging:
            target = parse_modelkit_uri(uri)
            target.require_reference()
            selected = _ModelKitFiles(target, Path(staging)).select()
            if not selected.is_file():
                raise _PathNotFound(f"{target.path or 'the reference'} is a folder, not a file")
            shutil.copyfile(selected, local_path)

    # --- writing -------------------------------------------------------------------------------------------------

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Pack ``local_file`` (under this URI's path and ``artifact_path``) into a new ModelKit and push it to the
        URI's tag."""
        with _mlflow_errors(self.artifact_uri, "log to"):
            source = Path(local_file)
            if not source.is_file():
                raise NotFoundError(f"no such file: {local_file}", path=str(local_file))
            self._publish(lambda where: shutil.copy2(source, _mkdirs(where) / source.name), artifact_path)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Pack the files of ``local_dir`` (under this URI's path and ``artifact_path``) into a new ModelKit and push
        it to the URI's tag. A ``Kitfile`` at the top of the staged files is used as it is; otherwise one is
        generated as ``pymodelkit init`` would (an ``MLmodel`` folder becomes the model)."""
        with _mlflow_errors(self.artifact_uri, "log to"):
            source = Path(local_dir)
            if not source.is_dir():
                raise NotFoundError(f"no such folder: {local_dir}", path=str(local_dir))
            self._publish(lambda where: shutil.copytree(source, where, dirs_exist_ok=True), artifact_path)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Refused: a ModelKit is immutable (remove its tag with ``pymodelkit remove --remote``)."""
        uri = join_artifact_path(self.artifact_uri, artifact_path)
        raise MlflowException(
            f"cannot delete artifacts of {redact_uri(uri)}: a ModelKit is immutable "
            "(remove its tag with 'pymodelkit remove --remote')",
            error_code=INVALID_PARAMETER_VALUE,
        )

    def _publish(self, stage: Callable[[Path], object], artifact_path: str | None) -> None:
        target = parse_modelkit_uri(self.artifact_uri)
        reference = target.require_reference()
        if reference.digest is not None:
            raise InvalidReferenceError(
                f"cannot log artifacts to {redact_uri(self.artifact_uri)}: a digest names an existing ModelKit; "
                "log to a tag", reference=str(reference),
            )
        base = "" if target.path == WHOLE_MODELKIT else target.path
        inner = _clean_relative(join_artifact_path(base, artifact_path) if base else (artifact_path or ""))
        with tempfile.TemporaryDirectory(prefix="modelkit-log-") as work:
            root = Path(work)
            stage(root / inner if inner else root)
            given = root / KITFILE_NAME
            kitfile = given if given.is_file() else generate_kitfile(root, name=reference.repository.rsplit("/", 1)[-1])
            packed = pack(root, kitfile=kitfile, tag=str(reference))
            logger.info("Packed %s as %s", reference.display(), packed.digest)
            if not reference.is_local:
                push(reference)


class _ModelKitFiles:
    """Lays out what one parsed URI names from one ModelKit under ``staging`` and returns its path.

    ``staging/kit`` receives the layers (as ``unpack`` lays them out), ``staging/meta`` the Kitfile when it is
    needed to choose layers. Every ``unpack`` after the first reads the manifest digest the first resolved (a tag
    moved meanwhile cannot mix two ModelKits).
    """

    def __init__(self, target: ModelKitURI, staging: Path) -> None:
        self.target = target
        self.reference: Reference = target.require_reference()
        self.kit = staging / "kit"
        self.meta = staging / "meta"
        self._pinned: Reference | None = None  # the reference at the digest the first unpack resolved
        self._kitfile: Kitfile | None = None

    def select(self) -> Path:
        path = self.target.path
        if path == WHOLE_MODELKIT:
            self._unpack([])
            return self.kit
        if not path:
            return self.model_folder()
        if path == KITFILE_NAME:
            self.kitfile()
            return self.meta / KITFILE_NAME
        filters = self._filters_for(path)
        if filters:
            self._unpack(filters)
            if (self.kit / path).exists():
                return self.kit / path
            raise _PathNotFound(f"ModelKit {self.reference} holds no file or folder {path!r}")
        try:
            inside = self.model_folder() / path
        except _NoMlflowModel:
            inside = None
        if inside is None or not inside.exists():
            raise _PathNotFound(f"ModelKit {self.reference} holds no file or folder {path!r} "
                                "(neither among its Kitfile paths nor in an MLflow model)")
        return inside

    def model_folder(self) -> Path:
        """The folder holding ``MLmodel``: from the model layers (and parents), else from the code layers."""
        self._unpack([UnpackFilter(frozenset({"model"}))])
        found = self._find_mlmodel()
        if found is None:
            kitfile = self.kitfile()
            if kitfile.code:
                self._unpack([UnpackFilter(frozenset({"code"}))])
                found = self._find_mlmodel()
            if found is None:
                raise _NoMlflowModel(f"ModelKit {self.reference} holds no MLflow model: {self._no_model_reason()}",
                                     reference=str(self.reference))
        return found

    def kitfile(self) -> Kitfile:
        if self._kitfile is None:
            self._unpack_into(self.meta, [UnpackFilter(frozenset({"kitfile"}))])
            self._kitfile = read_kitfile(self.meta / KITFILE_NAME)
        return self._kitfile

    def _unpack(self, filters: Sequence[UnpackFilter]) -> None:
        self._unpack_into(self.kit, filters)

    def _unpack_into(self, destination: Path, filters: Sequence[UnpackFilter]) -> None:
        """The first unpack resolves the reference (and checks its signature under the policy); the later ones read
        that very manifest by digest, so a tag moved meanwhile cannot mix two ModelKits and nothing is verified
        twice."""
        if self._pinned is not None:
            unpack(self._pinned, destination, filters=filters, overwrite=True)
            return
        result = unpack(self.reference, destination, filters=filters, overwrite=True, verify=_active_verifier())
        self._pinned = self.reference.with_digest(result.digest)

    def _filters_for(self, path: str) -> list[UnpackFilter]:
        """One filter per Kitfile entry whose path is ``path``, holds it, or lies inside it."""
        filters = []
        for kind, element in self.kitfile().elements():
            if not gets_layer(kind, element):
                continue
            if kind == "model" and is_modelkit_reference(element.path):
                filters.append(UnpackFilter(frozenset({"model"})))  # a parent's model: its paths are its own
                continue
            own = clean_path(element.path)
            if own == "." or own == path or path.startswith(own + "/") or own.startswith(path + "/"):
                filters.append(UnpackFilter(frozenset({_KIND_FILTER[kind]}), frozenset({element.path})))
        return filters

    def _find_mlmodel(self) -> Path | None:
        if not self.kit.is_dir():
            return None
        folders = sorted({p.parent for p in self.kit.rglob(MLMODEL_FILE) if p.is_file()})
        outermost = [p for p in folders if not any(p != q and p.is_relative_to(q) for q in folders)]
        if len(outermost) <= 1:
            return outermost[0] if outermost else None
        model = self.kitfile().model
        if model is not None and not is_modelkit_reference(model.path):
            preferred = self.kit / clean_path(model.path)
            if preferred in outermost:
                return preferred
        names = ", ".join(p.relative_to(self.kit).as_posix() for p in outermost)
        raise InvalidReferenceError(f"ModelKit {self.reference} holds several MLflow models ({names}): add the "
                                    "folder's path to the URI", reference=str(self.reference))

    def _no_model_reason(self) -> str:
        model = self.kitfile().model
        if model is None:
            return "its Kitfile has no model section"
        return f"no {MLMODEL_FILE} file in its model ({model.path!r}) or code layers"


def _place(selected: Path, destination: Path, artifact_path: str) -> Path:
    """Move ``selected`` to where MLflow expects ``artifact_path`` under ``destination``; return that path."""
    relative = posixpath.normpath(artifact_path.strip("/")) if artifact_path.strip("/") else "."
    if relative == ".":
        if selected.is_file():
            final = destination / selected.name
            _replace(selected, final)
            return final
        for child in list(selected.iterdir()):
            _replace(child, destination / child.name)
        return destination
    final = destination.joinpath(*(part.translate(_UNSAFE_NAME_CHARS) for part in relative.split("/")))
    final.parent.mkdir(parents=True, exist_ok=True)
    _replace(selected, final)
    return final


def _replace(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    os.replace(source, target)


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean_relative(path: str) -> str:
    cleaned = posixpath.normpath(path.strip("/")) if path.strip("/") else ""
    if cleaned == ".":
        return ""
    if cleaned == ".." or cleaned.startswith("../"):
        raise InvalidReferenceError(f"artifact path {path!r} climbs out of the ModelKit", reference=path)
    return cleaned


@contextlib.contextmanager
def _mlflow_errors(uri: str, doing: str) -> Iterator[None]:
    """Re-raise pymodelkit's errors as MlflowException (one line naming the URI; the error as ``__cause__``)."""
    try:
        yield
    except MlflowException:
        raise
    except ModelKitError as err:
        raise MlflowException(f"cannot {doing} {redact_uri(uri)}: {err}", error_code=_error_code(err)) from err


def _error_code(err: ModelKitError) -> int:
    if isinstance(err, SignatureError):
        return int(PERMISSION_DENIED)
    if isinstance(err, AuthError):
        return int(PERMISSION_DENIED if err.status == 403 else UNAUTHENTICATED)
    if isinstance(err, NotFoundError):
        return int(RESOURCE_DOES_NOT_EXIST)
    if isinstance(err, RegistryError):
        unreachable = err.status is None or err.is_temporary or err.status >= 500
        return int(TEMPORARILY_UNAVAILABLE if unreachable else INTERNAL_ERROR)
    if isinstance(err, InvalidReferenceError | PackError):
        return int(INVALID_PARAMETER_VALUE)
    if isinstance(err, DigestMismatchError):
        return int(DATA_LOSS)
    if isinstance(err, UnsafeArchiveError):
        return int(INVALID_STATE)
    return int(INTERNAL_ERROR)
