"""Where things live under ``$KITOPS_HOME/storage`` (spec §3.1, §3.3), and the shared OCI layout files.

``storage/`` is one OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``, ``ingest/``) shared by
every repository, plus kit's per-repository ``<base64url(repo)>-index.json`` and ``-tags.json`` files (their content
is :mod:`pymodelkit.store.repoindex`). Repository keys are ``registry/repository`` (``localhost/test``); the file
stem is Go's ``base64.URLEncoding``: URL-safe alphabet **with** ``=`` padding.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from pathlib import Path

from pymodelkit._atomic import write_atomic
from pymodelkit.errors import ModelKitError, StoreError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.oci.mediatypes import MEDIA_TYPE_INDEX

__all__ = [
    "BLOBS_DIR",
    "INDEX_FILE",
    "INGEST_DIR",
    "LOCK_FILE",
    "OCI_LAYOUT_BYTES",
    "OCI_LAYOUT_FILE",
    "TEMP_FILE_RE",
    "blob_path",
    "ensure_layout",
    "ingest_dir",
    "list_repo_keys",
    "read_storage_index",
    "repo_file_stem",
    "repo_for_index_name",
    "repo_index_path",
    "repo_tags_path",
    "write_storage_index",
]

logger = logging.getLogger(__name__)

OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
INGEST_DIR = "ingest"
LOCK_FILE = ".pymodelkit.lock"
FILE_MODE = 0o644  # kit writes 0666 & umask; 0644 is that under the usual umask
DIR_MODE = 0o755

# kit's recognition pattern (``constants.localIndexNameRegexp``); the ``.`` is unescaped upstream too.
_REPO_INDEX_RE = re.compile(r"^([-A-Za-z0-9_-]*={0,3})-index.json\Z")
# Temp files of :func:`pymodelkit._atomic.write_atomic`: ``.<name>.<random>.tmp`` beside the file.
TEMP_FILE_RE = re.compile(r"^\..+\.tmp\Z")


def repo_file_stem(repo_key: str) -> str:
    """The per-repo file stem kit uses: ``localhost/test`` -> ``bG9jYWxob3N0L3Rlc3Q=``."""
    return base64.urlsafe_b64encode(repo_key.encode("utf-8")).decode("ascii")


def repo_index_path(storage: Path, repo_key: str) -> Path:
    """``storage/<base64url(repo)>-index.json``."""
    return storage / f"{repo_file_stem(repo_key)}-index.json"


def repo_tags_path(storage: Path, repo_key: str) -> Path:
    """``storage/<base64url(repo)>-tags.json``."""
    return storage / f"{repo_file_stem(repo_key)}-tags.json"


def repo_for_index_name(name: str) -> str | None:
    """The repository key a ``*-index.json`` file name stands for, or ``None`` if the name is not one."""
    match = _REPO_INDEX_RE.match(name)
    if match is None:
        return None
    try:
        return base64.urlsafe_b64decode(match.group(1).encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        logger.warning("ignoring %s: its name is not base64url of a repository", name)
        return None


def list_repo_keys(storage: Path) -> list[str]:
    """Every repository with an index file in ``storage``, sorted as kit sorts them (byte order)."""
    try:
        entries = list(os.scandir(storage))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        check_storage_dir(storage)  # names the store or the parent that is a file
        raise not_a_directory(storage) from None
    keys: set[str] = set()
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            continue
        key = repo_for_index_name(entry.name)
        if key is not None:
            keys.add(key)
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def blob_path(storage: Path, digest: Digest) -> Path:
    """``storage/blobs/<algorithm>/<hex>``."""
    return storage / BLOBS_DIR / digest.algorithm / digest.hex


def ingest_dir(storage: Path) -> Path:
    """``storage/ingest``: where blobs are written before they are committed."""
    return storage / INGEST_DIR


def not_a_directory(storage: Path) -> StoreError:
    """The error for a store whose ``storage`` (or its home) exists and is not a directory."""
    return StoreError(f"local store {storage} is not a directory (move it away, or choose another home with "
                      "--config or KITOPS_HOME)", path=str(storage))


def check_storage_dir(storage: Path) -> None:
    """Raise :func:`not_a_directory`'s error when ``storage`` or one of its parents exists and is not a directory."""
    for path in (storage, *storage.parents):
        if os.path.lexists(path):
            if not path.is_dir():
                raise not_a_directory(storage if path == storage else path)
            return


def ensure_layout(storage: Path) -> None:
    """Create the OCI layout skeleton if it is missing, as oras ``oci.New`` does on every open.

    Writes ``oci-layout`` and an empty ``index.json`` only when absent; creates ``blobs/sha256`` and ``ingest``.
    Raises StoreError when ``storage`` is not a directory.
    """
    check_storage_dir(storage)
    for directory in (storage, storage / BLOBS_DIR / "sha256", storage / INGEST_DIR):
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if not (storage / OCI_LAYOUT_FILE).exists():
        write_atomic(storage / OCI_LAYOUT_FILE, OCI_LAYOUT_BYTES, mode=FILE_MODE)
    if not (storage / INDEX_FILE).exists():
        write_storage_index(storage, [])


def read_storage_index(storage: Path) -> list[Descriptor]:
    """The descriptors in ``storage/index.json`` (empty when the file is absent or lists ``null``).

    Raises:
        StoreError: the file is not a JSON image index.
    """
    path = storage / INDEX_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        manifests = doc.get("manifests") or []
        if not isinstance(manifests, list):
            raise ValueError("manifests is not a list")
        return [Descriptor.from_json(item) for item in manifests]
    except (ValueError, ModelKitError) as exc:
        raise StoreError(f"invalid storage index {path}: {exc}", path=str(path)) from None


def write_storage_index(storage: Path, manifests: list[Descriptor]) -> None:
    """Replace ``storage/index.json`` atomically with an image index of ``manifests`` (``[]`` when empty)."""
    doc = Struct(schemaVersion=2, mediaType=MEDIA_TYPE_INDEX, manifests=[d.to_json() for d in manifests])
    write_atomic(storage / INDEX_FILE, go_json_bytes(doc), mode=FILE_MODE)
