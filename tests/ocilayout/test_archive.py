"""save → load through an OCI archive, byte-exact and deterministic; and every hostile or broken archive refused with
a one-line error before anything is added to the store."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

import pymodelkit
from pymodelkit.errors import DigestMismatchError, ModelKitError, NotFoundError, UnsafeArchiveError
from pymodelkit.ocilayout.archive import ArchiveReader
from tests.ocilayout.conftest import REFERENCE, Saved
from tests.support.trees import read_tree

Member = tuple[tarfile.TarInfo, bytes]


def _members(archive: Path) -> list[Member]:
    with tarfile.open(archive) as tar:
        out = []
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            out.append((info, handle.read() if handle is not None else b""))
        return out


def _write(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _rewrite(saved: Saved, edit: Callable[[list[Member]], list[Member]], name: str = "edited.tar") -> Path:
    return _write(saved.archive.with_name(name), edit(_members(saved.archive)))


def _extra(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, data


def _layer_name(saved: Saved) -> str:
    layers = saved.packed.manifest.layers or ()
    return f"blobs/sha256/{layers[0].digest.hex}"


def _assert_untouched(store: pymodelkit.LocalStore) -> None:
    assert store.list_modelkits() == []
    assert store.list_repositories() == []


# ----- the happy path --------------------------------------------------------------------------------------------


def test_load_into_an_empty_store_gives_the_same_manifest_and_bytes(
    saved: Saved, empty_store: pymodelkit.LocalStore, tmp_path: Path
) -> None:
    result = pymodelkit.load(saved.archive, store=empty_store)
    assert [(str(k.reference), k.digest) for k in result.modelkits] == [(REFERENCE, saved.packed.digest)]
    assert empty_store.read_blob(saved.packed.digest) == saved.packed.manifest_bytes
    pymodelkit.unpack(REFERENCE, tmp_path / "out", store=empty_store)
    assert read_tree(tmp_path / "out") == read_tree(saved.source)
    assert empty_store.fsck().ok
    again = pymodelkit.load(saved.archive, store=empty_store)  # loading twice copies nothing
    assert again.copy.copied == () and len(again.copy.skipped) == 1 + len(saved.packed.manifest.layers or ())


def test_saved_archive_is_deterministic_with_go_style_headers(saved: Saved) -> None:
    second = saved.archive.with_name("again.tar")
    pymodelkit.save(REFERENCE, second, store=saved.store)
    assert second.read_bytes() == saved.archive.read_bytes()
    members = _members(saved.archive)
    names = [info.name for info, _ in members]
    manifest = saved.packed.manifest
    blobs = [d.digest.hex for d in [manifest.config, *(manifest.layers or ())]] + [saved.packed.digest.hex]
    assert names == ["oci-layout", "blobs", "blobs/sha256", *(f"blobs/sha256/{h}" for h in blobs), "index.json"]
    assert {(i.uid, i.gid, i.mtime) for i, _ in members} == {(1000, 0, 0)}
    assert members[0][1] == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads(members[-1][1])
    assert index["manifests"] == [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(saved.packed.digest),
        "size": len(saved.packed.manifest_bytes),
        "annotations": {"io.containerd.image.name": REFERENCE, "org.opencontainers.image.ref.name": "v1"},
        "artifactType": "application/vnd.kitops.modelkit.manifest.v1+json",
    }]
    assert saved.archive.read_bytes()[-1024:] == bytes(1024)


def test_an_archive_with_only_a_tag_loads_under_the_file_name_or_the_given_reference(
    saved: Saved, empty_store: pymodelkit.LocalStore
) -> None:
    def strip_full_name(members: list[Member]) -> list[Member]:
        index = json.loads(members[-1][1])
        del index["manifests"][0]["annotations"]["io.containerd.image.name"]
        return [*members[:-1], (members[-1][0], json.dumps(index).encode())]

    archive = _rewrite(saved, strip_full_name, "Churn Model.tar")
    result = pymodelkit.load(archive, store=empty_store)
    assert str(result.modelkits[0].reference) == "localhost/churn-model:v1"
    renamed = pymodelkit.load(f"oci-archive:{archive}:v1", reference="reg.io/a/b:c", store=empty_store)
    assert str(renamed.modelkits[0].reference) == "reg.io/a/b:c"
    assert renamed.digest == saved.packed.digest


def test_docker_save_extras_are_ignored(saved: Saved, empty_store: pymodelkit.LocalStore) -> None:
    archive = _rewrite(saved, lambda m: [*m, _extra("manifest.json", b"[]"), _extra("repositories", b"{}")])
    assert pymodelkit.load(archive, store=empty_store).digest == saved.packed.digest


def test_push_and_pull_through_an_oci_layout_directory(saved: Saved, empty_store: pymodelkit.LocalStore,
                                                       tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    pymodelkit.save(REFERENCE, f"oci:{layout}:release", store=saved.store)
    pymodelkit.save(REFERENCE, f"oci:{layout}", store=saved.store)  # a second name, the blobs shared
    index = json.loads((layout / "index.json").read_bytes())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["release", "v1"]
    result = pymodelkit.load(f"oci:{layout}:release", store=empty_store)
    assert str(result.modelkits[0].reference) == "registry.example.com/team/churn:release"
    assert result.digest == saved.packed.digest


# ----- refused archives -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_extra("/etc/passwd"), "illegal member name '/etc/passwd'"),
        (_extra("blobs/sha256/../../../evil"), "illegal member name 'blobs/sha256/../../../evil'"),
        (_extra("blobs/sha256/" + "b" * 64, kind=tarfile.SYMTYPE, link="/etc/passwd"), "(link)"),
        (_extra("blobs/sha256/" + "c" * 64, kind=tarfile.LNKTYPE, link="oci-layout"), "(link)"),
        (_extra("blobs/sha256/" + "d" * 64, kind=tarfile.CHRTYPE), "(not a regular file)"),
        (_extra("blobs/sha256/" + "e" * 64, kind=tarfile.FIFOTYPE), "(not a regular file)"),
        (_extra("etc/cron.d/job"), "unexpected member etc/cron.d/job"),
        (_extra("blobs/sha256/not-a-digest"), "unexpected member blobs/sha256/not-a-digest"),
        (_extra("blobs/sha256/sub", kind=tarfile.DIRTYPE), "unexpected directory blobs/sha256/sub"),
    ],
)
def test_hostile_members_are_refused_and_nothing_is_stored(
    saved: Saved, empty_store: pymodelkit.LocalStore, member: Member, message: str
) -> None:
    archive = _rewrite(saved, lambda m: [m[0], member, *m[1:]])
    with pytest.raises(UnsafeArchiveError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        pymodelkit.load(archive, store=empty_store)
    _assert_untouched(empty_store)


def test_duplicate_members_with_different_content_are_refused(
    saved: Saved, empty_store: pymodelkit.LocalStore
) -> None:
    def twice(name: str, data: Callable[[bytes], bytes]) -> Callable[[list[Member]], list[Member]]:
        def edit(members: list[Member]) -> list[Member]:
            content = next(d for i, d in members if i.name == name)
            return [*members, (tarfile.TarInfo(name), data(content))]
        return edit

    layer = _layer_name(saved)
    for name, change in ((layer, lambda d: d[:-1] + bytes([d[-1] ^ 1])), (layer, lambda d: d + b"x"),
                         ("index.json", lambda d: d.replace(b"v1", b"v2"))):
        archive = _rewrite(saved, twice(name, change))
        with pytest.raises(UnsafeArchiveError, match=f"duplicate member {name} with different content"):
            pymodelkit.load(archive, store=empty_store)
        _assert_untouched(empty_store)
    same = _rewrite(saved, twice(layer, lambda d: d))  # an identical repeat (tar -r) is harmless
    assert pymodelkit.load(same, store=empty_store).digest == saved.packed.digest


@pytest.mark.parametrize("cut", [0.5, -1024 - 300])  # in a layer; in index.json's bytes
def test_a_truncated_archive_is_refused(saved: Saved, empty_store: pymodelkit.LocalStore, cut: float) -> None:
    data = saved.archive.read_bytes()
    truncated = saved.archive.with_name("cut.tar")
    truncated.write_bytes(data[: int(len(data) * cut) if cut > 0 else int(cut)])
    with pytest.raises(UnsafeArchiveError, match=rf"archive {truncated} is truncated"):
        pymodelkit.load(truncated, store=empty_store)
    _assert_untouched(empty_store)


def test_an_archive_without_its_end_blocks_is_refused(saved: Saved, empty_store: pymodelkit.LocalStore) -> None:
    cut = saved.archive.with_name("noend.tar")
    cut.write_bytes(saved.archive.read_bytes()[:-1024])
    with pytest.raises(UnsafeArchiveError, match=r"ends after member 'index\.json' without the end-of-archive blocks"):
        pymodelkit.load(cut, store=empty_store)


def test_a_damaged_header_is_refused(saved: Saved, empty_store: pymodelkit.LocalStore) -> None:
    data = bytearray(saved.archive.read_bytes())
    index_header = data.rfind(b"index.json\x00")
    data[index_header + 150] ^= 0x55  # inside the checksum field: the header no longer checks out
    damaged = saved.archive.with_name("damaged.tar")
    damaged.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match="is corrupt"):
        pymodelkit.load(damaged, store=empty_store)


def test_a_corrupted_blob_fails_its_digest_and_nothing_is_listed(
    saved: Saved, empty_store: pymodelkit.LocalStore
) -> None:
    layer = _layer_name(saved)
    archive = _rewrite(saved, lambda m: [(i, d[:100] + bytes([d[100] ^ 0xFF]) + d[101:]) if i.name == layer else (i, d)
                                         for i, d in m])
    with pytest.raises(DigestMismatchError, match=rf"oci-archive:{archive}: blob digest mismatch: expected "
                                                  rf"sha256:{layer[13:]}, got sha256:"):
        pymodelkit.load(archive, store=empty_store)
    _assert_untouched(empty_store)
    assert not empty_store.has_blob(saved.packed.digest)


def test_an_index_naming_a_missing_blob_gets_a_one_line_error(
    saved: Saved, empty_store: pymodelkit.LocalStore
) -> None:
    layer = _layer_name(saved)
    archive = _rewrite(saved, lambda m: [(i, d) for i, d in m if i.name != layer])
    with pytest.raises(NotFoundError) as caught:
        pymodelkit.load(archive, store=empty_store)
    assert str(caught.value) == (f"oci-archive:{archive}: manifest {saved.packed.digest} names blob sha256:"
                                 f"{layer[13:]}, which is missing")
    _assert_untouched(empty_store)
    manifest = f"blobs/sha256/{saved.packed.digest.hex}"
    archive = _rewrite(saved, lambda m: [(i, d) for i, d in m if i.name != manifest], "nomanifest.tar")
    with pytest.raises(NotFoundError, match=f"index.json names manifest {saved.packed.digest}, which is not among"):
        pymodelkit.load(archive, store=empty_store)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda m: m[1:], ModelKitError, "is not an OCI archive: it has no oci-layout"),
        (lambda m: [(m[0][0], b'{"imageLayoutVersion":"2.0.0"}'), *m[1:]], ModelKitError,
         "unsupported oci-layout imageLayoutVersion '2.0.0'"),
        (lambda m: m[:-1], ModelKitError, "is not an OCI archive: it has no index.json"),
        (lambda m: [*m[:-1], (m[-1][0], b"[]")], ModelKitError, "index.json is not an image index"),
        (lambda m: [*m[:-1], (m[-1][0], b" " * (4 << 20) + b"{}")], UnsafeArchiveError,
         "index.json is 4194306 bytes, more than the 4194304 allowed"),
    ],
)
def test_archives_without_a_valid_layout_are_refused(
    saved: Saved, empty_store: pymodelkit.LocalStore, edit: Callable[[list[Member]], list[Member]],
    error: type[Exception], message: str,
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        pymodelkit.load(_rewrite(saved, edit), store=empty_store)
    _assert_untouched(empty_store)


def test_not_a_tar_and_no_file(tmp_path: Path, empty_store: pymodelkit.LocalStore) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(hashlib.sha256(b"x").digest() * 100)
    with pytest.raises(UnsafeArchiveError, match=f"archive {junk} is not a tar archive"):
        pymodelkit.load(junk, store=empty_store)
    with pytest.raises(NotFoundError, match=f"archive {tmp_path / 'none.tar'} not found"):
        ArchiveReader(tmp_path / "none.tar")


def test_a_failed_save_leaves_no_file(saved: Saved, tmp_path: Path) -> None:
    layer = (saved.packed.manifest.layers or ())[0]
    path = saved.store.blob_path(layer.digest)
    path.chmod(0o600)
    path.write_bytes(b"\0" * layer.size)  # same size, other bytes: the save must notice
    target = tmp_path / "broken.tar"
    with pytest.raises(DigestMismatchError, match=f"blob {layer.digest}: its bytes hash to sha256:"):
        pymodelkit.save(REFERENCE, target, store=saved.store)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tar") or ".tmp" in p.name) == ["churn.tar"]


def test_a_full_disk_during_save_leaves_no_file(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write fails with ENOSPC (the archive's bytes go to /dev/full), also the buffered tail when the partial
    file is closed: the save fails with that error and its temp file is removed all the same."""
    from pymodelkit.ocilayout import archive as archive_module

    real_open = open

    def open_full(path: str | os.PathLike[str], mode: str, buffering: int = -1) -> BinaryIO:
        real_open(path, mode).close()  # the temp file exists, as the real "xb" open makes it
        return real_open("/dev/full", "wb", buffering=buffering)

    monkeypatch.setattr(archive_module, "open", open_full, raising=False)
    target = tmp_path / "full.tar"
    with pytest.raises(OSError) as info:
        pymodelkit.save(REFERENCE, target, store=saved.store)
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tar") or ".tmp" in p.name) == ["churn.tar"]


def test_saving_onto_a_directory_is_refused_before_anything_is_written(saved: Saved, tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    with pytest.raises(ModelKitError) as info:
        pymodelkit.save(REFERENCE, target, store=saved.store)
    assert str(info.value) == (f"cannot save to {target}: it is a directory (name an archive file, or write "
                               f"oci:{target} for an OCI layout directory)")
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
