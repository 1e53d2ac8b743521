"""``pack(no_store=True)``: the digests, config and manifest bytes of a real pack, byte for byte, with nothing stored
(only the digest cache written); the cache is used with no blob present and is never fooled by changed bytes; the
tag is validated and errors are those of a pack."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.errors import InvalidReferenceError, NotFoundError, PackError
from pymodelkit.oci import Digest
from pymodelkit.pack import digestcache, layers
from tests.support.samestat import overwrite_keeping_size_and_mtime

PAST = 1_600_000_000
EPOCH = "1700000000"
BIG = 9 << 20  # over layers.THREADED_BYTES: the model layer runs the threaded stages with no target
TAR_KITFILE = (
    "manifestVersion: 1.0.0\npackage:\n  name: nostore\nmodel:\n  name: m\n  path: model\n"
    "code:\n  - path: src\ndatasets:\n  - name: train\n    path: data/train.csv\n"
)
RAW_KITFILE = (
    "manifestVersion: 1.0.0\npackage:\n  name: nostore\nmodel:\n  name: m\n  path: model/weights.bin\n"
    "datasets:\n  - name: train\n    path: data/train.csv\n"
)


def _tree(root: Path, kitfile: str = TAR_KITFILE) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "data").mkdir()
    weights = (bytes(range(256)) * 64 + os.urandom(1024)) * (BIG // (256 * 64 + 1024) + 1)
    (root / "model" / "weights.bin").write_bytes(weights[:BIG])
    (root / "model" / "config.json").write_text('{"layers": 2}\n')
    (root / "src" / "train.py").write_text("print('train')\n")
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    (root / "Kitfile").write_text(kitfile)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (PAST, PAST))
    return root


def _files(home: Path) -> list[str]:
    """Every path under ``home`` (directories too), relative, sorted; [] when ``home`` does not exist."""
    return sorted(str(path.relative_to(home)) for path in home.rglob("*")) if home.exists() else []


CACHE_ONLY = ["pymodelkit-cache", "pymodelkit-cache/digests.json"]


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files made by the test are milliseconds old; trust them as if they were older than the racy window."""
    monkeypatch.setattr(digestcache, "RACY_WINDOW_NS", 0)


@pytest.mark.parametrize(
    ("fmt", "layer_format", "compression"),
    [
        ("kitops", "tar", "none"),
        ("kitops", "tar", "gzip-fastest"),
        ("kitops", "raw", "none"),
        ("kitops", "raw", "zstd"),
        ("modelpack", "tar", "none"),
        ("modelpack", "tar", "zstd"),
        ("modelpack", "raw", "none"),
    ],
)
def test_no_store_returns_the_bytes_a_real_pack_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_racy_window: None, fmt: str, layer_format: str,
    compression: str,
) -> None:
    assert BIG >= layers.THREADED_BYTES
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    src = _tree(tmp_path / "src", RAW_KITFILE if layer_format == "raw" else TAR_KITFILE)
    dry_home = tmp_path / "dry"
    dry = pymodelkit.pack(src, tag="nostore:v1,also", format=fmt, layer_format=layer_format, compression=compression,
                          store=pymodelkit.LocalStore(dry_home), no_store=True)
    real_store = pymodelkit.LocalStore(tmp_path / "real")
    real = pymodelkit.pack(src, tag="nostore:v1,also", format=fmt, layer_format=layer_format, compression=compression,
                           store=real_store, digest_cache=False)

    assert (dry.stored, real.stored) == (False, True)
    assert dry.manifest_bytes == real.manifest_bytes
    assert dry.digest == real.digest == Digest("sha256", hashlib.sha256(dry.manifest_bytes).hexdigest())
    assert dry.config_bytes == real.config_bytes
    assert dry.manifest == real.manifest
    assert dry.kitfile == real.kitfile
    assert dry.reference == real.reference and dry.tags == real.tags == ("v1", "also")
    assert dry.reused == real.reused == ()
    assert _files(dry_home) == CACHE_ONLY  # no storage/, no blob, no ingest file, no lock, no index
    assert real_store.blob_path(real.digest).read_bytes() == real.manifest_bytes
    assert real_store.fsck().ok


def test_no_store_without_the_digest_cache_writes_nothing_at_all(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    home = tmp_path / "home"
    result = pymodelkit.pack(src, tag="nostore:v1", store=pymodelkit.LocalStore(home), digest_cache=False,
                             no_store=True)
    assert not result.stored and len(result.manifest.layers or ()) == 3
    assert not home.exists()


def test_no_store_leaves_an_existing_store_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    src = _tree(tmp_path / "src")
    store = pymodelkit.LocalStore(tmp_path / "home")
    real = pymodelkit.pack(src, tag="nostore:v1", store=store, digest_cache=False)
    (src / "src" / "train.py").write_text("print('train v2')\n")
    before = {path: path.read_bytes() for path in store.storage.rglob("*") if path.is_file()}
    dry = pymodelkit.pack(src, tag="nostore:v1", store=store, digest_cache=False, no_store=True)
    assert dry.digest != real.digest and not store.has_blob(dry.digest)
    assert {path: path.read_bytes() for path in store.storage.rglob("*") if path.is_file()} == before
    assert [kit.digest for kit in pymodelkit.list_modelkits(store)] == [real.digest]


def test_second_no_store_run_reuses_the_cache_with_no_blob_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_racy_window: None
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    src = _tree(tmp_path / "src")
    store = pymodelkit.LocalStore(tmp_path / "home")
    first = pymodelkit.pack(src, tag="nostore:v1", store=store, no_store=True)
    second = pymodelkit.pack(src, tag="nostore:v1", store=store, no_store=True)
    layer_digests = tuple(layer.digest for layer in first.manifest.layers or ())
    assert first.reused == () and second.reused == layer_digests
    assert second.manifest_bytes == first.manifest_bytes and second.digest == first.digest
    assert _files(store.home) == CACHE_ONLY

    # A real pack does not take the entries a no-store run recorded without their blobs: it reads every layer again.
    real = pymodelkit.pack(src, tag="nostore:v1", store=store)
    assert real.reused == () and real.digest == first.digest
    assert all(store.has_blob(digest) for digest in layer_digests) and store.fsck().ok
    third = pymodelkit.pack(src, tag="nostore:v1", store=store, no_store=True)
    assert third.reused == layer_digests and third.digest == first.digest


def test_changed_bytes_with_the_same_size_and_mtime_are_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_racy_window: None
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    src = _tree(tmp_path / "src")
    store = pymodelkit.LocalStore(tmp_path / "home")
    first = pymodelkit.pack(src, tag="nostore:v1", store=store, no_store=True)
    weights = src / "model" / "weights.bin"
    overwrite_keeping_size_and_mtime(weights, b"\xff\xfe")

    second = pymodelkit.pack(src, tag="nostore:v1", store=store, no_store=True)
    model_first, code_first, data_first = (layer.digest for layer in first.manifest.layers or ())
    model_second = (second.manifest.layers or ())[0].digest
    assert model_second != model_first and second.reused == (code_first, data_first)
    fresh = pymodelkit.pack(src, tag="nostore:v1", store=pymodelkit.LocalStore(tmp_path / "fresh"),
                            digest_cache=False)
    assert second.manifest_bytes == fresh.manifest_bytes


def test_raw_layer_digest_is_the_file_sha256(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", RAW_KITFILE)
    result = pymodelkit.pack(src, store=pymodelkit.LocalStore(tmp_path / "home"), layer_format="raw",
                             digest_cache=False, no_store=True)
    model = (result.manifest.layers or ())[0]
    data = (src / "model" / "weights.bin").read_bytes()
    assert model.digest == Digest("sha256", hashlib.sha256(data).hexdigest()) and model.size == len(data)
    assert result.reference is None and result.tags == ()  # what an untagged pack would make


def test_link_is_ignored_without_a_store(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", RAW_KITFILE)
    home = tmp_path / "home"
    linked = pymodelkit.pack(src, store=pymodelkit.LocalStore(home), layer_format="raw", link=True,
                             digest_cache=False, no_store=True)
    plain = pymodelkit.pack(src, store=pymodelkit.LocalStore(home), layer_format="raw", digest_cache=False,
                            no_store=True)
    assert linked.manifest.layers == plain.manifest.layers and not home.exists()
    assert (src / "model" / "weights.bin").stat().st_nlink == 1


def test_manifest_digest_follows_source_date_epoch_layer_digests_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path / "src")
    store = pymodelkit.LocalStore(tmp_path / "home")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    one = pymodelkit.pack(src, store=store, digest_cache=False, no_store=True)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(EPOCH) + 1))
    two = pymodelkit.pack(src, store=store, digest_cache=False, no_store=True)
    assert one.digest != two.digest
    assert one.manifest.layers == two.manifest.layers and one.config_bytes == two.config_bytes


def test_a_parent_modelkit_is_read_from_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.pack(_tree(tmp_path / "parent"), tag="nostore/parent:v1", store=store, digest_cache=False)
    child = tmp_path / "child"
    (child / "docs").mkdir(parents=True)
    (child / "docs" / "README.md").write_text("# child\n")
    (child / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: nostore/parent:v1\ndocs:\n"
                                   "  - path: docs/README.md\n")
    before = _files(store.home)
    dry = pymodelkit.pack(child, tag="nostore/child:v1", store=store, digest_cache=False, no_store=True)
    assert _files(store.home) == before
    real = pymodelkit.pack(child, tag="nostore/child:v1", store=store, digest_cache=False)
    assert dry.manifest_bytes == real.manifest_bytes


def test_a_kitfile_parent_with_an_empty_tag_is_read_as_kit_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``model.path: 'repo:'`` is ``repo`` to kit's reference parser (``latest``), though the CLI refuses ``repo:``."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    store = pymodelkit.LocalStore(tmp_path / "home")
    pymodelkit.pack(_tree(tmp_path / "parent"), tag="nostore/parent", store=store, digest_cache=False)
    packed: list[pymodelkit.PackResult] = []
    for path in ("'nostore/parent:'", "nostore/parent:latest"):
        child = tmp_path / f"child-{len(packed)}"
        (child / "docs").mkdir(parents=True)
        (child / "docs" / "README.md").write_text("# child\n")
        (child / "Kitfile").write_text(f"manifestVersion: 1.0.0\nmodel:\n  path: {path}\ndocs:\n"
                                       "  - path: docs/README.md\n")
        packed.append(pymodelkit.pack(child, tag="nostore/child:v1", store=store, digest_cache=False, no_store=True))
    # The same parent read for both: the configs differ only in the path as written.
    assert b'"nostore/parent:"' in packed[0].config_bytes
    assert packed[0].config_bytes == packed[1].config_bytes.replace(b"nostore/parent:latest", b"nostore/parent:")


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("nostore:v1,-bad", "invalid tag '-bad'"),
        ("nostore@sha256:" + "0" * 64, "cannot tag a pack with a digest"),
        ("Bad Name:v1", "invalid"),
    ],
)
def test_the_tag_is_validated_before_any_layer(tmp_path: Path, tag: str, message: str) -> None:
    src = _tree(tmp_path / "src")
    home = tmp_path / "home"
    for no_store in (True, False):
        with pytest.raises(InvalidReferenceError, match=message):
            pymodelkit.pack(src, tag=tag, store=pymodelkit.LocalStore(home), no_store=no_store)
        assert not home.exists()


def test_errors_are_those_of_a_pack_and_leave_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = pymodelkit.LocalStore(home)
    with pytest.raises(PackError, match=r"^context directory .*missing does not exist or is not a directory$"):
        pymodelkit.pack(tmp_path / "missing", store=store, no_store=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match=r"^no Kitfile found in "):
        pymodelkit.pack(empty, store=store, no_store=True)
    (empty / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
    with pytest.raises(PackError, match=r"^error processing model: path weights\.bin does not exist$"):
        pymodelkit.pack(empty, store=store, no_store=True)
    (empty / "weights.bin").mkdir()
    with pytest.raises(PackError, match=r"^file weights\.bin is not a regular file$"):
        pymodelkit.pack(empty, store=store, layer_format="raw", no_store=True)
    with pytest.raises(PackError, match=r"^invalid compression 'lz4'"):
        pymodelkit.pack(empty, store=store, compression="lz4", no_store=True)
    assert not home.exists()
