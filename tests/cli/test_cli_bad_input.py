"""Bad input at the CLI, from the bad-input audit: each gets one line on stderr with the exit code docs/cli.md gives,
and the store and the files on disk stay as they were.

Covered: ``generate-key-pair`` into a missing or unwritable directory (exit 1, naming the key file) or over existing
files (exit 13, ``(use --force)``); Ctrl-C (one line, exit 130); the empty tag ``demo:`` refused by every command
(exit 4) while no tag at all still means ``latest`` where kit says so; ``list REPOSITORY:TAG`` listing that tag only;
the ``[WARN]`` for a bare ``host:port`` read as a local repository; help texts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymodelkit.cli.main import main
from pymodelkit.signing.keys import generate_signing_key, write_key_pair

EMPTY_TAG = "pymodelkit: error: invalid reference 'demo:': the tag after ':' is empty\n"
NOWHERE = "127.0.0.1:9"  # the discard port: nothing may need to reach it


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _home() -> Path:
    return Path(os.environ["KITOPS_HOME"])


def _store_files() -> dict[str, bytes]:
    storage = _home() / "storage"
    if not storage.exists():
        return {}
    return {str(p.relative_to(storage)): p.read_bytes() for p in storage.rglob("*") if p.is_file()}


def _project(root: Path, content: bytes = b"weights") -> Path:
    root.mkdir(parents=True)
    (root / "m.bin").write_bytes(content)
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: demo\nmodel:\n  path: m.bin\n")
    return root


def _pack(capsys: pytest.CaptureFixture[str], src: Path, tag: str) -> str:
    code, out, err = _run(capsys, "pack", src, "-t", tag)
    assert code == 0, err
    return out.split()[-1]


# --- generate-key-pair (P6, P13) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "prefix", "reason"), [
    (None, "nodir/sub/a", "No such file or directory"),
    ("file", "afile/a", "Not a directory"),
])
def test_generate_key_pair_where_no_file_can_be_written_is_an_os_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str | None, prefix: str, reason: str
) -> None:
    if make == "file":
        (tmp_path / "afile").write_bytes(b"x")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = _run(capsys, "generate-key-pair", "--no-password", "--output-key-prefix", tmp_path / prefix)
    assert (code, out) == (1, "")
    assert err == f"pymodelkit: error: {reason} ({tmp_path / prefix}.key)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_generate_key_pair_into_an_unwritable_directory_is_an_os_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    command = [sys.executable, "-m", "pymodelkit.cli.main", "generate-key-pair", "--no-password",
               "--output-key-prefix", str(locked / "a")]
    if os.geteuid() == 0:  # root writes anywhere: run without the capabilities that let it, as the audit did
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a directory unwritable")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        locked.chmod(0o755)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"pymodelkit: error: Permission denied ({locked / 'a'}.key)\n"
    assert list(locked.iterdir()) == []


def test_generate_key_pair_over_existing_files_says_use_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.pub").write_bytes(b"keep me")
    code, out, err = _run(capsys, "generate-key-pair", "--no-password", "--output-key-prefix", tmp_path / "a")
    assert (code, out) == (13, "")
    assert err == (f"pymodelkit: error: key file {tmp_path / 'a.pub'} exists already: refusing to overwrite it "
                   "(use --force)\n")
    assert "overwrite=" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pub"]
    assert (tmp_path / "a.pub").read_bytes() == b"keep me"
    code, _, err = _run(capsys, "generate-key-pair", "--no-password", "--output-key-prefix", tmp_path / "a", "--force")
    assert code == 0, err
    assert (tmp_path / "a.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


# --- Ctrl-C (P15) -------------------------------------------------------------------------------------------------


def test_ctrl_c_in_a_command_prints_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pymodelkit.catalog.list_modelkits", interrupted)
    assert _run(capsys, "list") == (130, "", "pymodelkit: error: interrupted\n")


def test_sigint_to_a_running_command_prints_one_line(tmp_path: Path) -> None:
    """A real SIGINT while ``pack -f -`` waits for its Kitfile on stdin: no blank line, no "aborted", exit 130."""
    src = _project(tmp_path / "src")
    child = subprocess.Popen(
        [sys.executable, "-m", "pymodelkit.cli.main", "pack", str(src), "-f", "-", "-t", "demo:v1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                waiting = Path(f"/proc/{child.pid}/wchan").read_text()
            except OSError:
                waiting = ""
            if "pipe_read" in waiting or child.poll() is not None:
                break
            time.sleep(0.05)
        else:
            pytest.skip(f"cannot tell when the child waits on stdin (wchan {waiting!r})")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert (child.returncode, out, err) == (130, "", "pymodelkit: error: interrupted\n")
    assert _store_files() == {}


# --- the empty tag (P10) ------------------------------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """demo:latest and demo:v1 in the store, a key pair, a project directory."""
    src = _project(tmp_path / "src")
    _pack(capsys, src, "demo:latest")
    _pack(capsys, src, "demo:v1")
    key, pub = write_key_pair(generate_signing_key(), tmp_path / "cosign", password=None)
    return {"src": src, "key": key, "pub": pub, "out": tmp_path / "out"}


@pytest.mark.parametrize("args", [
    ("pack", "{src}", "-t", "demo:"),
    ("pack", "{src}", "-t", "demo:,v2"),  # the message quotes it as typed: 'demo:,v2'
    ("pack", "{src}", "-t", "demo:", "--push"),
    ("pack", "{src}", "-t", "demo:", "--no-store"),
    ("unpack", "demo:", "-d", "{out}"),
    ("save", "demo:", "-o", "{out}.tar"),
    ("push", "demo:"),
    ("push", "demo:v1", "demo:"),
    ("pull", "demo:"),
    ("inspect", "demo:"),
    ("info", "demo:"),
    ("inspect", "-r", "demo:"),
    ("remove", "demo:"),
    ("remove", "-r", "demo:"),
    ("tag", "demo:", "demo:v2"),
    ("tag", "demo:v1", "demo:"),
    ("list", "demo:"),
    ("diff", "demo:", "demo:v1"),
    ("sign", "demo:", "--key", "{key}"),
    ("verify", "demo:", "--key", "{pub}"),
    ("copy", "demo:", f"{NOWHERE}/demo:v1"),
])
def test_the_empty_tag_is_refused_by_every_command_alike(
    stored: dict[str, Path], capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    before = _store_files()
    code, out, err = _run(capsys, *(arg.format(**stored) for arg in args))
    typed = next(arg for arg in args if arg.startswith("demo:") and not arg.startswith("demo:v"))
    assert (code, out, err) == (4, "", EMPTY_TAG.replace("'demo:'", repr(typed)))
    assert _store_files() == before
    assert not stored["out"].exists() and not Path(f"{stored['out']}.tar").exists()


@pytest.mark.parametrize("args", [
    ("pull", f"{NOWHERE}/demo:"),
    ("push", "demo:v1", f"{NOWHERE}/demo:"),
    ("list", f"{NOWHERE}/demo:"),
    ("copy", f"{NOWHERE}/demo:", f"{NOWHERE}/demo:v1"),
])
def test_the_empty_tag_with_a_registry_is_refused_before_any_request(
    stored: dict[str, Path], capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = _run(capsys, *args)
    assert (code, out) == (4, "")
    assert err == f"pymodelkit: error: invalid reference '{NOWHERE}/demo:': the tag after ':' is empty\n"


def test_no_tag_still_means_latest_where_kit_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digest = _pack(capsys, _project(tmp_path / "src"), "demo")
    code, out, _ = _run(capsys, "list", "--format", "json")
    assert code == 0
    assert [(r["repo"], r["tags"], r["digest"]) for r in json.loads(out)] == [("demo", ["latest"], digest)]
    code, out, err = _run(capsys, "unpack", "demo", "-d", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "m.bin").read_bytes() == b"weights"
    code, _, err = _run(capsys, "save", "demo", "-o", tmp_path / "demo.tar")
    assert code == 0, err
    # inspect, info, remove and tag want a tag or digest, as kit's do
    assert _run(capsys, "inspect", "demo") == (
        4, "", "pymodelkit: error: missing tag or digest from ModelKit reference 'demo'\n")
    assert _run(capsys, "info", "demo")[0] == 4
    assert _run(capsys, "remove", "demo")[0] == 4


# --- list REPOSITORY:TAG (P14) ------------------------------------------------------------------------------------


def test_list_with_a_tag_or_digest_lists_that_one_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _pack(capsys, _project(tmp_path / "a", b"one"), "demo:v1")
    second = _pack(capsys, _project(tmp_path / "b", b"two"), "demo:v2")
    assert _run(capsys, "tag", "demo:v2", "demo:stable")[0] == 0
    assert _run(capsys, "tag", "demo:v2", "other:v2")[0] == 0

    code, out, err = _run(capsys, "list", "demo:v1")
    assert (code, err) == (0, "")
    rows = out.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]
    assert [[*row.split()[:2], row.split()[-1]] for row in rows[1:]] == [["demo", "v1", first]]

    code, out, _ = _run(capsys, "list", "demo:stable", "--format", "json")
    assert code == 0
    assert [(r["repo"], r["tags"], r["digest"]) for r in json.loads(out)] == [("demo", ["stable"], second)]

    code, out, _ = _run(capsys, "list", f"demo@{second}", "--format", "json")
    assert [(r["repo"], r["tags"]) for r in json.loads(out)] == [("demo", ["stable", "v2"])]

    code, out, _ = _run(capsys, "list", "demo", "--format", "json")
    assert sorted(tag for r in json.loads(out) for tag in r["tags"]) == ["stable", "v1", "v2"]

    assert _run(capsys, "list", "demo:nope", "--format", "json") == (0, "[]\n", "")
    assert _run(capsys, "list", "") == (4, "", "pymodelkit: error: invalid reference: empty string\n")
    assert _run(capsys, "list", "demo:v1,v2") == (
        4, "", "pymodelkit: error: reference cannot include multiple tags: 'demo:v1,v2'\n")


# --- a bare host:port (P18) ---------------------------------------------------------------------------------------


def _hint(host: str, port: str) -> str:
    return (f"[WARN] {host}:{port} was read as repository '{host}' with tag '{port}': a registry reference needs a "
            f"repository path ({host}:{port}/REPOSITORY[:TAG])\n")


def test_a_bare_host_port_is_a_local_repository_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _project(tmp_path / "src")
    digest = _pack(capsys, src, "demo:v1")

    code, out, err = _run(capsys, "tag", "demo:v1", "127.0.0.1:5000")
    assert (code, out, err) == (0, "Modelkit demo:v1 tagged as 127.0.0.1:5000\n", _hint("127.0.0.1", "5000"))

    code, out, err = _run(capsys, "pack", src, "-t", "localhost:5000")
    assert (code, out, err) == (0, f"Model saved: {digest}\n", _hint("localhost", "5000"))

    code, out, err = _run(capsys, "pack", src, "-t", "reg.example.com:443", "--push")
    assert code == 4 and out == ""
    assert err.splitlines()[0] + "\n" == _hint("reg.example.com", "443")
    assert err.splitlines()[1].startswith("pymodelkit: error: registry is required when pushing")

    code, out, err = _run(capsys, "list", "127.0.0.1:5000", "--format", "json")
    assert (code, err) == (0, _hint("127.0.0.1", "5000"))
    assert [(r["repo"], r["tags"]) for r in json.loads(out)] == [("127.0.0.1", ["5000"])]

    for args in (("inspect", "localhost:5000"), ("info", "localhost:5000")):
        code, _, err = _run(capsys, *args)
        assert code == 0 and err == _hint("localhost", "5000")

    # a numeric tag on a plain repository, or a registry with a repository path, warns about nothing
    assert _run(capsys, "tag", "demo:v1", "demo:5") == (0, "Modelkit demo:v1 tagged as demo:5\n", "")
    assert _run(capsys, "list", "demo:5")[2] == ""


# --- help (P18) ---------------------------------------------------------------------------------------------------


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert "$KITOPS_HOME, else $XDG_DATA_HOME/kitops, else ~/.local/share/kitops" in " ".join(out.split())
    code, out, _ = _run(capsys, "list", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "--format [table|json] table: kit's columns, one row per tag; json: kit's objects" in text
    assert "REPOSITORY:TAG (or @DIGEST) lists that one only." in text


# ----- a store that is a file ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["storage", "home"])
def test_a_store_that_is_a_file_is_named_by_every_command(
    broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsck and gc used to call it consistent (exit 0); the other commands said ``File exists (…/storage)``. (A
    ``--config`` that is a file is click's usage error; ``KITOPS_HOME`` is not checked by click.)"""
    home = tmp_path / "home"
    if broken == "storage":
        home.mkdir()
        (home / "storage").write_text("x")
        named = home / "storage"
    else:
        home.write_text("x")
        named = home
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: x}\nmodel: {path: m.bin}\n")
    (context / "m.bin").write_bytes(b"weights")
    for command in (["fsck"], ["gc"], ["list"], ["pack", str(context), "-t", "x:1"], ["remove", "x:1"],
                    ["tag", "x:1", "x:2"]):
        monkeypatch.setenv("KITOPS_HOME", str(home))
        code, out, err = _run(capsys, *command)
        assert (code, out) == (10, ""), command
        assert err == (f"pymodelkit: error: local store {named} is not a directory (move it away, or choose another "
                       "home with --config or KITOPS_HOME)\n"), command
    assert (named.read_text(), sorted(p.name for p in tmp_path.iterdir())) == ("x", ["ctx", "home"])


@pytest.mark.parametrize("command", [["pull"], ["push"], ["inspect", "-r"], ["unpack", "-d", "out"]])
def test_another_tools_transport_is_not_taken_for_a_registry(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docker-archive:/x.tar`` parses, as kit's parser reads it, as registry ``docker-archive:`` with an empty port:
    it used to end in "cannot reach registry docker-archive:" after a DNS lookup."""
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, *command[:1], "docker-archive:/x.tar", *command[1:])
    assert (code, out) == (4, "")
    assert err == ("pymodelkit: error: invalid reference 'docker-archive:/x.tar': 'docker-archive:' is another tool's "
                   "transport, not a registry (pymodelkit reads registries, oci:DIR and oci-archive:FILE)\n")
    assert list(tmp_path.iterdir()) == []
