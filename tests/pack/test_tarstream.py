"""Tests for pymodelkit.pack.tarstream: Go archive/tar bytes for kit's headers (spec §2.6, vectors §2.13)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from pymodelkit.errors import PackError
from pymodelkit.pack.ignore import IgnoreMatcher
from pymodelkit.pack.tarstream import END_OF_ARCHIVE, tar_header_blocks, write_tar
from pymodelkit.pack.walk import TarEntry, walk_layer


def make_files(context: Path, files: list[str]) -> None:
    """Create each file with ``testing: <path as listed>``; files 0644, directories 0755 (kit's setupFiles)."""
    for listed in files:
        target = context / listed
        for parent in reversed(target.relative_to(context).parents):
            directory = context / parent
            if not directory.is_dir():
                directory.mkdir()
                directory.chmod(0o755)
        target.write_text(f"testing: {listed}")
        target.chmod(0o644)


def layer_digest(context: Path, layer: str, exclusions: list[str]) -> tuple[int, str]:
    hasher = hashlib.sha256()
    size = write_tar(walk_layer(context, layer, IgnoreMatcher.load(context, exclusions)), hasher.update)
    return size, "sha256:" + hasher.hexdigest()


def tar_bytes(entries: list[TarEntry], buffer_bytes: int = 4 << 20) -> bytes:
    out = bytearray()
    write_tar(entries, out.extend, buffer_bytes=buffer_bytes)
    return bytes(out)


def checksum_ok(block: bytes) -> bool:
    expected = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    return block[148:156] == b"%06o\x00 " % expected


def test_vector_a_layer_digests(tmp_path: Path) -> None:
    make_files(tmp_path, ["test-file.txt", "test-dir/test-subfile.txt"])
    (tmp_path / "Kitfile").write_text("manifestVersion: 1.0.0\n")
    exclusions = ["test-dir/test-subfile.txt", "test-file.txt"]  # datasets, then model.path
    assert layer_digest(tmp_path, "test-file.txt", exclusions) == (
        2048,
        "sha256:6113dc0196babc14ea7df88a18e47175ae7e77471cbcb56ff970f6a89b1e21cb",
    )
    assert layer_digest(tmp_path, "test-dir/test-subfile.txt", exclusions) == (
        2560,
        "sha256:6f52a94a0d62d71535e7596c1e3eeb31aaacd563f9b8bc98f83624da16917b0f",
    )


def test_vector_b_layer_digests(tmp_path: Path) -> None:
    make_files(tmp_path, ["./model/my-model.bin", "./datasets/my-dataset.bin", "./code/my-code.py"])
    (tmp_path / "Kitfile").write_text("manifestVersion: 1.0.0\n")
    exclusions = ["./code", "./datasets", "./model"]  # code, datasets, model.path
    assert [layer_digest(tmp_path, layer, exclusions) for layer in ("./model", "./code", "./datasets")] == [
        (2560, "sha256:4ce780974b1587b97d7e75bc39d9b45ed062afbaeb28b38d982139a183169c32"),
        (2560, "sha256:ecad50eb0c0d444307ad97a1ec9c5ebcd3f35be05512797443e93de929d74439"),
        (2560, "sha256:f33c29d60930cf3270479f2f25d0e0edbd1e1f79dc209829ff261e4d524b3442"),
    ]


def ustar_fields(block: bytes) -> dict[str, bytes]:
    return {
        "name": block[0:100],
        "mode": block[100:108],
        "uid": block[108:116],
        "gid": block[116:124],
        "size": block[124:136],
        "mtime": block[136:148],
        "typeflag": block[156:157],
        "linkname": block[157:257],
        "magic": block[257:265],
        "uname_gname": block[265:329],
        "devmajor": block[329:337],
        "devminor": block[337:345],
        "prefix": block[345:500],
        "pad": block[500:512],
    }


def field(text: bytes, width: int) -> bytes:
    return text + bytes(width - len(text))


def expected_main(name: bytes, mode: bytes, size: bytes, typeflag: bytes, prefix: bytes = b"") -> dict[str, bytes]:
    return {
        "name": field(name, 100),
        "mode": mode,
        "uid": b"0001750\x00",
        "gid": b"0000000\x00",
        "size": size,
        "mtime": b"00000000000\x00",
        "typeflag": typeflag,
        "linkname": bytes(100),
        "magic": b"ustar\x0000",
        "uname_gname": bytes(64),
        "devmajor": b"0000000\x00",
        "devminor": b"0000000\x00",
        "prefix": field(prefix, 155),
        "pad": bytes(12),
    }


def expected_extended(name: bytes, size: int) -> dict[str, bytes]:
    return {
        "name": field(name, 100),
        "mode": b"0000000\x00",
        "uid": b"0000000\x00",
        "gid": b"0000000\x00",
        "size": b"%011o\x00" % size,
        "mtime": b"00000000000\x00",
        "typeflag": b"x",
        "linkname": bytes(100),
        "magic": b"ustar\x0000",
        "uname_gname": bytes(64),
        "devmajor": bytes(8),
        "devminor": bytes(8),
        "prefix": bytes(155),
        "pad": bytes(12),
    }


def test_regular_file_and_directory_headers(tmp_path: Path) -> None:
    file_block = tar_header_blocks(TarEntry("test-file.txt", tmp_path / "x", False, 0o644, 22))
    dir_block = tar_header_blocks(TarEntry("test-dir", tmp_path / "d", True, 0o755, 0))
    assert ustar_fields(file_block) == expected_main(b"test-file.txt", b"0000644\x00", b"00000000026\x00", b"0")
    assert ustar_fields(dir_block) == expected_main(b"test-dir", b"0000755\x00", b"00000000000\x00", b"5")
    assert file_block[148:156] == b"%06o\x00 " % (sum(file_block[:148]) + 256 + sum(file_block[156:]))
    assert checksum_ok(dir_block)


def test_special_mode_bits_are_kept(tmp_path: Path) -> None:
    block = tar_header_blocks(TarEntry("d", tmp_path, True, 0o7755, 0))
    assert block[100:108] == b"0007755\x00"


def test_long_ascii_name_is_split_at_last_slash(tmp_path: Path) -> None:
    name = "a" * 60 + "/" + "b" * 50 + "/" + "c" * 20
    block = tar_header_blocks(TarEntry(name, tmp_path, False, 0o644, 5))
    assert len(block) == 512
    prefix = ("a" * 60 + "/" + "b" * 50).encode()
    assert ustar_fields(block) == expected_main(b"c" * 20, b"0000644\x00", b"00000000005\x00", b"0", prefix)
    assert checksum_ok(block)


def test_long_name_whose_last_split_fails_uses_pax(tmp_path: Path) -> None:
    # the last "/" leaves a 101-byte name part, so the 134-byte name cannot be split
    name = "p/" + "q" * 30 + "/" + "x" * 101
    blocks = tar_header_blocks(TarEntry(name, tmp_path, False, 0o644, 1))
    record = b"144 path=" + name.encode() + b"\n"
    assert len(record) == 144
    assert len(blocks) == 3 * 512
    ext_name = ("p/" + "q" * 30 + "/PaxHeaders.0/" + "x" * 101)[:100].encode()
    assert ustar_fields(blocks[:512]) == expected_extended(ext_name, 144)
    assert blocks[512:1024] == record + bytes(512 - 144)
    assert ustar_fields(blocks[1024:]) == expected_main(name.encode()[:100], b"0000644\x00", b"00000000001\x00", b"0")
    assert checksum_ok(blocks[:512])
    assert checksum_ok(blocks[1024:])


def test_long_unsplittable_name_uses_pax(tmp_path: Path) -> None:
    name = "d/" + "x" * 120
    blocks = tar_header_blocks(TarEntry(name, tmp_path, True, 0o755, 0))
    record = b"132 path=" + name.encode() + b"\n"
    assert len(record) == 132
    ext_name = b"d/PaxHeaders.0/" + b"x" * 85
    assert ustar_fields(blocks[:512]) == expected_extended(ext_name, 132)
    assert blocks[512:1024] == record + bytes(512 - 132)
    assert ustar_fields(blocks[1024:]) == expected_main(b"d/" + b"x" * 98, b"0000755\x00", b"00000000000\x00", b"5")


def test_truncated_name_never_ends_in_slash(tmp_path: Path) -> None:
    # Go formatString: a cut name whose last kept byte is "/" is NUL-terminated before the slash run.
    name = "y" * 98 + "//" + "z" * 110
    blocks = tar_header_blocks(TarEntry(name, tmp_path, False, 0o644, 0))
    main = blocks[-512:]
    assert main[0:100] == b"y" * 98 + b"\x00/"


def test_non_ascii_name_uses_pax_and_drops_runes_from_main_name(tmp_path: Path) -> None:
    name = "modèle/poids.bin"
    blocks = tar_header_blocks(TarEntry(name, tmp_path, False, 0o644, 3))
    record = "26 path=modèle/poids.bin\n".encode()
    assert len(record) == 26
    assert len(blocks) == 3 * 512
    assert ustar_fields(blocks[:512]) == expected_extended(b"modle/PaxHeaders.0/poids.bin", 26)
    assert blocks[512:1024] == record + bytes(512 - 26)
    assert ustar_fields(blocks[1024:]) == expected_main(b"modle/poids.bin", b"0000644\x00", b"00000000003\x00", b"0")


def test_size_of_8_gib_and_more_goes_to_pax(tmp_path: Path) -> None:
    blocks = tar_header_blocks(TarEntry("big.bin", tmp_path, False, 0o644, 9663676416))
    assert ustar_fields(blocks[:512]) == expected_extended(b"PaxHeaders.0/big.bin", 19)
    assert blocks[512:1024] == b"19 size=9663676416\n" + bytes(512 - 19)
    assert ustar_fields(blocks[1024:]) == expected_main(b"big.bin", b"0000644\x00", b"00000000000\x00", b"0")
    # one byte below 8 GiB still fits the octal field
    below = tar_header_blocks(TarEntry("big.bin", tmp_path, False, 0o644, 8**11 - 1))
    assert len(below) == 512
    assert below[124:136] == b"77777777777\x00"


def test_pax_records_sorted_path_before_size(tmp_path: Path) -> None:
    blocks = tar_header_blocks(TarEntry("dossier/é.bin", tmp_path, False, 0o600, 8**11))
    records = "23 path=dossier/é.bin\n".encode() + b"19 size=8589934592\n"
    assert blocks[:100] == field(b"dossier/PaxHeaders.0/.bin", 100)
    assert blocks[512:1024] == records + bytes(512 - len(records))
    assert blocks[1024:1124] == field(b"dossier/.bin", 100)


def test_end_of_archive_is_two_zero_blocks() -> None:
    assert bytes(1024) == END_OF_ARCHIVE
    assert tar_bytes([]) == bytes(1024)


def test_stream_layout_and_padding(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 513)
    (tmp_path / "e").write_bytes(b"")
    entries = [
        TarEntry("d", tmp_path, True, 0o755, 0),
        TarEntry("e", tmp_path / "e", False, 0o644, 0),
        TarEntry("f", tmp_path / "f", False, 0o644, 513),
    ]
    data = tar_bytes(entries)
    assert len(data) == 512 + 512 + 512 + 1024 + 1024
    assert data[0:100] == field(b"d", 100)
    assert data[1024:1536] == tar_header_blocks(entries[2])
    assert data[1536:2049] == b"x" * 513
    assert data[2049:] == bytes(511 + 1024)


def test_small_buffer_streams_large_file_and_reuses_one_buffer(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000  # 256000 bytes, several buffers of 64 KiB
    (tmp_path / "w.bin").write_bytes(payload)
    entry = TarEntry("w.bin", tmp_path / "w.bin", False, 0o644, len(payload))
    chunks: list[bytes] = []
    views: set[int] = set()

    def sink(view: memoryview) -> None:
        assert isinstance(view, memoryview)
        views.add(id(view.obj))
        chunks.append(bytes(view))

    total = write_tar([entry], sink, buffer_bytes=1)  # raised to the 64 KiB minimum
    data = b"".join(chunks)
    assert total == len(data) == 512 + 256000 + (-256000 % 512) + 1024
    assert len(chunks) == 4
    assert len(views) == 1
    assert data[512 : 512 + 256000] == payload


def test_python_tarfile_reads_the_output(tmp_path: Path) -> None:
    files = [
        "a/b.txt",
        "a/" + "long-directory-name-" * 5 + "/" + "n" * 40 + ".bin",
        "modèle/poids.bin",
        "d/" + "x" * 120,
        "empty.txt",
    ]
    make_files(tmp_path, files)
    (tmp_path / "empty.txt").write_bytes(b"")
    data = tar_bytes(list(walk_layer(tmp_path, ".", IgnoreMatcher([], ["."]))))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = archive.getmembers()
        got = {
            member.name: (member.isdir(), member.size, member.uid, member.mode, archive.extractfile(member))
            for member in members
        }
        contents = {name: handle.read() if handle else None for name, (_, _, _, _, handle) in got.items()}
    expected_dirs = {"a", "a/" + "long-directory-name-" * 5, "modèle", "d"}
    assert {name for name, (is_dir, *_rest) in got.items() if is_dir} == expected_dirs
    for name in files:
        text = b"" if name == "empty.txt" else f"testing: {name}".encode()
        assert contents[name] == text
        assert got[name][1] == len(text)
    assert all(uid == 1000 for (_, _, uid, _, _) in got.values())
    assert [member.name for member in members] == [
        "a",
        "a/b.txt",
        "a/" + "long-directory-name-" * 5,
        "a/" + "long-directory-name-" * 5 + "/" + "n" * 40 + ".bin",
        "d",
        "d/" + "x" * 120,
        "empty.txt",
        "modèle",
        "modèle/poids.bin",
    ]


def test_file_that_shrank_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    with pytest.raises(PackError) as caught:
        tar_bytes([TarEntry("f", tmp_path / "f", False, 0o644, 5)])
    assert str(caught.value) == "file f shrank while being archived: expected 5 bytes, read 3"


def test_file_that_grew_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abcdef")
    with pytest.raises(PackError) as caught:
        tar_bytes([TarEntry("f", tmp_path / "f", False, 0o644, 5)])
    assert str(caught.value) == "file f grew while being archived: expected 5 bytes"


def test_file_that_vanished_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PackError) as caught:
        tar_bytes([TarEntry("gone", tmp_path / "gone", False, 0o644, 0)])
    assert str(caught.value) == "failed to open file for archiving: gone: no such file or directory"


def test_undecodable_name_bytes_are_kept_in_pax_path(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.bin")  # a non-UTF-8 file name, as os.listdir returns it
    blocks = tar_header_blocks(TarEntry(name, tmp_path, False, 0o644, 0))
    assert blocks[:100] == field(b"PaxHeaders.0/caf.bin", 100)
    assert blocks[512:532] == b"17 path=caf\xe9.bin\n" + bytes(3)
    assert blocks[1024:1124] == field(b"caf.bin", 100)
