"""Air-gapped transfer: save → load on an empty store → unpack, byte-exact; skopeo reading our archives and us
loading skopeo's; ``push``/``pull`` with ``oci:``/``oci-archive:`` ends; and the whole air-gap path with signatures:
sign on the connected side, save, load and push on the isolated side, verify there."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.signing.keys import generate_signing_key, write_key_pair
from tests.support.registry import TestRegistry
from tests.support.trees import CHURN_KITFILE, read_tree, unique_repo, write_source_tree

SKOPEO = "/usr/bin/skopeo"


def _pack(root: Path, ref: str, store: pymodelkit.LocalStore, weights: int = 300_000) -> pymodelkit.PackResult:
    return pymodelkit.pack(write_source_tree(root, CHURN_KITFILE, weights=weights), tag=ref, store=store)


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _skopeo(*args: str) -> None:
    subprocess.run([SKOPEO, *args], check=True, capture_output=True, timeout=120)


def test_save_then_load_on_an_empty_store_unpacks_the_same_bytes(
    tmp_path: Path, store: pymodelkit.LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = "registry.example.com/team/churn:v1"
    packed = _pack(tmp_path, ref, store)
    archive = tmp_path / "usb" / "churn.tar"
    archive.parent.mkdir()
    assert _run(capsys, "save", ref, "-o", archive) == (0, f"Saved {packed.digest} to oci-archive:{archive}\n", "")
    isolated = tmp_path / "isolated-home"
    code, out, err = _run(capsys, "--config", isolated, "load", archive)
    assert (code, out, err) == (0, f"Loaded {ref} ({packed.digest})\n", "")
    loaded = pymodelkit.LocalStore(isolated)
    assert [(k.repo_key, k.digest, k.tags) for k in loaded.list_modelkits()] == [
        ("registry.example.com/team/churn", packed.digest, ("v1",))]
    assert _run(capsys, "--config", isolated, "unpack", ref, "-d", tmp_path / "out")[0] == 0
    pymodelkit.unpack(ref, tmp_path / "out-here", store=store)
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "out-here")
    assert loaded.fsck().ok


def test_parents_travel_with_with_parents(tmp_path: Path, store: pymodelkit.LocalStore) -> None:
    base = _pack(tmp_path / "base", "registry.example.com/team/base:v1", store, weights=20_000)
    child_src = tmp_path / "child"
    (child_src / "src").mkdir(parents=True)
    (child_src / "src" / "tune.py").write_text("print('tune')\n")
    (child_src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  name: tuned\n  path: "
                                       "registry.example.com/team/base:v1\ncode:\n  - path: src\n")
    child = pymodelkit.pack(child_src, tag="registry.example.com/team/tuned:v1", store=store)
    archive = tmp_path / "tuned.tar"
    result = pymodelkit.save("registry.example.com/team/tuned:v1", archive, with_parents=True, store=store)
    assert result.manifests == (child.digest, base.digest)
    other = pymodelkit.LocalStore(tmp_path / "other")
    loaded = pymodelkit.load(archive, store=other)
    assert [(str(k.reference), k.digest) for k in loaded.modelkits] == [
        ("registry.example.com/team/tuned:v1", child.digest), ("registry.example.com/team/base:v1", base.digest)]
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert [m["annotations"].get("org.opencontainers.image.ref.name") for m in index["manifests"]] == ["v1", None]


def test_skopeo_pushes_our_archive_and_we_pull_the_same_digest(
    registry: TestRegistry, tmp_path: Path, store: pymodelkit.LocalStore
) -> None:
    ref = f"{registry.host}/{unique_repo('airgap', 'ours')}:v1"
    packed = _pack(tmp_path, ref, store)
    archive = tmp_path / "churn.tar"
    pymodelkit.save(ref, archive, store=store)
    _skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci-archive:{archive}:v1", f"docker://{ref}")
    other = pymodelkit.LocalStore(tmp_path / "other")
    assert pymodelkit.pull(ref, store=other).digest == packed.digest
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "src-tree")


def test_we_load_what_skopeo_saves(registry: TestRegistry, tmp_path: Path, store: pymodelkit.LocalStore) -> None:
    ref = f"{registry.host}/{unique_repo('airgap', 'theirs')}:v1"
    packed = _pack(tmp_path, ref, store)
    pymodelkit.push(ref, store=store)
    archive = tmp_path / "from-skopeo.tar"
    _skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci-archive:{archive}:v1")
    other = pymodelkit.LocalStore(tmp_path / "other")
    loaded = pymodelkit.load(archive, store=other)  # skopeo names the manifest by its tag only
    assert [(str(k.reference), k.digest) for k in loaded.modelkits] == [("localhost/from-skopeo:v1", packed.digest)]
    renamed = pymodelkit.load(archive, reference=ref, store=other)
    assert renamed.modelkits[0].reference == pymodelkit.parse_reference(ref)[0]
    pymodelkit.unpack(ref, tmp_path / "out", store=other)
    assert read_tree(tmp_path / "out") == read_tree(tmp_path / "src-tree")


def test_push_and_pull_take_oci_layout_and_archive_ends(
    registry: TestRegistry, tmp_path: Path, store: pymodelkit.LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"registry.example.com/{unique_repo('airgap', 'cli')}:v1"
    packed = _pack(tmp_path, ref, store, weights=40_000)
    archive, layout = tmp_path / "kit.tar", tmp_path / "layout"
    assert _run(capsys, "push", ref, f"oci-archive:{archive}")[:2] == (0, f"Pushed {packed.digest}\n")
    assert _run(capsys, "push", ref, f"oci:{layout}:stable")[:2] == (0, f"Pushed {packed.digest}\n")
    home = tmp_path / "home2"
    assert _run(capsys, "--config", home, "pull", f"oci-archive:{archive}")[:2] == (0, f"Pulled {packed.digest}\n")
    assert _run(capsys, "--config", home, "pull", f"oci:{layout}:stable")[:2] == (0, f"Pulled {packed.digest}\n")
    assert {t for k in pymodelkit.LocalStore(home).list_modelkits() for t in k.tags} == {"v1", "stable"}
    remote = f"{registry.host}/{unique_repo('airgap', 'from-archive')}:v1"
    assert _run(capsys, "push", f"oci-archive:{archive}", remote)[:2] == (0, f"Pushed {packed.digest}\n")
    assert pymodelkit.pull(remote, store=pymodelkit.LocalStore(tmp_path / "home3")).digest == packed.digest
    code, _, err = _run(capsys, "push", f"oci-archive:{archive}")
    assert code == 2 and "pushing from an OCI layout or archive needs a DESTINATION" in err
    code, _, err = _run(capsys, "push", ref, "--with-signatures")
    assert code == 2 and "--with-signatures needs an oci: or oci-archive: source or destination" in err


def test_air_gapped_path_with_signatures(
    registry: TestRegistry, fresh_registry: TestRegistry, tmp_path: Path, store: pymodelkit.LocalStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, pub = write_key_pair(generate_signing_key(), tmp_path / "cosign", password=None)
    # connected side: the ModelKit is in a registry and signed there (cosign .sig tag and a bundle referrer)
    repo = unique_repo("airgap", "signed")
    ref = f"{registry.host}/{repo}:v1"
    packed = _pack(tmp_path, ref, store)
    pymodelkit.push(ref, store=store)
    pymodelkit.sign(ref, key, bundle=True)
    archive = tmp_path / "carry.tar"
    code, out, _ = _run(capsys, "save", ref, "-o", archive, "--with-signatures")
    assert (code, out) == (0, f"Saved {packed.digest} to oci-archive:{archive} with 2 signature manifest(s)\n")
    # isolated side: load for local use, push (with the signatures) to the isolated registry, verify there
    isolated = tmp_path / "isolated"
    code, out, err = _run(capsys, "--config", isolated, "load", archive)
    assert (code, out) == (0, f"Loaded {ref} ({packed.digest})\n")
    assert "Kept 3 signature or referrer manifest(s) in the archive" in err
    inside = f"{fresh_registry.host}/{repo}:v1"
    assert _run(capsys, "push", f"oci-archive:{archive}", inside, "--with-signatures")[:2] == (
        0, f"Pushed {packed.digest}\n")
    verified = pymodelkit.verify(inside, [pub])
    assert verified.digest == packed.digest
    deploy = tmp_path / "deploy-home"
    code, _, err = _run(capsys, "--config", deploy, "unpack", "--verify", pub, inside, "-d", tmp_path / "models")
    assert code == 0, err
    assert read_tree(tmp_path / "models") == read_tree(tmp_path / "src-tree")
