"""SIGTERM, as containers, systemd and CI stop programs, takes the path Ctrl-C takes (``pymodelkit/cli/main.py``):
the command's clean-ups run (unpack's rollback, pull's stop of its workers, the store writers' temp files), then one
line ``pymodelkit: error: terminated`` and exit 143. A second SIGTERM during the clean-up is ignored. The handler is
installed only for the duration of :func:`main` in the main thread, and the one before is restored.

The real-process tests send SIGTERM while the child holds a partial file open (seen in ``/proc/<pid>/fd``): an
unpack writing a 64 MiB file, a pack ingesting one, a pull whose big layer the fault proxy stalls mid-body.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
import pytest

import pymodelkit
from pymodelkit.cli.main import cli, main
from pymodelkit.store import LocalStore
from pymodelkit.store.layout import LOCK_FILE
from tests.support.faultproxy import FaultProxy
from tests.support.rawkits import push_raw_layers
from tests.support.registry import TestRegistry
from tests.support.trees import pattern_bytes

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the child's files")

CLI = [sys.executable, "-m", "pymodelkit.cli.main"]
TERMINATED = "pymodelkit: error: terminated\n"
BIG = 64 << 20
PROMPT_S = 8.0  # a terminated command ends within this (pull: the workers notice a stop within 0.2 s)


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _tree(root: Path) -> Path:
    """A Kitfile with a 64 MiB model file and a code layer of 40 files in nested directories."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(pattern_bytes(BIG, b"w"))
    for i in range(40):
        (root / "src" / f"d{i % 4}" / f"e{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / "src" / f"d{i % 4}" / f"e{i % 3}" / f"f{i}.py").write_text(f"x = {i}\n")
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: big\nmodel:\n  path: model\n"
                                  "code:\n  - path: src\n")
    return root


def _snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path under ``root`` (``root`` itself included) with its kind, size and content."""
    result: dict[str, tuple[str, int, bytes]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        kind = "dir" if path.is_dir() else "file"
        result[str(path.relative_to(root))] = (kind, st.st_size, path.read_bytes() if kind == "file" else b"")
    return result


def _open_files(pid: int) -> list[str]:
    names = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return names


def _terminate_when(child: subprocess.Popen[str], busy: Callable[[list[str]], bool], *, twice: bool = False
                    ) -> tuple[bool, str, str]:
    """SIGTERM ``child`` as soon as ``busy(its open files)``; whether that happened, and its stdout and stderr."""
    caught = False
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            if busy(_open_files(child.pid)):
                caught = True
                child.send_signal(signal.SIGTERM)
                if twice:  # while the first one's clean-up runs, most of the time
                    time.sleep(0.005)
                    child.send_signal(signal.SIGTERM)
                break
            time.sleep(0.001)
        started = time.monotonic()
        out, err = child.communicate(timeout=30)
        assert time.monotonic() - started < PROMPT_S
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return caught, out, err


def _assert_store_clean(storage: Path, before: dict[str, tuple[str, int, bytes]] | None = None) -> None:
    assert sorted(os.listdir(storage / "ingest")) == []  # no temp, parked or partial file
    assert [p.name for p in storage.rglob("*") if ".tmp" in p.name or p.name.startswith(".")] == [LOCK_FILE]
    report = LocalStore(storage.parent).fsck()
    assert report.ok and report.stray_ingest == [], report
    if before is not None:
        assert _snapshot(storage) == before


# --- in the process: the handler's life ----------------------------------------------------------------------------


def _sigterm_is_ours() -> bool:
    return callable(signal.getsignal(signal.SIGTERM))


def test_sigterm_during_a_command_runs_its_clean_up_and_reports_terminated(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command sees a KeyboardInterrupt; a second SIGTERM during its clean-up does not cut it short."""
    before = signal.getsignal(signal.SIGTERM)
    steps: list[str] = []

    def command() -> None:
        assert _sigterm_is_ours()  # else the SIGTERM below would end pytest
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            steps.append("not interrupted")
        except KeyboardInterrupt:
            steps.append("interrupted")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the second one is handled here, and ignored
            steps.append("cleaned up")
            raise

    monkeypatch.setattr(cli.commands["version"], "callback", command)
    started = time.monotonic()
    assert _run(capsys, "version") == (143, "", TERMINATED)
    assert time.monotonic() - started < 2
    assert steps == ["interrupted", "cleaned up"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_that_a_command_outlives_is_still_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that catches the interrupt and returns normally was still told to stop: exit 143."""

    def command() -> None:
        assert _sigterm_is_ours()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            pass

    monkeypatch.setattr(cli.commands["version"], "callback", command)
    assert _run(capsys, "version") == (143, "", TERMINATED)


def test_the_previous_handler_is_restored_and_ctrl_c_is_still_interrupted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []

    def previous(signum: int, frame: object) -> None:
        seen.append(signum)

    def command() -> None:
        assert signal.getsignal(signal.SIGTERM) is not previous
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, previous)
    try:
        monkeypatch.setattr(cli.commands["version"], "callback", command)
        assert _run(capsys, "version") == (130, "", "pymodelkit: error: interrupted\n")
        assert signal.getsignal(signal.SIGTERM) is previous
        assert _run(capsys, "--version")[0] == 0
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
    assert seen == []


def test_a_python_handler_in_place_before_is_handed_the_sigterm_after_the_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program embedding main() with its own shutdown handler still learns of the SIGTERM that stopped it."""
    seen: list[str] = []

    def previous(signum: int, frame: object) -> None:
        seen.append("previous handler")

    def command() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        monkeypatch.setattr(cli.commands["version"], "callback", command)
        assert _run(capsys, "version") == (143, "", TERMINATED)
        assert seen == ["previous handler"]
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_sigterm_in_clicks_teardown_after_the_command_adds_no_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the command is over, a SIGTERM (here from a close callback of click's context) is not raised where click
    would print a blank line and 'Abort': the command's result stands and the SIGTERM goes to the handler before."""
    seen: list[str] = []

    def previous(signum: int, frame: object) -> None:
        seen.append("previous handler")

    def command() -> None:
        click.echo("done")
        click.get_current_context().find_root().call_on_close(lambda: os.kill(os.getpid(), signal.SIGTERM))

    old = signal.signal(signal.SIGTERM, previous)
    try:
        monkeypatch.setattr(cli.commands["version"], "callback", command)
        assert _run(capsys, "version") == (0, "done\n", "")
        assert seen == ["previous handler"]
    finally:
        signal.signal(signal.SIGTERM, old)


def test_off_the_main_thread_nothing_is_installed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    during: list[object] = []
    monkeypatch.setattr(cli.commands["version"], "callback", lambda: during.append(signal.getsignal(signal.SIGTERM)))
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(["version"])))
    thread.start()
    thread.join(10)
    assert (codes, during) == ([0], [before])
    assert signal.getsignal(signal.SIGTERM) is before
    capsys.readouterr()


# --- real processes -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("sigterm") / "big")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The child's kit home (``KITOPS_HOME``)."""
    return tmp_path / "home"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "KITOPS_HOME": str(home)}


def test_sigterm_while_unpack_writes_a_file_leaves_the_target_as_it_was(big_tree: Path, home: Path,
                                                                        tmp_path: Path) -> None:
    store = LocalStore(home)
    pymodelkit.pack(big_tree, tag="big:v1", store=store)
    storage_before = _snapshot(store.storage)
    base = tmp_path / "base"
    base.mkdir()
    (base / "notes.txt").write_text("mine\n")
    before = _snapshot(base)
    target = base / "new" / "deeper"
    child = subprocess.Popen([*CLI, "unpack", "big:v1", "-d", str(target)], env=_env(home),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    caught, out, err = _terminate_when(
        child, lambda files: any(f.startswith(str(target)) and f.endswith(".partial") for f in files))
    assert caught, f"the unpack ended before it wrote a file: {child.returncode} {err!r}"
    assert (child.returncode, out, err) == (143, "", TERMINATED)
    assert _snapshot(base) == before  # no partial file, no file written before it, no new/ nor new/deeper/
    _assert_store_clean(store.storage, storage_before)


def test_sigterm_while_pack_ingests_a_layer_leaves_no_temp_file(big_tree: Path, home: Path) -> None:
    child = subprocess.Popen([*CLI, "pack", str(big_tree), "-t", "big:v1"], env=_env(home),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ingest = str(home / "storage" / "ingest")
    caught, out, err = _terminate_when(child, lambda files: any(f.startswith(ingest + "/") for f in files))
    assert caught, f"the pack ended before it ingested a layer: {child.returncode} {err!r}"
    assert (child.returncode, out, err) == (143, "", TERMINATED)
    _assert_store_clean(home / "storage")
    assert LocalStore(home).list_repositories() == []


@pytest.fixture(scope="module")
def stalled_kit(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A ModelKit of a 4 MiB layer and three small ones in the registry: its repository and the big blob's digest."""
    source = LocalStore(tmp_path_factory.mktemp("sigterm-source"))
    payloads = [os.urandom(4 << 20), b"small a", b"small b", b"small c"]
    _, repository, manifest = push_raw_layers(registry.host, source, payloads, name="sigterm/kit")
    return repository, [str(layer.digest) for layer in (manifest.layers or ())[:1]]


@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
def test_sigterm_while_pull_downloads_leaves_nothing(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], stalled_kit: tuple[str, list[str]], home: Path,
    twice: bool,
) -> None:
    repository, big = stalled_kit
    proxy = fault_proxy(registry.url)
    for digest in big:
        proxy.stall("GET", rf"/blobs/{digest}$", seconds=60.0, after_bytes=256 << 10, times=None)
    child = subprocess.Popen([*CLI, "pull", "--plain-http", f"{proxy.host}/{repository}:v1"], env=_env(home),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ingest = str(home / "storage" / "ingest")

    def downloading(files: list[str]) -> bool:  # the big layer's file is open and its request has stalled
        return any(f.startswith(ingest + "/") for f in files) and proxy.stalls > 0

    caught, out, err = _terminate_when(child, downloading, twice=twice)
    assert caught, f"the pull ended before it downloaded: {child.returncode} {err!r}"
    # A second SIGTERM that comes once main() has returned (the pull cleaned up, the line printed) meets the
    # default action again, on a process that is exiting anyway: killed by it, which a shell shows as 143 too.
    assert (child.returncode, out, err) in [(143, "", TERMINATED)] + ([(-signal.SIGTERM, "", TERMINATED)] * twice)
    storage = home / "storage"
    _assert_store_clean(storage)
    blobs = storage / "blobs" / "sha256"
    assert not any(blobs.glob(f"{big[0].split(':')[1]}*"))
    assert LocalStore(home).list_repositories() == []
