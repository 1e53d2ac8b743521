"""kit's own pack/unpack conformance cases (``tests/data/kit/pack-unpack/``) run through pack then unpack.

The harness reimplements kit's Go test conventions (spec §10.1, §10.2): each case's files are created under
``test-modelkit-in/`` with content ``testing: <path as listed>``, packed as ``test:test``, unpacked into
``test-modelkit-out/``; then exactly the case's ``files`` (plus the Kitfile) must be there. Every case runs for the
four compressions of upstream ``TestPackUnpack``. Digests from spec §2.13 (vectors A, B, C) are checked as literals.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import pymodelkit

CASES_DIR = Path(__file__).resolve().parent.parent / "data" / "kit" / "pack-unpack"
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))  # top level only, as kit's loader skips subdirectories
COMPRESSIONS = ("none", "gzip", "gzip-fastest", "zstd")
TAG = "test:test"


@dataclass(frozen=True)
class PackUnpackCase:
    """One upstream case: the Kitfile and .kitignore texts, the files that must survive, the ones that must not."""

    name: str
    description: str
    kitfile: str
    kitignore: str
    files: tuple[str, ...]
    ignored: tuple[str, ...]


@dataclass(frozen=True)
class ExpectedDigests:
    """Literal digests for an uncompressed pack: layers in manifest order (``None`` = no layers) and the config."""

    layers: tuple[str, ...] | None
    config: str
    config_size: int


# Spec §2.13. Vector B = test_pack-basic-model (manifest order model, code, dataset); vector C = test_empty-kitfile.
EXPECTED_UNCOMPRESSED = {
    "test_pack-basic-model.yaml": ExpectedDigests(
        layers=(
            "sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32",
            "sha256:ecad50eb0c0d444307ad97a1ec9c5ebcd3f35be05512797443e93de929d74439",
            "sha256:f33c29d60930cf3270479f2f25d0e0edbd1e1f79dc209829ff261e4d524b3442",
        ),
        config="sha256:b8b4e064bd9919e0bc45df9a572af0bf3be65865f8fcfcba850b1ffeed98814f",
        config_size=688,
    ),
    "test_empty-kitfile.yaml": ExpectedDigests(
        layers=None,
        config="sha256:71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a",
        config_size=59,
    ),
}

# Vector A: the Kitfile of upstream TestPackReproducibility, verbatim (leading newline included).
VECTOR_A_KITFILE = """
manifestVersion: 1.0.0
package:
  name: test-repack
model:
  path: test-file.txt
datasets:
  - path: test-dir/test-subfile.txt
"""
VECTOR_A_FILES = ("test-file.txt", "test-dir/test-subfile.txt")
VECTOR_A_MODEL = "sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"
VECTOR_A_DATASET = "sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f"
VECTOR_A_CONFIG = "sha256:e8497a2e7be9fd69cfdd090ab24c323c3629deca91c6ac825e73b2d15d4e2454"
VECTOR_A_CONFIG_BYTES = (
    b'{"manifestVersion":"1.0.0","package":{"name":"test-repack"},"model":{"path":"test-file.txt",'
    b'"digest":"sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb",'
    b'"diffId":"sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb"},'
    b'"datasets":[{"path":"test-dir/test-subfile.txt",'
    b'"digest":"sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f",'
    b'"diffId":"sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f"}]}'
)
# kit's manifest for vector A with SOURCE_DATE_EPOCH=0 (spec §2.13), 878 bytes, sha256:dea916c1….
VECTOR_A_KIT_MANIFEST = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"artifactType":"application/vnd.kitops.modelkit.manifest.v1+json",'
    b'"config":{"mediaType":"application/vnd.kitops.modelkit.config.v1+json",'
    b'"digest":"sha256:e8497a2e7be9fd69cfdd090ab24c323c3629deca91c6ac825e73b2d15d4e2454","size":475},'
    b'"layers":[{"mediaType":"application/vnd.kitops.modelkit.model.v1.tar",'
    b'"digest":"sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb","size":2048,'
    b'"annotations":{"org.cncf.model.filepath":"test-file.txt"}},'
    b'{"mediaType":"application/vnd.kitops.modelkit.dataset.v1.tar",'
    b'"digest":"sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f","size":2560,'
    b'"annotations":{"org.cncf.model.filepath":"test-dir/test-subfile.txt"}}],'
    b'"annotations":{"ml.kitops.modelkit.cli-version":"unknown","org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}'
)
# kit's manifest for vector C with SOURCE_DATE_EPOCH=0 (spec §2.13), 438 bytes, sha256:c64d3a02….
VECTOR_C_KIT_MANIFEST = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"artifactType":"application/vnd.kitops.modelkit.manifest.v1+json",'
    b'"config":{"mediaType":"application/vnd.kitops.modelkit.config.v1+json",'
    b'"digest":"sha256:71fa6e6b785780b01fbafb04f5be4816ad3899fe7ee7f4dafd382ccf6f5de85a","size":59},'
    b'"layers":null,'
    b'"annotations":{"ml.kitops.modelkit.cli-version":"unknown","org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}'
)
KIT_VERSION_ANNOTATION = b'"ml.kitops.modelkit.cli-version":"unknown"'
CREATED_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def load_case(path: Path) -> PackUnpackCase:
    """Read one case file; like kit's loader, the file name is the case name (a ``name`` key is overridden)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return PackUnpackCase(
        name=path.name,
        description=str(data.get("description") or ""),
        kitfile=str(data.get("kitfile") or ""),
        kitignore=str(data.get("kitignore") or ""),
        files=tuple(str(p) for p in data.get("files") or ()),
        ignored=tuple(str(p) for p in data.get("ignored") or ()),
    )


def normalise(listed: str) -> str:
    """A listed path as a slash-separated path relative to the directory root (``./a/b`` → ``a/b``)."""
    return posixpath.normpath(listed)


def make_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, each with mode 0755 (whatever the umask)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir()
        directory.chmod(0o755)


def write_file(path: Path, data: bytes) -> None:
    """Write a 0644 file, creating its parent directories (0755)."""
    make_dir(path.parent)
    path.write_bytes(data)
    path.chmod(0o644)


def setup_modelkit_dir(root: Path, kitfile: str, kitignore: str, listed: tuple[str, ...]) -> Path:
    """kit's harness setup: ``root/test-modelkit-in`` with Kitfile, optional .kitignore and every listed path."""
    context = root / "test-modelkit-in"
    make_dir(context)
    write_file(context / "Kitfile", kitfile.encode())
    if kitignore:
        write_file(context / ".kitignore", kitignore.encode())
    for entry in listed:
        write_file(context / normalise(entry), f"testing: {entry}".encode())
    return context


def regular_files(root: Path) -> dict[str, bytes]:
    """Every non-directory under ``root`` as ``{relative path: content}``; anything that is not a regular file fails."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath, name)
            mode = full.lstat().st_mode
            rel = full.relative_to(root).as_posix()
            if stat.S_ISDIR(mode):
                continue
            assert stat.S_ISREG(mode), f"{rel} is not a regular file (mode {mode:o})"
            found[rel] = full.read_bytes()
    return found


def with_our_version(kit_manifest: bytes) -> bytes:
    """kit's manifest bytes with its cli-version annotation replaced by ours (same position: keys stay sorted)."""
    ours = b'"dev.pymodelkit.version":' + json.dumps(pymodelkit.__version__).encode()
    assert kit_manifest.count(KIT_VERSION_ANNOTATION) == 1
    return kit_manifest.replace(KIT_VERSION_ANNOTATION, ours)


def shift_times(root: Path, seconds: int) -> None:
    """Move atime and mtime of ``root`` and everything under it forward by ``seconds``."""
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths.extend(Path(dirpath, name) for name in [*dirnames, *filenames])
    for path in paths:
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns + seconds * 10**9, info.st_mtime_ns + seconds * 10**9))


def layer_digests(result: pymodelkit.PackResult) -> tuple[str, ...] | None:
    layers = result.manifest.layers
    return None if layers is None else tuple(str(layer.digest) for layer in layers)


def test_case_files_are_the_upstream_set() -> None:
    assert [path.name for path in CASE_FILES] == [
        "test_empty-kitfile.yaml",
        "test_pack-basic-model.yaml",
        "test_pack-ignores-basic.yaml",
        "test_pack-ignores-intersecting.yaml",
        "test_pack-intersecting-paths.yaml",
        "test_pack-model-with-prompts.yaml",
        "test_pack-modelkit-parts-kitignore.yaml",
        "test_pack-modelkit-parts.yaml",
        "test_pack-path-formats.yaml",
        "test_pack-path-is-context-dir.yaml",
        "test_path-formats.yaml",
    ]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("case_file", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_kit_case_unpacks_exactly_its_files(
    case_file: Path, compression: str, tmp_path: Path, store: pymodelkit.LocalStore
) -> None:
    case = load_case(case_file)
    context = setup_modelkit_dir(tmp_path, case.kitfile, case.kitignore, case.files + case.ignored)
    out = tmp_path / "test-modelkit-out"
    make_dir(out)

    result = pymodelkit.pack(context, tag=TAG, compression=compression, store=store)
    pymodelkit.unpack(TAG, out, store=store)

    expected = {normalise(entry): f"testing: {entry}".encode() for entry in case.files}
    unpacked = regular_files(out)
    assert sorted(unpacked) == sorted([*expected, "Kitfile"])
    assert {path: unpacked[path] for path in expected} == expected
    for entry in [*case.ignored, ".kitignore"]:
        assert not os.path.lexists(out / normalise(entry)), f"{entry} should not have been unpacked"

    golden = EXPECTED_UNCOMPRESSED.get(case.name)
    if compression == "none" and golden is not None:
        assert layer_digests(result) == golden.layers
        assert str(result.manifest.config.digest) == golden.config
        assert result.manifest.config.size == golden.config_size
        assert hashlib.sha256(result.config_bytes).hexdigest() == golden.config.removeprefix("sha256:")
    if compression == "none":
        for layer in result.manifest.layers or ():
            assert not layer.media_type.endswith(("+gzip", "+zstd"))
    else:
        suffix = "+zstd" if compression == "zstd" else "+gzip"
        assert all(layer.media_type.endswith(suffix) for layer in result.manifest.layers or ())


def test_vector_b_layers_and_kitfile_digests(tmp_path: Path, store: pymodelkit.LocalStore) -> None:
    case = load_case(CASES_DIR / "test_pack-basic-model.yaml")
    context = setup_modelkit_dir(tmp_path, case.kitfile, case.kitignore, case.files + case.ignored)

    result = pymodelkit.pack(context, tag=TAG, store=store)

    layers = result.manifest.layers
    assert layers is not None
    assert [(layer.media_type, layer.size, dict(layer.annotations or {})) for layer in layers] == [
        ("application/vnd.kitops.modelkit.model.v1.tar", 2560, {"org.cncf.model.filepath": "model"}),
        ("application/vnd.kitops.modelkit.code.v1.tar", 2560, {"org.cncf.model.filepath": "code"}),
        ("application/vnd.kitops.modelkit.dataset.v1.tar", 2560, {"org.cncf.model.filepath": "datasets"}),
    ]
    model = result.kitfile.model
    assert model is not None
    assert (model.path, model.digest, model.diff_id) == (
        "./model",
        "sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32",
        "sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32",
    )
    assert [(c.path, c.digest) for c in result.kitfile.code] == [
        ("./code", "sha256:ecad50eb0c0d444307ad97a1ec9c5ebcd3f35be05512797443e93de929d74439")
    ]
    assert [(d.path, d.digest) for d in result.kitfile.datasets] == [
        ("./datasets", "sha256:f33c29d60930cf3270479f2f25d0e0edbd1e1f79dc209829ff261e4d524b3442")
    ]


def test_vector_c_manifest_bytes_with_source_date_epoch(
    tmp_path: Path, store: pymodelkit.LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hashlib.sha256(VECTOR_C_KIT_MANIFEST).hexdigest() == (
        "c64d3a024cff461ed3f45287bf0662d953ff1d265feba57c92842dd3081ad66e"
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    case = load_case(CASES_DIR / "test_empty-kitfile.yaml")
    context = setup_modelkit_dir(tmp_path, case.kitfile, case.kitignore, case.files + case.ignored)

    result = pymodelkit.pack(context, tag=TAG, store=store)

    assert result.config_bytes == b'{"manifestVersion":"1.0.0","package":{"name":"test-empty"}}'
    expected = with_our_version(VECTOR_C_KIT_MANIFEST)
    assert result.manifest_bytes == expected
    assert str(result.digest) == "sha256:" + hashlib.sha256(expected).hexdigest()


def _pack_vector_a(context: Path, tag: str, store: pymodelkit.LocalStore) -> pymodelkit.PackResult:
    return pymodelkit.pack(context, tag=tag, store=store)


def test_vector_a_layer_and_config_digests(tmp_path: Path, store: pymodelkit.LocalStore) -> None:
    context = setup_modelkit_dir(tmp_path, VECTOR_A_KITFILE, "", VECTOR_A_FILES)

    result = _pack_vector_a(context, "test:repack1", store)

    assert layer_digests(result) == (VECTOR_A_MODEL, VECTOR_A_DATASET)
    assert [layer.size for layer in result.manifest.layers or ()] == [2048, 2560]
    assert str(result.manifest.config.digest) == VECTOR_A_CONFIG
    assert result.manifest.config.size == 475
    assert result.config_bytes == VECTOR_A_CONFIG_BYTES
    annotations = dict(result.manifest.annotations or {})
    assert sorted(annotations) == ["dev.pymodelkit.version", "org.opencontainers.image.created"]
    assert annotations["dev.pymodelkit.version"] == pymodelkit.__version__
    assert CREATED_RE.fullmatch(annotations["org.opencontainers.image.created"])


def test_vector_a_repack_after_mtime_change_is_identical(
    tmp_path: Path, store: pymodelkit.LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(VECTOR_A_KIT_MANIFEST) == 878
    assert hashlib.sha256(VECTOR_A_KIT_MANIFEST).hexdigest() == (
        "dea916c124d740dfd839f20310fe4e93483a32c79594c8cfc5946bb878dd9009"
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    context = setup_modelkit_dir(tmp_path, VECTOR_A_KITFILE, "", VECTOR_A_FILES)

    first = _pack_vector_a(context, "test:repack1", store)
    shift_times(context, 3600)
    second = _pack_vector_a(context, "test:repack2", store)

    assert layer_digests(first) == layer_digests(second) == (VECTOR_A_MODEL, VECTOR_A_DATASET)
    assert str(first.manifest.config.digest) == str(second.manifest.config.digest) == VECTOR_A_CONFIG
    assert first.digest == second.digest
    expected = with_our_version(VECTOR_A_KIT_MANIFEST)
    assert first.manifest_bytes == expected
    assert second.manifest_bytes == expected
    assert str(first.digest) == "sha256:" + hashlib.sha256(expected).hexdigest()
