"""``write_atomic``: a failed write leaves the old file (or none) and no temp file, and its operating-system error names
the file asked for, never the hidden temp beside it (audit P9); through the CLI for ``init``, ``tag`` and ``login``'s
``credentials.json`` on a full disk (ENOSPC simulated in the helper's ``os.write``/``os.fsync``)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

import pymodelkit
from pymodelkit import _atomic
from pymodelkit._atomic import named_os_error, write_atomic
from pymodelkit.cli.main import main
from tests.support.registry import TestRegistry
from tests.support.trees import CHURN_KITFILE, write_source_tree

NO_SPACE = "No space left on device"


class _OsWith:
    """The ``os`` module as ``_atomic`` sees it, with ``name`` failing as a full disk fails (ENOSPC, no file name)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.calls = 0

    def __getattr__(self, attr: str) -> Any:
        if attr != self._name:
            return getattr(os, attr)

        def full(*args: Any) -> Any:
            self.calls += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return full


class _TempfileRefusing:
    """``tempfile`` whose ``mkstemp`` fails as in a read-only directory, naming the temp file it tried."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(tempfile, attr)

    @staticmethod
    def mkstemp(prefix: str, suffix: str, dir: Path) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir / f"{prefix}q1w2e3r4{suffix}"))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ----- the helper ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_a_full_disk_keeps_the_old_file_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "credentials.json"
    target.write_bytes(b'{"old": true}')
    fake = _OsWith(failing)
    monkeypatch.setattr(_atomic, "os", fake)
    with pytest.raises(OSError) as caught:
        write_atomic(target, b'{"new": true}' * 1000, mode=0o600)
    assert fake.calls == 1
    assert (caught.value.errno, caught.value.strerror, caught.value.filename) == (errno.ENOSPC, NO_SPACE, str(target))
    assert target.read_bytes() == b'{"old": true}'
    assert _leftovers(tmp_path) == []


def test_a_new_file_on_a_full_disk_is_not_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_atomic, "os", _OsWith("write"))
    target = tmp_path / "sub" / "Kitfile"
    with pytest.raises(OSError, match=NO_SPACE) as caught:
        write_atomic(target, b"manifestVersion: 1.0.0\n")
    assert caught.value.filename == str(target)
    assert list((tmp_path / "sub").iterdir()) == []


def test_a_temp_file_that_cannot_be_made_is_not_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_atomic, "tempfile", _TempfileRefusing())
    target = tmp_path / "Kitfile"
    with pytest.raises(PermissionError) as caught:
        write_atomic(target, b"x")
    assert (caught.value.strerror, caught.value.filename) == ("Permission denied", str(target))


def test_replacing_a_directory_names_it_and_leaves_it(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    target.mkdir()
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(IsADirectoryError) as caught:
        write_atomic(target, b"{}")
    assert caught.value.filename == str(target) and caught.value.filename2 is None
    assert (target / "inside").read_bytes() == b"kept"
    assert _leftovers(tmp_path) == []


def test_a_directory_that_cannot_be_made_is_the_one_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError) as caught:
        write_atomic(tmp_path / "file" / "sub" / "x.json", b"{}")
    assert caught.value.filename == str(tmp_path / "file" / "sub")


def test_named_os_error_renames_only_nameless_or_internal_errors(tmp_path: Path) -> None:
    other = FileNotFoundError(errno.ENOENT, "No such file or directory", "/somewhere/else")
    assert named_os_error(other, tmp_path / "x") is other
    assert named_os_error(OSError("no errno"), tmp_path / "x").filename is None
    by_fd = named_os_error(IsADirectoryError(errno.EISDIR, "Is a directory", 3), tmp_path / "x")
    assert type(by_fd) is IsADirectoryError and by_fd.filename == str(tmp_path / "x")
    temp = tmp_path / ".x.1234.tmp"
    renamed = named_os_error(FileNotFoundError(errno.ENOENT, "No such file or directory", str(temp)),
                             tmp_path / "x", [temp])
    assert type(renamed) is FileNotFoundError and renamed.filename == str(tmp_path / "x")
    assert str(renamed) == f"[Errno 2] No such file or directory: '{tmp_path / 'x'}'"


# ----- through the CLI -------------------------------------------------------------------------------------------


def test_init_on_a_full_disk_names_the_kitfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "model.bin").write_bytes(b"\0" * 100)
    monkeypatch.setattr(_atomic, "os", _OsWith("write"))
    code = main(["init", str(project)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1] == f"pymodelkit: error: {NO_SPACE} ({project / 'Kitfile'})"
    assert sorted(p.name for p in project.iterdir()) == ["model.bin"]


def test_tag_on_a_full_disk_names_the_store_file_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    pymodelkit.pack(write_source_tree(tmp_path, CHURN_KITFILE, weights=1000), tag="churn:v1",
                    store=pymodelkit.LocalStore(home))
    before = _files(home)
    monkeypatch.setattr(_atomic, "os", _OsWith("fsync"))
    code = main(["--config", str(home), "tag", "churn:v1", "churn:v2"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith(f"pymodelkit: error: {NO_SPACE} ({home / 'storage'}/") and err.endswith("-tags.json)")
    assert ".tmp" not in err
    assert _files(home) == before


def test_login_on_a_full_disk_names_credentials_json_and_keeps_it(
    registry_basic: TestRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "kitops"
    login = ["--config", str(home), "login", registry_basic.host, "-u", str(registry_basic.username),
             "-p", str(registry_basic.password)]
    assert main(login) == 0
    credentials = home / "credentials.json"
    before = credentials.read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(_atomic, "os", _OsWith("write"))
    code = main(login)
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1] == f"pymodelkit: error: {NO_SPACE} ({credentials})"
    assert credentials.read_bytes() == before
    assert _leftovers(home) == []
