"""Bad inputs to save, load and copy on this machine, from the bad-input audit: a directory given as an archive (P7),
OS errors that name the file asked for (P9), a failed copy into a layout directory undone (P16), an unknown
transport prefix refused instead of taken as a file name (P17). Each asserts the exit code, the one-line message and
what is on disk afterwards."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import BinaryIO

import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.errors import DigestMismatchError, InvalidReferenceError
from pymodelkit.ocilayout import directory as directory_module
from pymodelkit.ocilayout.directory import LayoutDirectory
from pymodelkit.ocilayout.layout import check_archive_path, transport_prefix
from pymodelkit.registry.copy import parse_endpoint_location
from tests.ocilayout.conftest import REFERENCE, Saved
from tests.support.trees import write_source_tree

OTHER_KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: other\nmodel:\n  name: other\n  path: model\n"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: files with their bytes, directories as ``None``."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _corrupt_copy(saved: Saved) -> Path:
    """The saved archive with one byte of its largest blob flipped: the tar is intact, the blob's digest is not."""
    data = bytearray(saved.archive.read_bytes())
    with tarfile.open(saved.archive) as tar:
        largest = max((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.size)
    data[largest.offset_data + 10] ^= 0xFF
    corrupt = saved.archive.with_name("corrupt.tar")
    corrupt.write_bytes(bytes(data))
    return corrupt


def _other_layout(tmp_path: Path) -> Path:
    """A layout directory holding another ModelKit (none of the saved one's blobs)."""
    store = pymodelkit.LocalStore(tmp_path / "home-other")
    pymodelkit.pack(write_source_tree(tmp_path / "other", OTHER_KITFILE, weights=5000), tag="other:v1", store=store)
    layout = tmp_path / "existing-layout"
    pymodelkit.save("other:v1", f"oci:{layout}", store=store)
    return layout


# ----- P7: a directory where an archive was expected -------------------------------------------------------------


def test_loading_a_plain_directory_says_what_it_is_and_what_was_expected(
    saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home-load"
    code, err = _cli(capsys, "--config", str(home), "load", str(saved.source))
    assert code == 1
    assert err == (f"pymodelkit: error: cannot read {saved.source} as an OCI archive: it is a directory but not an "
                   "OCI layout (no oci-layout file); name an OCI archive file, or oci:DIR for a layout directory\n")
    assert pymodelkit.LocalStore(home).list_modelkits() == []


def test_loading_a_layout_directory_without_oci_names_the_spelling_that_reads_it(
    saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = tmp_path / "layout"
    pymodelkit.save(REFERENCE, f"oci:{layout}", store=saved.store)
    home = tmp_path / "home-load"
    code, err = _cli(capsys, "--config", str(home), "load", str(layout))
    assert code == 1
    assert err == (f"pymodelkit: error: cannot read {layout} as an OCI archive: it is a directory holding an OCI "
                   f"layout; write oci:{layout} to read it as one\n")
    assert _cli(capsys, "--config", str(home), "load", f"oci:{layout}")[0] == 0
    assert [kit.digest for kit in pymodelkit.LocalStore(home).list_modelkits()] == [saved.packed.digest]


# ----- P9: OS errors name the file asked for ---------------------------------------------------------------------


def test_saving_into_a_missing_directory_names_it_and_writes_nothing(
    saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "nodir" / "x.tar"
    code, err = _cli(capsys, "--config", str(saved.store.home), "save", REFERENCE, "-o", str(target))
    assert code == 5
    assert err == f"pymodelkit: error: cannot save to {target}: directory {tmp_path / 'nodir'} does not exist\n"
    assert not (tmp_path / "nodir").exists()


def _disk_full_for(module: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files ``module`` opens are created under their names, but written to ``/dev/full`` (ENOSPC)."""
    real_open = open

    def open_full(path: str | os.PathLike[str], mode: str, buffering: int = -1) -> BinaryIO:
        real_open(path, mode).close()
        return real_open("/dev/full", "wb", buffering=buffering)

    monkeypatch.setattr(module, "open", open_full, raising=False)


def test_a_full_disk_while_saving_names_the_archive_not_its_temp(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pymodelkit.ocilayout import archive as archive_module

    _disk_full_for(archive_module, monkeypatch)
    target = tmp_path / "full.tar"
    code, err = _cli(capsys, "--config", str(saved.store.home), "save", REFERENCE, "-o", str(target))
    assert code == 1
    assert err == f"pymodelkit: error: No space left on device ({target})\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tar") or ".tmp" in p.name) == ["churn.tar"]


def test_a_full_disk_while_saving_into_a_layout_names_the_blob_and_removes_the_layout(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _disk_full_for(directory_module, monkeypatch)
    layout = tmp_path / "usb" / "layout"
    code, err = _cli(capsys, "--config", str(saved.store.home), "save", REFERENCE, "-o", f"oci:{layout}")
    assert code == 1
    assert err.startswith(f"pymodelkit: error: No space left on device ({layout}/blobs/sha256/")
    assert ".tmp" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "usb").exists()


def test_a_temp_file_that_cannot_be_opened_is_not_named(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a read-only directory (the tests run as root, which no mode bit stops): the error names the target."""
    from pymodelkit.ocilayout import archive as archive_module

    def refuse(path: str | os.PathLike[str], mode: str, buffering: int = -1) -> BinaryIO:
        raise PermissionError(13, "Permission denied", str(path))

    for module in (archive_module, directory_module):
        monkeypatch.setattr(module, "open", refuse, raising=False)
    with pytest.raises(PermissionError) as caught:
        pymodelkit.save(REFERENCE, tmp_path / "x.tar", store=saved.store)
    assert caught.value.filename == str(tmp_path / "x.tar")
    with pytest.raises(PermissionError) as caught:
        pymodelkit.save(REFERENCE, f"oci:{tmp_path / 'layout'}", store=saved.store)
    assert str(caught.value.filename).startswith(f"{tmp_path / 'layout'}/blobs/sha256/")
    assert ".tmp" not in str(caught.value.filename)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["churn.tar", "home-packed", "src-tree"])


# ----- P16: a failed copy into a layout directory is undone ------------------------------------------------------


def test_a_failed_copy_into_a_new_layout_leaves_no_directory(
    saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = _corrupt_copy(saved)
    target = tmp_path / "new" / "deeper" / "layout"
    code, err = _cli(capsys, "copy", f"oci-archive:{corrupt}", f"oci:{target}")
    assert code == 6
    assert err.startswith(f"pymodelkit: error: oci-archive:{corrupt}: blob digest mismatch: expected sha256:")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "new").exists()
    code, err = _cli(capsys, "load", f"oci:{target}")  # before: a layout without index.json, "holds no ModelKit"
    assert code == 5 and err == f"pymodelkit: error: layout {target} is not an OCI layout: it has no oci-layout file\n"


def test_a_failed_copy_into_an_existing_layout_leaves_it_as_it_was(saved: Saved, tmp_path: Path) -> None:
    corrupt = _corrupt_copy(saved)
    layout = _other_layout(tmp_path)
    before = _tree(layout)
    with pytest.raises(DigestMismatchError, match=f"oci-archive:{corrupt}: blob digest mismatch"):
        pymodelkit.copy(f"oci-archive:{corrupt}", f"oci:{layout}:v2", concurrency=4)
    assert _tree(layout) == before
    loaded = pymodelkit.load(f"oci:{layout}", store=pymodelkit.LocalStore(tmp_path / "home-check"))
    assert [str(k.reference) for k in loaded.modelkits] == ["localhost/other:v1"]


def test_a_failed_copy_into_an_empty_directory_leaves_it_empty(saved: Saved, tmp_path: Path) -> None:
    corrupt = _corrupt_copy(saved)
    target = tmp_path / "empty"
    target.mkdir()
    with pytest.raises(DigestMismatchError):
        pymodelkit.copy(f"oci-archive:{corrupt}", f"oci:{target}")
    assert list(target.iterdir()) == []


def test_an_interrupted_save_into_a_layout_removes_what_it_added(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _other_layout(tmp_path)
    before = _tree(layout)
    seen: list[int] = []

    def interrupt(self: LayoutDirectory, manifests: object) -> None:  # Ctrl-C just before index.json is written
        seen.append(len(_tree(layout)) - len(before))
        raise KeyboardInterrupt

    monkeypatch.setattr(LayoutDirectory, "add_manifests", interrupt)
    with pytest.raises(KeyboardInterrupt):
        pymodelkit.save(REFERENCE, f"oci:{layout}", store=saved.store)
    assert seen == [len(saved.packed.manifest.layers or ()) + 2]  # every layer, the config and the manifest
    assert _tree(layout) == before


def test_a_successful_copy_into_an_existing_layout_keeps_both(saved: Saved, tmp_path: Path) -> None:
    layout = _other_layout(tmp_path)
    pymodelkit.copy(f"oci-archive:{saved.archive}", f"oci:{layout}:v2")  # v1 would move the other's name
    loaded = pymodelkit.load(f"oci:{layout}", store=pymodelkit.LocalStore(tmp_path / "home-check"))
    assert sorted(str(k.reference) for k in loaded.modelkits) == ["localhost/other:v1", REFERENCE.replace(":v1", ":v2")]


# ----- P17: unknown transport prefixes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("docker-archive:/x.tar", "docker-archive:"),
        ("dir:/tmp/x", "dir:"),
        ("containers-storage:x", "containers-storage:"),
        ("oci:x", "oci:"),
        ("a:b.tar", "a:"),
        ("./a:b.tar", None),
        ("/data/a:b.tar", None),
        ("sub/a:b.tar", None),
        ("v1.0:b.tar", None),
        ("x.tar", None),
        ("1st:x.tar", None),
    ],
)
def test_what_reads_as_a_transport(text: str, prefix: str | None) -> None:
    assert transport_prefix(text) == prefix


def test_check_archive_path_refuses_other_transports_only() -> None:
    for fine in ("x.tar", "./a:b.tar", "/data/a:b.tar", "oci:layout", "oci-archive:x.tar", "demo:v1.tar",
                 "my_model:latest.tar", "backup-2024-01-01T10:00.tar", "C:x.tar"):
        check_archive_path(fine, "-o")  # a colon in a file name is fine (docker save -o demo:v1.tar works)
    for refused in ("dir:out", "tarball:/x.tar", "docker://reg/x:v1", "http://host/x.tar"):
        with pytest.raises(InvalidReferenceError, match=r"^unknown transport "):
            check_archive_path(refused, "-o")
    with pytest.raises(InvalidReferenceError) as caught:
        check_archive_path("docker-archive:/x.tar", "-o")
    assert str(caught.value) == ("unknown transport 'docker-archive:' in -o 'docker-archive:/x.tar': use "
                                 "oci-archive:FILE[:NAME], oci:DIR[:NAME] or a file path (start a file name that has "
                                 "a colon with ./)")


def test_save_refuses_an_unknown_transport_and_writes_nothing(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for output in (f"docker-archive:{tmp_path}/x.tar", "docker-archive:x.tar", "dir:out"):
        code, err = _cli(capsys, "--config", str(saved.store.home), "save", REFERENCE, "-o", output)
        assert code == 4
        prefix = output.split(":")[0]
        assert err == (f"pymodelkit: error: unknown transport '{prefix}:' in -o '{output}': use "
                       "oci-archive:FILE[:NAME], oci:DIR[:NAME] or a file path (start a file name that has a colon "
                       "with ./)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_library_refuses_an_unknown_transport_in_a_string_but_takes_a_path_as_a_path(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidReferenceError, match=r"^unknown transport 'docker-archive:' in location "):
        pymodelkit.save(REFERENCE, "docker-archive:x.tar", store=saved.store)
    assert not (tmp_path / "docker-archive:x.tar").exists()
    pymodelkit.save(REFERENCE, Path("docker-archive:x.tar"), store=saved.store)  # a Path is a file name
    assert (tmp_path / "docker-archive:x.tar").read_bytes() == saved.archive.read_bytes()


def test_a_file_name_with_a_colon_works_when_written_as_a_path(
    saved: Saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    home = str(saved.store.home)
    assert _cli(capsys, "--config", home, "save", REFERENCE, "-o", "./churn:v1.tar")[0] == 0
    assert (tmp_path / "churn:v1.tar").read_bytes() == saved.archive.read_bytes()
    assert _cli(capsys, "--config", home, "save", REFERENCE, "-o", "churn:v2.tar")[0] == 0
    assert (tmp_path / "churn:v2.tar").read_bytes() == saved.archive.read_bytes()
    assert _cli(capsys, "--config", str(tmp_path / "home-load0"), "load", "churn:v1.tar")[0] == 0  # as docker
    assert _cli(capsys, "--config", str(tmp_path / "home-load"), "load", "./churn:v1.tar")[0] == 0
    assert _cli(capsys, "--config", str(tmp_path / "home-load2"), "load", f"{tmp_path}/churn:v1.tar")[0] == 0


def test_copy_names_an_unknown_transport(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = ("unknown transport 'docker-archive:' in 'docker-archive:x.tar': copy takes oci:DIR[:NAME], "
                "oci-archive:FILE[:NAME], docker://REFERENCE or a registry reference")
    with pytest.raises(InvalidReferenceError) as caught:
        parse_endpoint_location("docker-archive:x.tar")
    assert str(caught.value) == expected
    with pytest.raises(InvalidReferenceError, match=r"unknown transport 'tar:' in 'tar:/x\.tar'"):
        parse_endpoint_location("tar:/x.tar")
    with pytest.raises(InvalidReferenceError) as caught:
        parse_endpoint_location("UPPER:bad")
    assert "unknown transport" not in str(caught.value)
    assert str(parse_endpoint_location("localhost:5000/team/churn")) == "localhost:5000/team/churn:latest"
    code, err = _cli(capsys, "copy", f"dir:{tmp_path}/x", f"oci:{tmp_path}/y")
    assert code == 4 and err.startswith(f"pymodelkit: error: unknown transport 'dir:' in 'dir:{tmp_path}/x'")
    assert list(tmp_path.iterdir()) == []
