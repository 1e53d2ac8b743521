"""``pymodelkit unpack`` on bad input and failures, from the bad-input audit (P4, P6, P9, P14, P18).

A filter that does not parse is a usage error (exit 2) and one that selects nothing a warning; an OS refusal part-way
(a read-only subdirectory, a file past the size limit, the disk full) is exit 1 naming the full path; a real SIGINT
while a 100 MiB layer from a registry is being written is exit 130. After every failure the target directory is as
it was, and running the same command again succeeds with the right bytes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.cli.main import main
from pymodelkit.registry import push
from tests.support.registry import TestRegistry
from tests.support.trees import pattern_bytes, snapshot_tree, unique_repo

KITFILE = """manifestVersion: 1.0.0
package:
  name: demo
model:
  name: weights
  path: model
code:
  - path: sub
"""
CLI = [sys.executable, "-m", "pymodelkit.cli.main"]


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _source(root: Path, weights: int = 3 << 20) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(pattern_bytes(weights, b"w"))
    (root / "sub").mkdir()
    (root / "sub" / "f").write_text("s\n")
    (root / "Kitfile").write_text(KITFILE)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def src(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """demo:v1 packed into the test's store from the returned tree."""
    tree = _source(tmp_path / "src")
    code, _, err = _run(capsys, "pack", tree, "-t", "demo:v1")
    assert code == 0, err
    return tree


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base"
    path.mkdir()
    (path / "notes.txt").write_bytes(b"mine")
    return path


# --- filters (P6, P14, P18) ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, reason",
    [
        ("weights", "invalid filter type weights (must be one of kitfile, model, datasets, code, prompts, docs, "
                    "mcpservers)"),
        ("", "invalid filter type '' (must be one of kitfile, model, datasets, code, prompts, docs, mcpservers)"),
        ("model:a:b", "invalid filter: should be in format <type1>,<type2>[:<filter1>,<filter2>]"),
    ],
)
def test_a_filter_that_does_not_parse_is_a_usage_error(
    src: Path, base: Path, capsys: pytest.CaptureFixture[str], value: str, reason: str
) -> None:
    code, out, err = _run(capsys, "unpack", "demo:v1", "-d", base / "out", "-f", "model", "-f", value)
    assert code == 2
    assert out == ""
    assert err == (f"pymodelkit: error: Invalid value for '-f' / '--filter': {value!r}: {reason} "
                   "(see 'pymodelkit unpack --help')\n")
    assert sorted(snapshot_tree(base)) == ["notes.txt"]  # not even the target directory


@pytest.mark.parametrize("value", ["datasets:nosuch", "model:", "code:nosuch"])
def test_a_filter_that_selects_nothing_warns(
    src: Path, base: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = _run(capsys, "unpack", "demo:v1", "-d", base / "out", "-f", value)
    assert code == 0
    assert err == f"[WARN] filter {value} matches nothing in demo:v1: nothing is unpacked for it\n"
    assert out.startswith("Unpacked 0 files from sha256:")
    code, _, err = _run(capsys, "unpack", "demo:v1", "-d", base / "out2", "-f", value, "-f", "code")
    assert (code, err) == (0, f"[WARN] filter {value} matches nothing in demo:v1: nothing is unpacked for it\n")
    assert _files(base / "out2") == {"sub/f": b"s\n"}


def test_filter_help_does_not_break_words(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "unpack", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "-f, --filter TYPES[:IDS] What to unpack (repeatable): TYPES from kitfile, model, datasets, code, docs, " \
           "prompts, mcpservers, comma-separated; IDS are names or paths, comma-separated." in text
    for line in out.splitlines():
        assert not line.rstrip().endswith(("datase", "mcpserv", "kitfi")), line


# --- OS errors (P4, P6, P9) ------------------------------------------------------------------------------------


def _unprivileged() -> list[str]:
    """The CLI, run so that file permissions apply: as root, without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return CLI
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", *CLI]


def test_read_only_subdirectory_is_an_os_error_naming_the_path_and_leaves_nothing(src: Path, base: Path) -> None:
    (base / "sub").mkdir()
    (base / "sub").chmod(0o555)
    before = snapshot_tree(base)
    run = subprocess.run([*_unprivileged(), "unpack", "demo:v1", "-d", str(base)], capture_output=True, text=True,
                         timeout=60)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"pymodelkit: error: cannot write {base}/sub/f: Permission denied\n"
    assert snapshot_tree(base) == before  # the Kitfile and model/weights.bin, written before sub/f, are gone
    (base / "sub").chmod(0o755)
    run = subprocess.run([*_unprivileged(), "unpack", "demo:v1", "-d", str(base)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert _files(base) == {**_files(src), "notes.txt": b"mine"}


def test_read_only_target_names_the_full_path(src: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (base / "ro").mkdir(mode=0o555)
    (base / "ro").chmod(0o555)
    monkeypatch.chdir(base)
    before = snapshot_tree(base)
    for target, message in [
        ("ro", f"cannot write {base}/ro/Kitfile: Permission denied"),
        ("ro/a/b", f"cannot create unpack directory {base}/ro/a/b: Permission denied"),
    ]:
        run = subprocess.run([*_unprivileged(), "unpack", "demo:v1", "-d", target], capture_output=True, text=True,
                             timeout=60)
        assert (run.returncode, run.stderr) == (1, f"pymodelkit: error: {message}\n")
        assert snapshot_tree(base) == before


def _size_limited(limit: int) -> list[str]:
    """The CLI with a soft RLIMIT_FSIZE of ``limit`` bytes and SIGXFSZ ignored: a longer write fails with EFBIG."""
    return [sys.executable, "-c", (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "from pymodelkit.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )]


@pytest.mark.parametrize(
    "limit, failing",
    [(1 << 20, "model/weights.bin"), (0, "Kitfile")],
    ids=["part-way-through-a-file", "first-byte-of-the-kitfile"],
)
def test_a_write_that_fails_part_way_leaves_the_target_as_it_was(
    src: Path, base: Path, limit: int, failing: str
) -> None:
    before = snapshot_tree(base)
    target = base / "new" / "out"
    run = subprocess.run([*_size_limited(limit), "unpack", "demo:v1", "-d", str(target)], capture_output=True,
                         text=True, timeout=60)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"pymodelkit: error: cannot write {target}/{failing}: File too large\n"
    assert snapshot_tree(base) == before  # no 0-byte Kitfile, no truncated weights, no new/ nor new/out/
    run = subprocess.run([*CLI, "unpack", "demo:v1", "-d", str(target)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert _files(target) == _files(src)


# --- a real SIGINT (P4) ----------------------------------------------------------------------------------------


def test_sigint_while_writing_a_layer_from_a_registry_leaves_nothing_and_a_rerun_works(
    registry: TestRegistry, tmp_path: Path, base: Path
) -> None:
    weights = 100 << 20
    tree = _source(tmp_path / "big", weights=weights)
    ref = f"{registry.host}/{unique_repo('unpack-sigint', 'big')}:v1"
    publisher = pymodelkit.LocalStore(tmp_path / "publisher")
    pymodelkit.pack(tree, tag=ref, store=publisher)
    push(ref, store=publisher, plain_http=True)

    before = snapshot_tree(base)
    target = base / "new" / "deeper"
    env = {**os.environ, "KITOPS_HOME": str(tmp_path / "consumer")}  # an empty store: unpack reads the registry
    child = subprocess.Popen([*CLI, "unpack", ref, "-d", str(target)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            seen = [p.name for p in target.rglob(".pymodelkit-*.partial")] if target.is_dir() else []
            if seen:
                child.send_signal(signal.SIGINT)
                break
            time.sleep(0.0005)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert seen, f"the unpack ended before a layer was being written: {child.returncode} {err!r}"
    assert (child.returncode, out, err) == (130, "", "pymodelkit: error: interrupted\n")
    assert snapshot_tree(base) == before

    run = subprocess.run([*CLI, "unpack", ref, "-d", str(target)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert _files(target) == _files(tree)
    assert (target / "model" / "weights.bin").stat().st_size == weights
