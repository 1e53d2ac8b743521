"""Unpack verifies before it writes: a corrupt blob or a hostile layer in the store writes nothing, and the CLI
says so in one line. Raw layers and older kit's manifests unpack."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import Manifest


def _source(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "w.bin").write_bytes(os.urandom(300_000))
    (root / "data.csv").write_text("a,b\n")
    (root / "Kitfile").write_text(
        "manifestVersion: 1.0.0\nmodel:\n  path: model\ndatasets:\n  - name: d\n    path: data.csv\n"
    )
    return root


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_corrupt_layer_blob_writes_nothing(tmp_path: Path, compression: str) -> None:
    store = pymodelkit.LocalStore(tmp_path / "home")
    result = pymodelkit.pack(_source(tmp_path / "src"), tag="c:v1", compression=compression, store=store)
    assert result.manifest.layers is not None
    dataset_blob = store.blob_path(result.manifest.layers[1].digest)
    os.chmod(dataset_blob, 0o600)
    data = bytearray(dataset_blob.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes, in the last layer: the first one is fine
    dataset_blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(pymodelkit.DigestMismatchError, match="is corrupt"):
        pymodelkit.unpack("c:v1", out, store=store)
    assert _files(out) == []
    report = store.fsck()
    assert not report.ok
    assert [digest for digest, _ in report.corrupt_blobs] == [result.manifest.layers[1].digest]


def _hostile_layer(entry: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        good = tarfile.TarInfo("model/ok.txt")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"ok\n"))
        if entry == "symlink":
            link = tarfile.TarInfo("model/link")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
        else:
            evil = tarfile.TarInfo(entry)
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
    return buffer.getvalue()


@pytest.mark.parametrize(("entry", "named"), [("../escape.txt", "../escape.txt"), ("/abs.txt", "/abs.txt"),
                                               ("symlink", "model/link")])
def test_hostile_layer_is_refused_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, named: str
) -> None:
    home = tmp_path / "home"
    store = pymodelkit.LocalStore(home)
    layer = _hostile_layer(entry)
    with store.ingest() as writer:
        writer.write(layer)
        layer_digest, size = writer.commit()
    config = (
        '{"manifestVersion":"1.0.0","package":{},"model":{"path":"model","digest":"' + str(layer_digest)
        + '","diffId":"' + str(layer_digest) + '"}}'
    ).encode()
    config_digest = store.write_blob(config)
    manifest = Manifest(
        config=Descriptor("application/vnd.kitops.modelkit.config.v1+json", config_digest, len(config)),
        layers=(Descriptor("application/vnd.kitops.modelkit.model.v1.tar", layer_digest, size),),
    )
    store.add_manifest("localhost/evil", manifest.to_json_bytes(), tags=["v1"])
    out = tmp_path / "out"
    code = main(["--config", str(home), "unpack", "evil:v1", "-d", str(out)])
    err = capsys.readouterr().err
    assert code == 7
    assert err.count("\n") == 1 and err.startswith("pymodelkit: error: ") and named in err
    assert _files(out) == []
    assert not (tmp_path / "escape.txt").exists()


def test_raw_layers_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "weights").mkdir(parents=True)
    (src / "weights" / "model.safetensors").write_bytes(os.urandom(100_000))
    os.chmod(src / "weights" / "model.safetensors", 0o640)
    (src / "notes.md").write_text("# notes\n")
    (src / "Kitfile").write_text(
        "manifestVersion: 1.0.0\nmodel:\n  path: weights/model.safetensors\ndocs:\n  - path: notes.md\n"
    )
    store = pymodelkit.LocalStore(tmp_path / "home")
    result = pymodelkit.pack(src, tag="raw:v1", layer_format="raw", compression="zstd", store=store)
    assert result.manifest.layers is not None
    assert [layer.media_type for layer in result.manifest.layers] == [
        "application/vnd.kitops.modelkit.model.v1.raw+zstd",
        "application/vnd.kitops.modelkit.docs.v1.raw+zstd",
    ]
    model = result.kitfile.model
    assert model is not None
    assert model.diff_id == "sha256:" + hashlib.sha256((src / "weights" / "model.safetensors").read_bytes()).hexdigest()
    out = tmp_path / "out"
    pymodelkit.unpack("raw:v1", out, store=store)
    assert (out / "weights" / "model.safetensors").read_bytes() == (src / "weights" / "model.safetensors").read_bytes()
    assert (out / "weights" / "model.safetensors").stat().st_mode & 0o777 == 0o640
    assert (out / "notes.md").read_text() == "# notes\n"


def test_raw_layer_of_a_directory_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    with pytest.raises(pymodelkit.PackError, match="file model is not a regular file"):
        pymodelkit.pack(src, tag="raw:v1", layer_format="raw", store=pymodelkit.LocalStore(tmp_path / "home"))


def test_older_kit_modelkit_unpacks(tmp_path: Path) -> None:
    """kit ≤ v1.9: no mediaType, no artifactType, no layer annotations, a gzip layer; and a pre-v0.5 Kitfile
    without layer digests, paired with its layers by type and order."""
    store = pymodelkit.LocalStore(tmp_path / "home")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model/old.bin")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"older"))
    layer = buffer.getvalue()
    layer_digest = store.write_blob(layer, mode=0o600)
    config = b'{"manifestVersion":"v1.0.0","package":{"name":"old"},"model":{"path":"model"}}'
    config_digest = store.write_blob(config)
    manifest = Manifest(
        config=Descriptor("application/vnd.kitops.modelkit.config.v1+json", config_digest, len(config)),
        layers=(Descriptor("application/vnd.kitops.modelkit.model.v1.tar+gzip", layer_digest, len(layer)),),
        annotations={"ml.kitops.modelkit.cli-version": "0.3.0"},
        media_type=None,
        artifact_type=None,
    )
    store.add_manifest("localhost/old", manifest.to_json_bytes(), tags=["v0"])
    out = tmp_path / "out"
    pymodelkit.unpack("old:v0", out, store=store)
    assert (out / "model" / "old.bin").read_bytes() == b"older"
    assert "name: old" in (out / "Kitfile").read_text()
    assert Digest.parse(str(layer_digest)).hex == hashlib.sha256(layer).hexdigest()
