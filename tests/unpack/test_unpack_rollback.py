"""A failed or interrupted unpack leaves the target as it was, and the same call then succeeds (spec §7.5).

Interrupts are real ``KeyboardInterrupt``s raised from the ``on_progress`` hook while a layer's bytes are being
written; failures are a raw layer whose file exists already (found only while writing), an OS refusal part-way
through a file (``RLIMIT_FSIZE``), and a journal rollback that meets files it did not write.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import resource
import signal
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

import pymodelkit
from pymodelkit.errors import ModelKitError, UnpackError, UnsafeArchiveError
from pymodelkit.progress import ProgressEvent
from pymodelkit.unpack.extract import extract_raw, extract_tar, write_kitfile
from pymodelkit.unpack.journal import UnpackJournal
from tests.support.trees import pattern_bytes, snapshot_tree

KITFILE = """manifestVersion: 1.0.0
package:
  name: big
model:
  name: weights
  path: model
datasets:
  - name: train
    path: data
docs:
  - path: README.md
"""
WEIGHTS = 8 << 20


def file_(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> pymodelkit.LocalStore:
    return pymodelkit.LocalStore(tmp_path / "home")


def _source(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(pattern_bytes(WEIGHTS, b"w"))
    (root / "model" / "config.json").write_text('{"layers": 2}\n')
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_bytes(pattern_bytes(3 << 20, b"d"))
    (root / "README.md").write_text("# big\n")
    (root / "Kitfile").write_text(KITFILE)
    return root


@pytest.fixture
def packed(tmp_path: Path, store: pymodelkit.LocalStore) -> Path:
    """big:v1 (tar layers) and big:raw (raw layers) in ``store``; returns the source tree."""
    src = _source(tmp_path / "src")
    pymodelkit.pack(src, tag="big:v1", store=store)
    raw = tmp_path / "raw-src"
    (raw / "data").mkdir(parents=True)
    (raw / "weights.bin").write_bytes(pattern_bytes(WEIGHTS, b"w"))
    (raw / "data" / "train.csv").write_bytes(pattern_bytes(1 << 20, b"d"))
    (raw / "README.md").write_text("# raw\n")
    (raw / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: raw\nmodel:\n  path: weights.bin\n"
        "datasets:\n  - name: train\n    path: data/train.csv\ndocs:\n  - path: README.md\n"
    )
    pymodelkit.pack(raw, tag="big:raw", store=store, layer_format="raw")
    return src


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """An existing directory with a file of its own, which no unpack may touch."""
    path = tmp_path / "base"
    path.mkdir()
    (path / "notes.txt").write_bytes(b"mine")
    return path


class _InterruptAt:
    """An ``on_progress`` hook that raises KeyboardInterrupt once ``unpack <key>`` has read ``at`` bytes."""

    def __init__(self, key: str, at: int) -> None:
        self.key = f"unpack {key}"
        self.at = at
        self.fired = False
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)
        if not self.fired and event.key == self.key and event.done >= self.at:
            self.fired = True
            raise KeyboardInterrupt


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "key, at",
    [("model", WEIGHTS // 2), ("data", 1 << 20)],
    ids=["mid-first-layer", "mid-second-layer"],
)
def test_interrupted_unpack_leaves_target_as_it_was_and_runs_again(
    packed: Path, store: pymodelkit.LocalStore, base: Path, key: str, at: int
) -> None:
    before = snapshot_tree(base)
    target = base / "new" / "deeper"
    hook = _InterruptAt(key, at)
    with pytest.raises(KeyboardInterrupt):
        pymodelkit.unpack("big:v1", target, store=store, on_progress=hook)
    assert hook.fired
    assert snapshot_tree(base) == before  # no Kitfile, no layer file, no temporary file, no new/ nor new/deeper/

    result = pymodelkit.unpack("big:v1", target, store=store)
    assert _files(target) == _files(packed)
    assert sorted(result.files) == sorted(target / name for name in _files(packed) if name != "Kitfile")
    assert snapshot_tree(base)["notes.txt"] == ("file", 0o644, b"mine")


def test_interrupt_in_an_existing_target_keeps_its_files(packed: Path, store: pymodelkit.LocalStore,
                                                          base: Path) -> None:
    (base / "model").mkdir()
    (base / "model" / "mine.txt").write_bytes(b"also mine")
    before = snapshot_tree(base)
    with pytest.raises(KeyboardInterrupt):
        pymodelkit.unpack("big:v1", base, store=store, on_progress=_InterruptAt("data", 1))
    assert snapshot_tree(base) == before
    pymodelkit.unpack("big:v1", base, store=store)
    assert _files(base) == {**_files(packed), "notes.txt": b"mine", "model/mine.txt": b"also mine"}


def test_interrupted_raw_unpack_runs_again(packed: Path, store: pymodelkit.LocalStore, base: Path) -> None:
    before = snapshot_tree(base)
    with pytest.raises(KeyboardInterrupt):
        pymodelkit.unpack("big:raw", base / "out", store=store, on_progress=_InterruptAt("weights.bin", 1 << 20))
    assert snapshot_tree(base) == before
    pymodelkit.unpack("big:raw", base / "out", store=store)
    assert (base / "out" / "weights.bin").read_bytes() == pattern_bytes(WEIGHTS, b"w")


def test_interrupt_with_overwrite_leaves_old_or_new_files_never_a_truncated_one(
    packed: Path, store: pymodelkit.LocalStore, base: Path
) -> None:
    pymodelkit.unpack("big:v1", base, store=store)
    (base / "model" / "weights.bin").write_bytes(b"old weights")
    (base / "data" / "train.csv").write_bytes(b"old data")
    with pytest.raises(KeyboardInterrupt):
        pymodelkit.unpack("big:v1", base, store=store, overwrite=True, on_progress=_InterruptAt("data", 1 << 20))
    # The model layer was complete, so its file was replaced; the dataset's was not: still the old one, whole.
    assert (base / "model" / "weights.bin").read_bytes() == pattern_bytes(WEIGHTS, b"w")
    assert (base / "data" / "train.csv").read_bytes() == b"old data"
    assert not [p for p in base.rglob(".pymodelkit-*")]
    pymodelkit.unpack("big:v1", base, store=store, overwrite=True)
    assert _files(base) == {**_files(packed), "notes.txt": b"mine"}


def test_a_file_in_the_way_of_a_later_layer_removes_what_was_written(
    packed: Path, store: pymodelkit.LocalStore, base: Path
) -> None:
    """Raw layers are checked against the target only when written: the Kitfile and the model are out by then."""
    (base / "README.md").write_bytes(b"my readme")
    before = snapshot_tree(base)
    with pytest.raises(UnpackError, match=r"^path 'README.md' already exists$"):
        pymodelkit.unpack("big:raw", base, store=store)
    assert snapshot_tree(base) == before
    pymodelkit.unpack("big:raw", base, store=store, ignore_existing=True)
    assert (base / "README.md").read_bytes() == b"my readme"
    assert (base / "weights.bin").read_bytes() == pattern_bytes(WEIGHTS, b"w")


def test_write_progress_is_reported_per_layer(packed: Path, store: pymodelkit.LocalStore, base: Path) -> None:
    events: list[ProgressEvent] = []
    pymodelkit.unpack("big:v1", base / "out", store=store, on_progress=events.append)
    finished = [e for e in events if e.key.startswith("unpack ") and e.finished]
    assert [e.key for e in finished] == ["unpack model", "unpack data", "unpack README.md"]
    model = [e for e in events if e.key == "unpack model"]
    assert model[-1].done == model[-1].total and model[-1].total is not None and model[-1].total > WEIGHTS


@pytest.mark.parametrize(
    "filters, unmatched",
    [
        (["datasets:nosuch"], ["datasets:nosuch"]),
        (["model:"], ["model:"]),
        (["model", "docs:nosuch.md", "kitfile:anything"], ["docs:nosuch.md"]),
        (["datasets:train"], []),
    ],
)
def test_filters_that_select_nothing_are_reported(
    packed: Path, store: pymodelkit.LocalStore, base: Path, caplog: pytest.LogCaptureFixture,
    filters: list[str], unmatched: list[str]
) -> None:
    with caplog.at_level(logging.INFO, logger="pymodelkit.unpack.unpacker"):
        result = pymodelkit.unpack("big:v1", base / "out", store=store, filters=filters)
    assert [str(f) for f in result.unmatched_filters] == unmatched
    assert [r.getMessage() for r in caplog.records if "matches nothing" in r.getMessage()] == [
        f"filter {text} matches nothing in big:v1" for text in unmatched
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)  # no warning from the library (kit says nothing)


# --- OS errors part-way -----------------------------------------------------------------------------------------


def test_os_error_part_way_through_a_file_names_the_full_path_and_removes_it(base: Path) -> None:
    target = base / "t"
    target.mkdir()
    before = snapshot_tree(base)
    layer = make_tar(file_("small.txt", b"s"), file_("sub/big.bin", pattern_bytes(3 << 20, b"b")))
    with pytest.raises(ModelKitError) as err, _limited():
        extract_tar(io.BytesIO(layer), target)
    assert str(err.value) == f"cannot write {target.absolute()}/sub/big.bin: File too large"
    assert err.value.details["errno"] == errno.EFBIG
    assert not isinstance(err.value, UnpackError)  # an OS error: exit 1, not 9
    assert snapshot_tree(base) == before
    with pytest.raises(ModelKitError, match=r"^cannot write .*/t/w\.bin: File too large$"), _limited():
        extract_raw(io.BytesIO(pattern_bytes(3 << 20, b"r")), target, file_path="w.bin", metadata_json=None,
                    expected_size=None)
    assert snapshot_tree(base) == before


class _limited:
    """A 1 MiB soft RLIMIT_FSIZE with SIGXFSZ ignored, for a ``with`` block: a write past it fails with EFBIG, as
    on a full disk."""

    def __enter__(self) -> None:
        self._soft, self._hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        self._signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, self._hard))

    def __exit__(self, *exc: object) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (self._soft, self._hard))
        signal.signal(signal.SIGXFSZ, self._signal)


# --- the journal ----------------------------------------------------------------------------------------------------


def test_rollback_spares_what_it_did_not_write(base: Path) -> None:
    """A file replaced after the unpack wrote it, and a directory someone else put a file in, stay."""
    journal = UnpackJournal(base)
    extract_tar(io.BytesIO(make_tar(file_("a/x", b"1"), file_("b/y", b"2"), file_("z", b"3"))), base,
                journal=journal)
    (base / "a" / "other").write_bytes(b"someone else's")
    os.rename(base / "a" / "other", base / "a" / "x")
    (base / "b" / "theirs").write_bytes(b"theirs")
    journal.rollback()
    assert snapshot_tree(base) == {
        "a": ("dir", 0o755),
        "a/x": ("file", 0o644, b"someone else's"),
        "b": ("dir", 0o755),
        "b/theirs": ("file", 0o644, b"theirs"),
        "notes.txt": ("file", 0o644, b"mine"),
    }


def test_rollback_removes_a_file_replaced_by_a_duplicate_entry(base: Path) -> None:
    journal = UnpackJournal(base)
    written = extract_tar(io.BytesIO(make_tar(file_("d/dup", b"one"), file_("d/dup", b"two"))), base,
                          overwrite=True, journal=journal)
    assert written == [base / "d/dup", base / "d/dup"] and (base / "d/dup").read_bytes() == b"two"
    journal.rollback()
    assert sorted(snapshot_tree(base)) == ["notes.txt"]


def test_rollback_keeps_a_file_that_existed_and_was_replaced(base: Path) -> None:
    os.chmod(base / "notes.txt", 0o600)
    journal = UnpackJournal(base)
    write_kitfile(base, "manifestVersion: 1.0.0\n", overwrite=False, journal=journal)
    extract_tar(io.BytesIO(make_tar(file_("notes.txt", b"new notes"))), base, overwrite=True, journal=journal)
    journal.rollback()
    assert snapshot_tree(base) == {"notes.txt": ("file", 0o600, b"new notes")}


def test_make_target_and_rollback_remove_only_the_directories_made(base: Path) -> None:
    journal = UnpackJournal(base / "a" / "b" / "c")
    journal.make_target()
    assert stat.S_ISDIR((base / "a" / "b" / "c").stat().st_mode)
    journal.rollback()
    assert sorted(snapshot_tree(base)) == ["notes.txt"]


def test_a_second_interrupt_does_not_stop_the_rollback(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = UnpackJournal(base / "out")
    journal.make_target()
    extract_tar(io.BytesIO(make_tar(file_("a", b"1"), file_("b", b"2"), file_("c", b"3"))), base / "out",
                journal=journal)
    real_unlink = os.unlink
    calls: list[str] = []

    def unlink_interrupted_once(path: str, *, dir_fd: int | None = None) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink_interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        journal.rollback()
    monkeypatch.undo()
    assert calls == ["c", "b", "b", "a"]
    assert sorted(snapshot_tree(base)) == ["notes.txt"]


def test_a_target_that_is_a_file_is_an_os_error(packed: Path, store: pymodelkit.LocalStore, base: Path) -> None:
    before = snapshot_tree(base)
    for target in (base / "notes.txt", base / "notes.txt" / "sub"):
        with pytest.raises(ModelKitError) as err:
            pymodelkit.unpack("big:v1", target, store=store)
        assert str(err.value) == f"cannot create unpack directory {target}: Not a directory"
        assert not isinstance(err.value, UnpackError)
    assert snapshot_tree(base) == before


class _Unseekable(io.RawIOBase):
    """A stream that cannot seek (as a registry's body): extract writes while it reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def test_rollback_of_many_directories_holds_few_descriptors(base: Path) -> None:
    """A layer of 300 directories cut in its last file, rolled back under a limit of 64 open files (it used to keep
    every directory open and silently skip what lay under those it could no longer open)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(300):
            directory = tarfile.TarInfo(f"d{i}")
            directory.type, directory.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(directory)
            member = tarfile.TarInfo(f"d{i}/sub/f")
            member.size, member.mode = 3, 0o644
            tar.addfile(member, io.BytesIO(b"abc"))
        last = tarfile.TarInfo("last")
        last.size, last.mode = 1 << 20, 0o644
        tar.addfile(last, io.BytesIO(b"x" * (1 << 20)))
    cut = buffer.getvalue()[: -(1 << 19) - 1024]  # inside the last file
    target = base / "many"
    target.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 48, hard))
    try:
        with pytest.raises(UnsafeArchiveError, match=r"unexpected end of data"):
            extract_tar(io.BufferedReader(_Unseekable(cut)), target)  # written as it is read, then rolled back
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert list(target.iterdir()) == []
