"""Usage errors and click's other errors at the CLI (``pymodelkit/cli/main.py``): one line on stderr,
``pymodelkit: error: <click's message> (see '<command path> --help')``, exit 2, nothing on stdout and nothing else on
stderr (no ``Usage:``/``Try …`` lines, no blank line); a non-usage click error is one line too (exit 1). ``--help``,
``-h``, ``--version`` and a bare ``pymodelkit`` behave as click makes them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from pymodelkit._version import __version__
from pymodelkit.cli.main import cli, main

CLI = [sys.executable, "-m", "pymodelkit.cli.main"]


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(["pull"], "Missing argument 'REFERENCE'. (see 'pymodelkit pull --help')",
                     id="missing-argument"),
        pytest.param(["-v", "pull"], "Missing argument 'REFERENCE'. (see 'pymodelkit pull --help')",
                     id="missing-argument-verbose"),
        pytest.param(["pull", "--nope", "x"], "No such option '--nope'. (see 'pymodelkit pull --help')",
                     id="unknown-option"),
        pytest.param(["pull", "--concurency", "2", "x"],
                     "No such option '--concurency'. Did you mean '--concurrency'? (see 'pymodelkit pull --help')",
                     id="unknown-option-with-suggestion"),
        pytest.param(["--nope", "list"], "No such option '--nope'. (see 'pymodelkit --help')",
                     id="unknown-global-option"),
        pytest.param(["list", "--format", "xml"],
                     "Invalid value for '--format': 'xml' is not one of 'table', 'json'. "
                     "(see 'pymodelkit list --help')",
                     id="invalid-choice"),
        pytest.param(["pull", "--concurrency", "many", "x"],
                     "Invalid value for '--concurrency': 'many' is not a valid integer range. "
                     "(see 'pymodelkit pull --help')",
                     id="invalid-value"),
        pytest.param(["unpack", "demo:v1", "--overwrite", "--ignore-existing"],
                     "--overwrite and --ignore-existing cannot be used together (see 'pymodelkit unpack --help')",
                     id="usage-error-of-a-command"),
        pytest.param(["nosuch"], "No such command 'nosuch'. (see 'pymodelkit --help')", id="unknown-command"),
        pytest.param(["unpak"],
                     "No such command 'unpak'. (Did you mean one of: 'pack', 'unpack'?) (see 'pymodelkit --help')",
                     id="unknown-command-with-suggestions"),
        pytest.param(["mlflow", "pack"], "Missing argument 'MODEL_URI'. (see 'pymodelkit mlflow pack --help')",
                     id="subgroup-command"),
        pytest.param(["mlflow", "nosuch"], "No such command 'nosuch'. (see 'pymodelkit mlflow --help')",
                     id="unknown-subgroup-command"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_command_and_its_help(
    capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    code, out, err = _run(capsys, *args)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert err == f"pymodelkit: error: {line}\n"


def test_a_config_that_is_a_file_is_a_usage_error_of_the_global_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "home").write_text("x")
    assert _run(capsys, "--config", tmp_path / "home", "list") == (
        2, "", f"pymodelkit: error: Invalid value for '--config': Directory '{tmp_path / 'home'}' is a file. "
               "(see 'pymodelkit --help')\n")


def test_the_console_script_prints_one_line_too(tmp_path: Path) -> None:
    """The real entry point, in a process of its own: stderr holds exactly the one line."""
    run = subprocess.run([*CLI, "unpack", "demo:v1", "-d", str(tmp_path / "out"), "-f", "weights"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (
        "pymodelkit: error: Invalid value for '-f' / '--filter': 'weights': invalid filter type weights (must be one "
        "of kitfile, model, datasets, code, prompts, docs, mcpservers) (see 'pymodelkit unpack --help')\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_click_error_that_is_not_about_usage_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_open() -> None:
        raise click.FileError("/srv/in.yaml", hint="Permission denied")

    monkeypatch.setattr(cli.commands["version"], "callback", cannot_open)
    assert _run(capsys, "version") == (1, "", "pymodelkit: error: Could not open file '/srv/in.yaml': Permission "
                                              "denied\n")


def test_a_multi_line_click_message_is_joined_into_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise click.UsageError("first part\nsecond   part")

    monkeypatch.setattr(cli.commands["version"], "callback", refuse)
    assert _run(capsys, "version") == (2, "", "pymodelkit: error: first part second part "
                                              "(see 'pymodelkit version --help')\n")


@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_still_shows_the_usage(capsys: pytest.CaptureFixture[str], option: str) -> None:
    code, out, err = _run(capsys, "pull", option)
    assert (code, err) == (0, "")
    assert out.startswith("Usage: pymodelkit pull [OPTIONS] REFERENCE\n")
    code, out, err = _run(capsys, "mlflow", "pack", option)
    assert (code, err) == (0, "")
    assert out.startswith("Usage: pymodelkit mlflow pack [OPTIONS] MODEL_URI\n")
    code, out, err = _run(capsys, option)
    assert (code, err) == (0, "")
    assert out.startswith("Usage: pymodelkit [OPTIONS] COMMAND [ARGS]...\n") and "\nCommands:\n" in out


def test_version_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "--version") == (0, f"pymodelkit, version {__version__}\n", "")


@pytest.mark.parametrize(("args", "usage"), [([], "pymodelkit [OPTIONS] COMMAND [ARGS]..."),
                                              (["mlflow"], "pymodelkit mlflow [OPTIONS] COMMAND [ARGS]...")])
def test_a_bare_group_still_prints_its_help(capsys: pytest.CaptureFixture[str], args: list[str], usage: str) -> None:
    """As click does it (8.2 and later: on stderr with exit 2; 8.1: on stdout with exit 0), with no error line."""
    code, out, err = _run(capsys, *args)
    if hasattr(click.exceptions, "NoArgsIsHelpError"):
        assert (code, out) == (2, "")
        text = err
    else:  # pragma: no cover - click 8.1
        assert (code, err) == (0, "")
        text = out
    assert text.startswith(f"Usage: {usage}\n") and "\nCommands:\n" in text
    assert "pymodelkit: error" not in text and "Error:" not in text and "\n\n\n" not in text
