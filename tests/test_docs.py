"""The examples of docs/api.md run, in order, as one script; and the public API matches its ``__all__``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pymodelkit

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = (DOCS / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 10
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "refused:" in out and "not found:" in out
    assert (tmp_path / "deployed" / "Kitfile").is_file()


def test_every_public_name_resolves() -> None:
    for name in pymodelkit.__all__:
        assert getattr(pymodelkit, name) is not None, name
    assert sorted(pymodelkit.__all__) == sorted(set(pymodelkit.__all__))
    assert set(dir(pymodelkit)) >= set(pymodelkit.__all__)
