"""sign → verify round trips against a real registry through the CLI, and what tampering does: another key, a moved
tag, a signature copied to another manifest, an edited payload, a replaced layer blob, an edited manifest; ``pull``
and ``unpack`` with ``--verify`` writing nothing unless the manifest verifies; ``ModelKitManager`` signing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.compat import ModelKitManager
from pymodelkit.signing.keys import generate_signing_key, write_key_pair
from tests.support.registry import TestRegistry
from tests.support.trees import unique_repo, write_source_tree

KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: signed\nmodel:\n  name: m\n  path: model\ncode:\n  - path: src\n" \
    "datasets:\n  - name: train\n    path: data/train.csv\n"
PASSWORD = "correct horse"
ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two encrypted key pairs (``a``, ``b``); the password is in ``PYMODELKIT_KEY_PASSWORD``."""
    monkeypatch.setenv("PYMODELKIT_KEY_PASSWORD", PASSWORD)
    found: dict[str, Path] = {}
    for name in ("a", "b"):
        key_path, pub_path = write_key_pair(generate_signing_key(), tmp_path / f"keys-{name}",
                                            password=PASSWORD.encode())
        found[name], found[name + ".pub"] = key_path, pub_path
    return found


def _publish(registry: TestRegistry, tmp_path: Path, ref: str, *, extra: bytes = b"", kitfile: str = KITFILE) -> str:
    """Pack a small ModelKit (``extra`` bytes change its content) as ``ref`` and push it; returns its digest."""
    root = tmp_path / f"src-{hashlib.sha256(ref.encode() + extra).hexdigest()[:8]}"
    src = write_source_tree(root, kitfile, weights=4000)
    (src / "src" / "extra.bin").write_bytes(extra)
    store = pymodelkit.LocalStore(tmp_path / "pack-home")
    digest = str(pymodelkit.pack(src, tag=ref, store=store).digest)
    pymodelkit.push(ref, store=store)
    return digest


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _error(err: str) -> str:
    """The one error line the CLI printed."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pymodelkit: error: ")
    return lines[0]


def _blob_file(registry: TestRegistry, digest: str) -> Path:
    assert registry.storage_dir is not None
    hexd = digest.split(":", 1)[1]
    return registry.storage_dir / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _assert_store_empty(home: Path) -> None:
    store = pymodelkit.LocalStore(home)
    assert store.list_modelkits() == []
    blobs = home / "storage" / "blobs" / "sha256"
    assert not blobs.exists() or os.listdir(blobs) == []


def _repo_of(ref: str) -> str:
    return ref.split("/", 1)[1].rsplit(":", 1)[0]


def test_round_trip_right_key_other_key_and_claims(
    registry: TestRegistry, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{registry.host}/{unique_repo('signing', 'cli')}:v1"
    digest = _publish(registry, tmp_path, ref)
    code, out, _ = _run(capsys, "sign", ref, "--key", keys["a"], "-a", "env=prod")
    assert code == 0
    assert out == f"Signed {ref.rsplit(':', 1)[0]}@{digest}: signature added to tag sha256-{digest[7:]}.sig\n"

    code, out, err = _run(capsys, "verify", ref, "--key", keys["a.pub"])
    assert code == 0
    payload = json.loads(out)
    assert payload == {
        "critical": {"identity": {"docker-reference": f"{registry.host}/{_repo_of(ref)}"},
                     "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
        "optional": {"env": "prod"},
    }
    assert "Verified" in err and "1 signature(s) (simplesigning)" in err

    code, _, err = _run(capsys, "verify", ref, "--key", keys["b.pub"])
    assert code == 14
    assert _error(err) == (f"pymodelkit: error: no signature of {ref.rsplit(':', 1)[0]}@{digest} verifies with key "
                           f"{keys['b.pub']} (1 found)")
    assert _run(capsys, "verify", ref, "--key", keys["b.pub"], "--key", keys["a.pub"])[0] == 0
    assert _run(capsys, "verify", ref, "--key", keys["a.pub"], "-a", "env=prod")[0] == 0
    code, _, err = _run(capsys, "verify", ref, "--key", keys["a.pub"], "-a", "env=dev")
    assert code == 14 and "lacks the claim env=dev (it has env=prod)" in _error(err)

    # the same key again adds nothing; the second key adds a second signature, each verifying with its own key
    code, out, _ = _run(capsys, "sign", ref, "--key", keys["a"], "-a", "env=prod")
    assert code == 0 and "signature already in tag" in out
    assert _run(capsys, "sign", ref, "--key", keys["b"])[0] == 0
    code, out, _ = _run(capsys, "verify", ref, "--key", keys["b.pub"])
    assert code == 0 and len(out.splitlines()) == 1 and json.loads(out)["optional"] is None


def test_a_moved_tag_and_a_copied_signature_do_not_verify(
    registry: TestRegistry, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{registry.host}/{unique_repo('signing', 'retag')}:v1"
    first = _publish(registry, tmp_path, ref)
    assert _run(capsys, "sign", ref, "--key", keys["a"])[0] == 0
    second = _publish(registry, tmp_path, ref, extra=b"another model")  # the tag now names another manifest
    assert first != second
    name = ref.rsplit(":", 1)[0]

    code, _, err = _run(capsys, "verify", ref, "--key", keys["a.pub"])
    assert code == 14 and _error(err) == f"pymodelkit: error: no signatures found for {name}@{second}"
    assert _run(capsys, "verify", f"{name}@{first}", "--key", keys["a.pub"])[0] == 0

    # first's signature manifest put under second's .sig tag: it verifies, but names the other manifest
    base = f"{registry.url}/v2/{_repo_of(ref)}/manifests"
    sig = httpx.get(f"{base}/sha256-{first[7:]}.sig", headers={"Accept": ACCEPT})
    put = httpx.put(f"{base}/sha256-{second[7:]}.sig", content=sig.content, headers={"Content-Type": ACCEPT})
    assert put.status_code == 201
    code, _, err = _run(capsys, "verify", ref, "--key", keys["a.pub"])
    assert code == 14
    assert _error(err) == f"pymodelkit: error: signature payload names manifest {first}, not {second} ({name}@{second})"


def test_an_edited_signature_payload_does_not_verify(
    fresh_registry: TestRegistry, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{fresh_registry.host}/signing/edited:v1"
    digest = _publish(fresh_registry, tmp_path, ref)
    result = pymodelkit.sign(ref, keys["a"])
    assert result.payload is not None
    payload_digest = "sha256:" + hashlib.sha256(result.payload).hexdigest()
    _flip_byte(_blob_file(fresh_registry, payload_digest), result.payload.index(b"cosign container"))
    code, _, err = _run(capsys, "verify", ref, "--key", keys["a.pub"])
    assert code == 14
    line = _error(err)
    assert line.startswith(f"pymodelkit: error: no signature of {ref.rsplit(':', 1)[0]}@{digest} verifies with key")
    assert f"blob {payload_digest}" in line


def test_a_replaced_layer_still_verifies_but_pull_and_unpack_refuse_it_before_writing(
    fresh_registry: TestRegistry, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{fresh_registry.host}/signing/layer:v1"
    _publish(fresh_registry, tmp_path, ref)
    assert _run(capsys, "sign", ref, "--key", keys["a"])[0] == 0
    manifest = json.loads(httpx.get(f"{fresh_registry.url}/v2/signing/layer/manifests/v1",
                                    headers={"Accept": ACCEPT}).content)
    layer = next(d for d in manifest["layers"] if ".model." in d["mediaType"])
    _flip_byte(_blob_file(fresh_registry, layer["digest"]), 1000)

    assert _run(capsys, "verify", ref, "--key", keys["a.pub"])[0] == 0  # the manifest is unchanged and signed
    home = tmp_path / "pull-home"
    code, _, err = _run(capsys, "--config", home, "pull", ref, "--verify", keys["a.pub"])
    assert code == 6
    assert layer["digest"] in _error(err)
    store = pymodelkit.LocalStore(home)
    assert store.list_modelkits() == []
    assert not store.has_blob(pymodelkit.Digest.parse(layer["digest"]))
    assert os.listdir(home / "storage" / "ingest") == []
    blobs = home / "storage" / "blobs" / "sha256"
    assert not blobs.exists() or os.listdir(blobs) == []  # nothing of the pull was committed, not even the config

    out_dir = tmp_path / "out"
    code, _, err = _run(capsys, "--config", tmp_path / "unpack-home", "unpack", ref, "-d", out_dir,
                        "--verify", keys["a.pub"])
    assert code == 6 and layer["digest"] in _error(err)
    assert not out_dir.exists()


def test_a_manifest_edited_in_the_registry_is_refused_by_its_digest(
    fresh_registry: TestRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{fresh_registry.host}/signing/manifest:v1"
    digest = _publish(fresh_registry, tmp_path, ref)
    path = _blob_file(fresh_registry, digest)
    data = path.read_bytes()
    _flip_byte(path, data.index(b'"size":') + len(b'"size":'))  # still valid JSON: one digit of a size changes
    home = tmp_path / "pull-home"
    code, _, err = _run(capsys, "--config", home, "pull", ref)
    assert code == 6
    assert "Docker-Content-Digest" in _error(err) and digest in err
    _assert_store_empty(home)


def test_unsigned_modelkits_under_verify_write_nothing(
    registry: TestRegistry, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{registry.host}/{unique_repo('signing', 'unsigned')}:v1"
    digest = _publish(registry, tmp_path, ref)
    name = ref.rsplit(":", 1)[0]
    home, out_dir = tmp_path / "home", tmp_path / "out"

    code, _, err = _run(capsys, "--config", home, "pull", ref, "--verify", keys["a.pub"])
    assert code == 14 and _error(err) == f"pymodelkit: error: no signatures found for {name}@{digest}"
    _assert_store_empty(home)
    code, _, err = _run(capsys, "--config", home, "unpack", ref, "-d", out_dir, "--verify", keys["a.pub"])
    assert code == 14 and "no signatures found" in _error(err)
    assert not out_dir.exists()
    _assert_store_empty(home)

    # in the store already: the signatures are still read from its registry, and nothing is unpacked
    assert _run(capsys, "--config", home, "pull", ref)[0] == 0
    code, _, err = _run(capsys, "--config", home, "unpack", ref, "-d", out_dir, "--verify", keys["a.pub"])
    assert code == 14 and "no signatures found" in _error(err)
    assert not out_dir.exists()

    # a purely local ModelKit has no registry to read signatures from
    pymodelkit.tag(ref, "local/model:v1", store=pymodelkit.LocalStore(home))
    code, _, err = _run(capsys, "--config", home, "unpack", "local/model:v1", "-d", out_dir,
                        "--verify", keys["a.pub"])
    assert code == 14 and "cannot verify a local-only ModelKit" in _error(err)
    assert not out_dir.exists()


def test_signed_modelkits_pull_and_unpack_under_verify(
    registry: TestRegistry, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    parent = f"{registry.host}/{unique_repo('signing', 'parent')}:v1"
    _publish(registry, tmp_path, parent)  # never signed: only the ModelKit asked for is verified
    child_kitfile = KITFILE.replace("  name: m\n  path: model\n", f"  name: c\n  path: {parent}\n", 1)
    ref = f"{registry.host}/{unique_repo('signing', 'child')}:v1"
    digest = _publish(registry, tmp_path, ref, kitfile=child_kitfile)
    assert _run(capsys, "sign", ref, "--key", keys["b"], "--bundle")[0] == 0

    home = tmp_path / "home"
    code, out, _ = _run(capsys, "--config", home, "pull", ref, "--verify", keys["a.pub"], "--verify", keys["b.pub"])
    assert code == 0 and out == f"Pulled {digest}\n"
    assert len(pymodelkit.LocalStore(home).list_modelkits()) == 2  # the child and its parent
    code, _, _ = _run(capsys, "--config", home, "unpack", ref, "-d", tmp_path / "from-store", "--verify", keys["b.pub"])
    assert code == 0 and (tmp_path / "from-store" / "model" / "weights.bin").is_file()
    code, _, _ = _run(capsys, "--config", tmp_path / "other-home", "unpack", ref, "-d", tmp_path / "from-registry",
                      "--verify", keys["b.pub"])
    assert code == 0 and (tmp_path / "from-registry" / "Kitfile").is_file()

    result = pymodelkit.pull(ref, store=pymodelkit.LocalStore(tmp_path / "lib-home"),
                             verify=pymodelkit.signing.verifier([keys["b.pub"]]))
    assert str(result.digest) == digest
    with pytest.raises(pymodelkit.SignatureError, match=r"no signature of .* verifies with key"):
        pymodelkit.unpack(ref, tmp_path / "lib-out", store=pymodelkit.LocalStore(tmp_path / "lib-home"),
                          verify=pymodelkit.signing.verifier([keys["a.pub"]]))
    assert not (tmp_path / "lib-out").exists()


def test_model_kit_manager_signs_what_it_pushes(
    registry: TestRegistry, tmp_path: Path, keys: dict[str, Path]
) -> None:
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "model.pkl").write_bytes(b"pickle" * 1000)
    (work / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: m\nmodel:\n  name: m\n  path: model\n")
    tag = f"{registry.host}/{unique_repo('signing', 'manager')}:v1"
    manager = ModelKitManager(working_directory=work, modelkit_tag=tag)
    manager.pack_and_push_modelkit(with_login_and_logout=False, sign_key=keys["a"])
    verified = pymodelkit.verify(tag, [keys["a.pub"]])
    assert [s.kind for s in verified.signatures] == ["simplesigning"]
    assert verified.digest == pymodelkit.LocalStore().resolve(pymodelkit.parse_reference(tag)[0]).digest
