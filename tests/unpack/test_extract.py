"""Safe extraction of tar and raw layers and of the Kitfile (spec §7, §2.8, §2.12, §11 trap 17).

Hostile archives are built here with Python's tarfile; each refused one must leave the target exactly as it was.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pymodelkit.errors import NotFoundError, UnpackError, UnsafeArchiveError
from pymodelkit.pack.compression import open_compressing_writer
from pymodelkit.unpack.extract import (
    TarMember,
    check_tar_target,
    extract_raw,
    extract_tar,
    scan_tar,
    write_kitfile,
)
from tests.support.trees import snapshot_tree

Entry = tuple[tarfile.TarInfo, bytes]


# --- building archives -------------------------------------------------------------------------------------------


def file_(name: str, data: bytes = b"", mode: int = 0o644) -> Entry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def dir_(name: str, mode: int = 0o755) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info, b""


def special(name: str, typeflag: bytes, linkname: str = "") -> Entry:
    info = tarfile.TarInfo(name)
    info.type = typeflag
    info.linkname = linkname
    return info, b""


def make_tar(*entries: Entry, fmt: int = tarfile.PAX_FORMAT, pax_headers: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, pax_headers=pax_headers) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    chunks: list[bytes] = []
    writer = open_compressing_writer(compression, lambda b: chunks.append(bytes(b)))
    writer.write(data)
    writer.close()
    return b"".join(chunks)


class OneWay(io.RawIOBase):
    """A readable, non-seekable stream (like a network body): no prescan is possible."""

    def __init__(self, data: bytes) -> None:
        self._source = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._source.readinto(buffer)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    (path / "keep.txt").write_bytes(b"keep")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "passwd").write_bytes(b"root:x:0:0\n")
    return path


# --- refused archives ----------------------------------------------------------------------------------------------

GOOD_FIRST = (dir_("ok"), file_("ok/first.txt", b"first"))

HOSTILE: dict[str, tuple[tuple[Entry, ...], str, str]] = {
    "parent escape": ((file_("../evil", b"x"),), "../evil", "illegal file path: ../evil: layer paths must stay"),
    "absolute": ((file_("/etc/x", b"x"),), "/etc/x", "illegal file path: /etc/x: absolute paths are not supported"),
    "nested escape": ((file_("a/../../x", b"x"),), "a/../../x", "illegal file path: a/../../x: layer paths must"),
    "inner dotdot": ((file_("a/../b", b"x"),), "a/../b", "illegal file path: a/../b: path contains a '..' element"),
    "dotdot dir": ((dir_("../up"),), "../up", "illegal file path: ../up: layer paths must stay"),
    "symlink": ((special("link", tarfile.SYMTYPE, "/etc"),), "link", "unrecognized type in archive: link (symlink)"),
    "hardlink": (
        (special("hard", tarfile.LNKTYPE, "/etc/passwd"),),
        "hard",
        "unrecognized type in archive: hard (hard link)",
    ),
    "char device": (
        (special("null", tarfile.CHRTYPE),),
        "null",
        "unrecognized type in archive: null (character device)",
    ),
    "block device": ((special("sda", tarfile.BLKTYPE),), "sda", "unrecognized type in archive: sda (block device)"),
    "fifo": ((special("pipe", tarfile.FIFOTYPE),), "pipe", "unrecognized type in archive: pipe (fifo)"),
    "file then dir": ((file_("a", b"x"), dir_("a")), "a", "illegal file path: a: both a file and a directory"),
    "dir then file": ((dir_("a"), file_("a", b"x")), "a", "illegal file path: a: both a file and a directory"),
    "file under file": (
        (file_("a", b"x"), file_("a/b", b"y")),
        "a/b",
        "illegal file path: a/b: 'a' is a file earlier in the archive",
    ),
    "file named dot": ((file_(".", b"x"),), ".", "illegal file path: .: not a file name"),
    "file with slash": ((file_("f/", b"x"),), "f/", "illegal file path: f/: not a file name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_scan_refuses_hostile_entry(case: str) -> None:
    entries, entry, message = HOSTILE[case]
    with pytest.raises(UnsafeArchiveError) as info:
        scan_tar(io.BytesIO(make_tar(*GOOD_FIRST, *entries)))
    assert str(info.value).startswith(message)
    assert info.value.details["entry"] == entry
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_extract_refuses_hostile_entry_before_writing(case: str, target: Path, outside: Path) -> None:
    entries, entry, message = HOSTILE[case]
    before, outside_before = snapshot_tree(target), snapshot_tree(outside)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_tar(io.BytesIO(make_tar(*GOOD_FIRST, *entries)), target)
    assert str(info.value).startswith(message)
    assert info.value.details["entry"] == entry
    assert snapshot_tree(target) == before
    assert snapshot_tree(outside) == outside_before
    assert not (target.parent / "evil").exists() and not (target.parent / "x").exists()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_one_way_stream_refuses_hostile_entry_while_writing(case: str, target: Path, outside: Path) -> None:
    """Without a prescan every entry is still checked before it is written: nothing lands outside the target, and
    what was written before the bad entry is removed again."""
    entries, entry, message = HOSTILE[case]
    before, outside_before = snapshot_tree(target), snapshot_tree(outside)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_tar(OneWay(make_tar(*GOOD_FIRST, *entries)), target)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert info.value.details["entry"] == entry
    assert snapshot_tree(outside) == outside_before
    assert sorted(p.name for p in target.parent.iterdir()) == ["outside", "target"]
    assert snapshot_tree(target) == before


def test_nul_in_name_refused() -> None:
    info, data = file_("x", b"")
    info.pax_headers = {"path": "a\x00b"}
    with pytest.raises(UnsafeArchiveError, match=r"^illegal file path: 'a\\x00b': NUL in name$"):
        scan_tar(io.BytesIO(make_tar((info, data))))


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_corrupt_compressed_layer_is_malformed(compression: str, target: Path) -> None:
    layer = bytearray(compress(make_tar(file_("a.bin", bytes(range(256)) * 64)), compression))
    layer[0] ^= 0xFF  # bad magic: a truncated zstd frame would read as empty, which only the digest catches
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError, match=r"^malformed "):
        extract_tar(io.BytesIO(bytes(layer)), target, compression=compression)
    assert snapshot_tree(target) == before


def test_missing_target_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"^unpack directory .*/nope does not exist$"):
        extract_tar(io.BytesIO(make_tar()), tmp_path / "nope")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_hostile_layer_refused_before_writing(compression: str, target: Path) -> None:
    before = snapshot_tree(target)
    layer = compress(make_tar(*GOOD_FIRST, special("link", tarfile.SYMTYPE, "/etc")), compression)
    with pytest.raises(UnsafeArchiveError, match=r"^unrecognized type in archive: link \(symlink\)$"):
        extract_tar(io.BytesIO(layer), target, compression=compression)
    assert snapshot_tree(target) == before


def test_seekable_decompressed_stream_is_prescanned(target: Path) -> None:
    """A GzipFile handed over already decompressed is seekable, so it is scanned and rewound too."""
    layer = compress(make_tar(*GOOD_FIRST, file_("../evil", b"x")), "gzip")
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError, match=r"^illegal file path: \.\./evil: "):
        extract_tar(gzip.GzipFile(fileobj=io.BytesIO(layer)), target)  # type: ignore[arg-type]
    assert snapshot_tree(target) == before
    good = compress(make_tar(*GOOD_FIRST), "gzip")
    assert extract_tar(gzip.GzipFile(fileobj=io.BytesIO(good)), target) == [target / "ok/first.txt"]  # type: ignore[arg-type]


def test_empty_name_refused(target: Path) -> None:
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_tar(io.BytesIO(make_tar(file_("", b"x"))), target)
    assert str(info.value) == "illegal file path: (empty name)"
    assert info.value.details["entry"] == ""
    assert snapshot_tree(target) == before


def test_pax_path_override_is_validated(target: Path) -> None:
    info, data = file_("harmless.txt", b"x")
    info.pax_headers = {"path": "../evil"}
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError) as err:
        extract_tar(io.BytesIO(make_tar((info, data))), target)
    assert err.value.details["entry"] == "../evil"
    assert snapshot_tree(target) == before


def test_gnu_long_name_is_validated(target: Path) -> None:
    name = "a/" * 60 + "../" * 70 + "evil"
    with pytest.raises(UnsafeArchiveError) as err:
        scan_tar(io.BytesIO(make_tar(file_(name, b"x"), fmt=tarfile.GNU_FORMAT)))
    assert err.value.details["entry"] == name


def test_pax_global_header_refused_as_kit_does(target: Path) -> None:
    before = snapshot_tree(target)
    layer = make_tar(file_("a.txt", b"x"), pax_headers={"comment": "global"})
    with pytest.raises(UnsafeArchiveError) as err:
        extract_tar(io.BytesIO(layer), target)
    assert str(err.value) == "unrecognized type in archive: PAX global header before a.txt"
    assert err.value.details["entry"] == "a.txt"
    assert snapshot_tree(target) == before


def test_corrupt_later_header_is_an_error_not_the_end(target: Path) -> None:
    layer = bytearray(make_tar(file_("a.txt", b"x" * 10), file_("b.txt", b"y"), fmt=tarfile.USTAR_FORMAT))
    layer[1024 + 148] ^= 0x01  # the second header's checksum
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError, match=r"^malformed tar layer after entry 'a.txt': ") as err:
        extract_tar(io.BytesIO(bytes(layer)), target)
    assert err.value.details["entry"] == "a.txt"
    assert snapshot_tree(target) == before


def test_truncated_layer_refused_before_writing(target: Path) -> None:
    layer = make_tar(file_("a.txt", b"a"), file_("big.bin", b"z" * 5000))[:2048]
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError, match=r"^malformed tar layer"):
        extract_tar(io.BytesIO(layer), target)
    assert snapshot_tree(target) == before


def test_garbage_is_malformed() -> None:
    with pytest.raises(UnsafeArchiveError, match=r"^malformed tar layer: "):
        scan_tar(io.BytesIO(b"not a tar archive at all" * 40))


# --- symlinks already in the target ---------------------------------------------------------------------------------


def test_planted_directory_symlink_refused(target: Path, outside: Path) -> None:
    (target / "a").symlink_to(outside)
    before, outside_before = snapshot_tree(target), snapshot_tree(outside)
    layer = make_tar(file_("fine.txt", b"ok"), file_("a/passwd", b"owned"))
    with pytest.raises(UnsafeArchiveError) as err:
        extract_tar(io.BytesIO(layer), target, overwrite=True)
    assert str(err.value) == "illegal file path: a/passwd: 'a' is a symlink in the target directory"
    assert err.value.details["entry"] == "a/passwd"
    assert snapshot_tree(target) == before
    assert snapshot_tree(outside) == outside_before


def test_planted_symlink_refused_on_one_way_stream(target: Path, outside: Path) -> None:
    """Without a prescan the write path itself (O_NOFOLLOW under a directory descriptor) refuses the symlink."""
    (target / "a").symlink_to(outside)
    outside_before = snapshot_tree(outside)
    layer = make_tar(dir_("a"), dir_("a/sub"), file_("a/sub/x", b"owned"))
    with pytest.raises(UnsafeArchiveError) as err:
        extract_tar(OneWay(layer), target)  # type: ignore[arg-type]
    assert err.value.details["entry"] == "a"
    assert snapshot_tree(outside) == outside_before
    layer = make_tar(file_("a/passwd", b"owned"))
    with pytest.raises(UnsafeArchiveError, match=r"'a' is a symlink in the target directory"):
        extract_tar(OneWay(layer), target, overwrite=True)  # type: ignore[arg-type]
    assert snapshot_tree(outside) == outside_before


def test_planted_file_symlink_never_written_through(target: Path, outside: Path) -> None:
    (target / "f").symlink_to(outside / "passwd")
    before, outside_before = snapshot_tree(target), snapshot_tree(outside)
    layer = make_tar(file_("f", b"owned"))
    with pytest.raises(UnsafeArchiveError, match=r"^illegal file path: f: 'f' is a symlink in the target directory$"):
        extract_tar(io.BytesIO(layer), target, overwrite=True)
    with pytest.raises(UnsafeArchiveError, match=r"'f' is a symlink"):
        extract_tar(OneWay(layer), target, overwrite=True)  # type: ignore[arg-type]
    with pytest.raises(UnpackError, match=r"^path 'f' already exists$"):
        extract_tar(io.BytesIO(layer), target)
    assert extract_tar(io.BytesIO(layer), target, ignore_existing=True) == []
    assert snapshot_tree(target) == before
    assert snapshot_tree(outside) == outside_before


def test_check_tar_target_refuses_symlinked_directory_entry(target: Path, outside: Path) -> None:
    (target / "d").symlink_to(outside)
    with pytest.raises(UnsafeArchiveError, match=r"^illegal file path: d: 'd' is a symlink in the target directory$"):
        check_tar_target([TarMember("d", True, 0o755, 0)], target)


# --- existing files -------------------------------------------------------------------------------------------------


def test_existing_file_refused_without_overwrite_before_any_write(target: Path) -> None:
    before = snapshot_tree(target)
    layer = make_tar(file_("new.txt", b"new"), file_("keep.txt", b"replaced"))
    with pytest.raises(UnpackError) as err:
        extract_tar(io.BytesIO(layer), target)
    assert str(err.value) == "path 'keep.txt' already exists"
    assert err.value.details["path"] == "keep.txt"
    assert snapshot_tree(target) == before


def test_overwrite_replaces_regular_file(target: Path) -> None:
    layer = make_tar(file_("keep.txt", b"replaced", mode=0o600), file_("new.txt", b"new"))
    os.chmod(target / "keep.txt", 0o640)
    written = extract_tar(io.BytesIO(layer), target, overwrite=True)
    assert written == [target / "keep.txt", target / "new.txt"]
    assert (target / "keep.txt").read_bytes() == b"replaced"
    # The replacement keeps the existing file's mode, as kit's O_CREAT|O_TRUNC OpenFile does.
    assert stat.S_IMODE((target / "keep.txt").stat().st_mode) == 0o640
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt", "new.txt"]  # no temporary file left


def test_ignore_existing_skips_and_reports_only_new_files(target: Path) -> None:
    layer = make_tar(file_("keep.txt", b"replaced"), file_("new.txt", b"new"))
    written = extract_tar(io.BytesIO(layer), target, ignore_existing=True)
    assert written == [target / "new.txt"]
    assert (target / "keep.txt").read_bytes() == b"keep"
    assert (target / "new.txt").read_bytes() == b"new"


def test_overwrite_refuses_directory_in_place_of_file(target: Path) -> None:
    (target / "d").mkdir()
    before = snapshot_tree(target)
    with pytest.raises(UnpackError, match=r"^path 'd' already exists and is not a regular file$"):
        extract_tar(io.BytesIO(make_tar(file_("d", b"x"))), target, overwrite=True)
    with pytest.raises(UnpackError, match=r"^path 'd' already exists and is not a regular file$"):
        extract_tar(OneWay(make_tar(file_("d", b"x"))), target, overwrite=True)  # type: ignore[arg-type]
    assert snapshot_tree(target) == before


def test_file_in_place_of_directory_refused(target: Path) -> None:
    before = snapshot_tree(target)
    with pytest.raises(UnpackError, match=r"^path 'keep.txt' already exists and is not a directory$"):
        extract_tar(io.BytesIO(make_tar(dir_("keep.txt"))), target, overwrite=True)
    with pytest.raises(UnpackError, match=r"^path 'keep.txt' already exists and is not a directory$"):
        extract_tar(io.BytesIO(make_tar(file_("keep.txt/inner", b"x"))), target, overwrite=True)
    with pytest.raises(UnpackError, match=r"^path 'keep.txt' already exists and is not a directory$"):
        extract_tar(OneWay(make_tar(file_("keep.txt/inner", b"x"))), target)  # type: ignore[arg-type]
    assert snapshot_tree(target) == before


def test_duplicate_file_in_archive(target: Path) -> None:
    layer = make_tar(file_("dup", b"one"), file_("dup", b"two"))
    before = snapshot_tree(target)
    with pytest.raises(UnpackError, match=r"^path 'dup' already exists$"):
        extract_tar(io.BytesIO(layer), target)
    assert snapshot_tree(target) == before
    assert extract_tar(io.BytesIO(layer), target, overwrite=True) == [target / "dup", target / "dup"]
    assert (target / "dup").read_bytes() == b"two"


def test_existing_directory_is_reused_without_chmod(target: Path) -> None:
    (target / "d").mkdir(mode=0o700)
    written = extract_tar(io.BytesIO(make_tar(dir_("d", 0o755), file_("d/x", b"x"))), target)
    assert written == [target / "d" / "x"]
    assert stat.S_IMODE((target / "d").stat().st_mode) == 0o700


# --- successful extraction ------------------------------------------------------------------------------------------


def test_extracts_nested_tree_with_modes(target: Path) -> None:
    layer = make_tar(
        dir_("model", 0o750),
        dir_("model/empty", 0o700),
        dir_("model/weights"),
        file_("model/weights/a.bin", b"\x00\x01\x02", 0o600),
        file_("model/run.sh", b"#!/bin/sh\n", 0o755),
        file_("model/suid", b"s", 0o4755),
    )
    written = extract_tar(io.BytesIO(layer), target)
    assert written == [target / "model/weights/a.bin", target / "model/run.sh", target / "model/suid"]
    assert snapshot_tree(target) == {
        "keep.txt": ("file", 0o644, b"keep"),
        "model": ("dir", 0o750),
        "model/empty": ("dir", 0o700),
        "model/run.sh": ("file", 0o755, b"#!/bin/sh\n"),
        "model/suid": ("file", 0o755, b"s"),
        "model/weights": ("dir", 0o755),
        "model/weights/a.bin": ("file", 0o600, b"\x00\x01\x02"),
    }


def test_scan_lists_members_and_reads_to_the_end() -> None:
    layer = make_tar(dir_("./"), dir_("m", 0o750), file_("m/a", b"abc", 0o4640), file_("./m//b", b""))
    layer += b"\x00" * 4096  # trailing padding after the end-of-archive marker
    stream = io.BytesIO(layer)
    assert scan_tar(stream) == [
        TarMember(".", True, 0o755, 0),
        TarMember("m", True, 0o750, 0),
        TarMember("m/a", False, 0o640, 3),
        TarMember("m/b", False, 0o644, 0),
    ]
    assert stream.tell() == len(layer)


def test_umask_applies(target: Path) -> None:
    previous = os.umask(0o077)
    try:
        extract_tar(io.BytesIO(make_tar(dir_("d", 0o755), file_("d/f", b"x", 0o644))), target)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((target / "d").stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "d/f").stat().st_mode) == 0o600


def test_parents_created_for_files_without_directory_entries(target: Path) -> None:
    written = extract_tar(io.BytesIO(make_tar(file_("x/y/z.txt", b"z", 0o640))), target)
    assert written == [target / "x/y/z.txt"]
    assert snapshot_tree(target)["x"] == ("dir", 0o755)
    assert snapshot_tree(target)["x/y"] == ("dir", 0o755)
    assert snapshot_tree(target)["x/y/z.txt"] == ("file", 0o640, b"z")


def test_empty_stream_and_empty_archive_have_no_entries(target: Path) -> None:
    before = snapshot_tree(target)
    assert scan_tar(io.BytesIO(b"")) == []
    assert extract_tar(io.BytesIO(b""), target) == []
    assert scan_tar(io.BytesIO(make_tar())) == []
    assert extract_tar(io.BytesIO(make_tar()), target) == []
    assert snapshot_tree(target) == before


def test_long_names_pax_and_gnu(target: Path) -> None:
    name = "deep/" + "d" * 120 + "/file.txt"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        written = extract_tar(io.BytesIO(make_tar(file_(name, b"long"), fmt=fmt)), target, overwrite=True)
        assert written == [target / name]
        assert (target / name).read_bytes() == b"long"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("seekable", [True, False])
def test_compressed_layers(compression: str, seekable: bool, target: Path) -> None:
    big = bytes(range(256)) * 12289  # a little over 3 MiB: crosses the copy buffer
    layer = compress(make_tar(dir_("data"), file_("data/big.bin", big), file_("data/small.txt", b"s")), compression)
    stream = io.BytesIO(layer) if seekable else OneWay(layer)
    written = extract_tar(stream, target, compression=compression)  # type: ignore[arg-type]
    assert written == [target / "data/big.bin", target / "data/small.txt"]
    assert (target / "data/big.bin").read_bytes() == big
    assert scan_tar(io.BytesIO(layer), compression=compression) == [
        TarMember("data", True, 0o755, 0),
        TarMember("data/big.bin", False, 0o644, len(big)),
        TarMember("data/small.txt", False, 0o644, 1),
    ]


def test_extract_with_members_from_an_earlier_scan(target: Path) -> None:
    layer = make_tar(file_("a", b"1"), file_("b", b"2"))
    members = scan_tar(io.BytesIO(layer))
    assert extract_tar(OneWay(layer), target, members=members) == [target / "a", target / "b"]  # type: ignore[arg-type]


def test_extract_with_members_checks_target_first(target: Path) -> None:
    layer = make_tar(file_("a", b"1"), file_("keep.txt", b"2"))
    members = scan_tar(io.BytesIO(layer))
    before = snapshot_tree(target)
    with pytest.raises(UnpackError, match=r"^path 'keep.txt' already exists$"):
        extract_tar(OneWay(layer), target, members=members)  # type: ignore[arg-type]
    assert snapshot_tree(target) == before


def test_extract_refuses_stream_that_differs_from_scan(target: Path) -> None:
    members = scan_tar(io.BytesIO(make_tar(file_("a", b"1"))))
    with pytest.raises(UnsafeArchiveError, match=r"^layer changed since it was scanned: unexpected entry b$"):
        extract_tar(OneWay(make_tar(file_("b", b"1"))), target, members=members)  # type: ignore[arg-type]
    with pytest.raises(UnsafeArchiveError, match=r"^layer changed since it was scanned: entries missing$"):
        extract_tar(OneWay(make_tar()), target, members=members)  # type: ignore[arg-type]


def test_one_way_stream_validates_every_entry_while_writing(target: Path) -> None:
    layer = make_tar(dir_("d"), file_("d/first.txt", b"1"), file_("second.txt", b"2"), file_("../evil", b"x"))
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError) as err:
        extract_tar(OneWay(layer), target)  # type: ignore[arg-type]
    assert err.value.details["entry"] == "../evil"
    assert not (target.parent / "evil").exists()
    # Without a prescan, the entries before the bad one were written, and are removed again.
    assert snapshot_tree(target) == before


# --- raw layers -----------------------------------------------------------------------------------------------------

RAW_META = (
    '{"name":"model.gguf","mode":493,"uid":0,"gid":0,"size":5,"mtime":"2026-01-02T03:04:05.123+01:00","typeflag":0}'
)


def test_raw_layer_mode_and_size_from_metadata(target: Path) -> None:
    path = extract_raw(
        io.BytesIO(b"GGUF!"), target, file_path="models/model.gguf", metadata_json=RAW_META, expected_size=5
    )
    assert path == target / "models/model.gguf"
    assert snapshot_tree(target)["models"] == ("dir", 0o755)
    assert snapshot_tree(target)["models/model.gguf"] == ("file", 0o755, b"GGUF!")
    assert sorted(p.name for p in (target / "models").iterdir()) == ["model.gguf"]


def test_raw_layer_default_mode(target: Path) -> None:
    path = extract_raw(io.BytesIO(b"abc"), target, file_path="a.bin", metadata_json=None, expected_size=None)
    assert snapshot_tree(target)["a.bin"] == ("file", 0o644, b"abc")
    assert path == target / "a.bin"


def test_raw_layer_zstd(target: Path) -> None:
    data = b"weights" * 1000
    meta = f'{{"name":"w.bin","mode":384,"size":{len(data)},"typeflag":0}}'
    extract_raw(
        io.BytesIO(compress(data, "zstd")),
        target,
        file_path="w.bin",
        metadata_json=meta,
        expected_size=None,
        compression="zstd",
    )
    assert snapshot_tree(target)["w.bin"] == ("file", 0o600, data)


@pytest.mark.parametrize(
    "meta, expected_size, message",
    [
        (RAW_META.replace('"size":5', '"size":6'), None, "raw layer m.gguf is 5 bytes, expected 6"),
        (None, 4, "raw layer m.gguf is 5 bytes, expected 4"),
    ],
)
def test_raw_layer_size_mismatch_leaves_nothing(
    meta: str | None, expected_size: int | None, message: str, target: Path
) -> None:
    before = snapshot_tree(target)
    with pytest.raises(UnpackError) as err:
        extract_raw(io.BytesIO(b"GGUF!"), target, file_path="m.gguf", metadata_json=meta, expected_size=expected_size)
    assert str(err.value) == message
    assert err.value.details["actual"] == 5
    assert snapshot_tree(target) == before


@pytest.mark.parametrize(
    "file_path, message",
    [
        ("../m.gguf", "illegal file path: ../m.gguf: layer paths must stay within context directory"),
        ("/m.gguf", "illegal file path: /m.gguf: absolute paths are not supported"),
        ("a/../m.gguf", "illegal file path: a/../m.gguf: path contains a '..' element"),
        (".", "illegal file path: .: not a file name"),
        ("", "illegal file path: (empty name)"),
    ],
)
def test_raw_layer_bad_path(file_path: str, message: str, target: Path) -> None:
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError) as err:
        extract_raw(io.BytesIO(b"x"), target, file_path=file_path, metadata_json=None, expected_size=None)
    assert str(err.value) == message
    assert err.value.details["entry"] == file_path
    assert snapshot_tree(target) == before


def test_raw_layer_corrupt_zstd_leaves_nothing(target: Path) -> None:
    layer = bytearray(compress(bytes(range(256)) * 64, "zstd"))
    layer[0] ^= 0xFF  # bad magic: a truncated zstd frame would read as empty, which only the digest catches
    before = snapshot_tree(target)
    with pytest.raises(UnsafeArchiveError, match=r"^malformed raw layer w.bin: "):
        extract_raw(
            io.BytesIO(bytes(layer)),
            target,
            file_path="w.bin",
            metadata_json=None,
            expected_size=None,
            compression="zstd",
        )
    assert snapshot_tree(target) == before


def test_raw_layer_bad_metadata(target: Path) -> None:
    before = snapshot_tree(target)
    with pytest.raises(UnpackError, match=r"^invalid file metadata annotation for m: "):
        extract_raw(io.BytesIO(b"x"), target, file_path="m", metadata_json="{nope", expected_size=None)
    with pytest.raises(UnpackError, match=r"^invalid file metadata annotation for m: bad mode$"):
        extract_raw(io.BytesIO(b"x"), target, file_path="m", metadata_json='{"mode":"0644"}', expected_size=None)
    with pytest.raises(UnsafeArchiveError, match=r"^unrecognized type in raw layer: m \(typeflag 2\)$"):
        extract_raw(io.BytesIO(b"x"), target, file_path="m", metadata_json='{"typeflag":2}', expected_size=None)
    assert snapshot_tree(target) == before


def test_raw_layer_existing_file_rules(target: Path) -> None:
    def run(*, overwrite: bool = False, ignore_existing: bool = False) -> Path:
        return extract_raw(
            io.BytesIO(b"new"),
            target,
            file_path="keep.txt",
            metadata_json=None,
            expected_size=None,
            overwrite=overwrite,
            ignore_existing=ignore_existing,
        )

    with pytest.raises(UnpackError, match=r"^path 'keep.txt' already exists$"):
        run()
    assert run(ignore_existing=True) == target / "keep.txt"
    assert (target / "keep.txt").read_bytes() == b"keep"
    assert run(overwrite=True) == target / "keep.txt"
    assert snapshot_tree(target) == {"keep.txt": ("file", 0o644, b"new")}


def test_raw_layer_refuses_symlinks_in_target(target: Path, outside: Path) -> None:
    (target / "a").symlink_to(outside)
    (target / "f").symlink_to(outside / "passwd")
    before, outside_before = snapshot_tree(target), snapshot_tree(outside)
    with pytest.raises(UnsafeArchiveError, match=r"^illegal file path: a/passwd: 'a' is a symlink in the target"):
        extract_raw(
            io.BytesIO(b"x"), target, file_path="a/passwd", metadata_json=None, expected_size=None, overwrite=True
        )
    with pytest.raises(UnsafeArchiveError, match=r"^illegal file path: f: 'f' is a symlink in the target"):
        extract_raw(io.BytesIO(b"x"), target, file_path="f", metadata_json=None, expected_size=None, overwrite=True)
    assert snapshot_tree(target) == before
    assert snapshot_tree(outside) == outside_before


# --- the Kitfile ----------------------------------------------------------------------------------------------------

KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: demo\n"


def test_write_new_kitfile(target: Path) -> None:
    assert write_kitfile(target, KITFILE, overwrite=False) == target / "Kitfile"
    assert snapshot_tree(target)["Kitfile"] == ("file", 0o644, KITFILE.encode())


def test_identical_kitfile_is_accepted_untouched(target: Path) -> None:
    (target / "Kitfile").write_text(KITFILE)
    os.chmod(target / "Kitfile", 0o600)
    before = (target / "Kitfile").stat()
    assert write_kitfile(target, KITFILE, overwrite=False) == target / "Kitfile"
    after = (target / "Kitfile").stat()
    assert (after.st_ino, after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (before.st_ino, before.st_mtime_ns, 0o600)


@pytest.mark.parametrize("existing", [KITFILE + "# extra\n", KITFILE.replace("demo", "dema")])
def test_different_kitfile_refused_without_overwrite(existing: str, target: Path) -> None:
    (target / "Kitfile").write_text(existing)
    before = snapshot_tree(target)
    with pytest.raises(UnpackError) as err:
        write_kitfile(target, KITFILE, overwrite=False)
    assert str(err.value) == "Kitfile exists and does not match model's Kitfile"
    assert snapshot_tree(target) == before
    write_kitfile(target, KITFILE, overwrite=True)
    assert (target / "Kitfile").read_text() == KITFILE


def test_kitfile_that_is_not_a_regular_file(target: Path, outside: Path) -> None:
    (target / "Kitfile").mkdir()
    with pytest.raises(UnpackError, match=r"^path .*/target/Kitfile exists and is not a regular file$"):
        write_kitfile(target, KITFILE, overwrite=True)
    (target / "Kitfile").rmdir()
    (target / "Kitfile").symlink_to(outside / "passwd")
    outside_before = snapshot_tree(outside)
    for overwrite in (False, True):
        with pytest.raises(UnpackError, match=r"exists and is not a regular file$"):
            write_kitfile(target, KITFILE, overwrite=overwrite)
    assert snapshot_tree(outside) == outside_before
