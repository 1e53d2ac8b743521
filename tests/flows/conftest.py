"""Fixtures for cross-package flows: a private kit home per test and the local store in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pymodelkit


@pytest.fixture
def kit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty kit home directory (what ``KITOPS_HOME`` points at), outside the test's ``tmp_path``."""
    return tmp_path_factory.mktemp("kitops-home")


@pytest.fixture
def store(kit_home: Path) -> pymodelkit.LocalStore:
    """The local store under ``kit_home``."""
    return pymodelkit.LocalStore(kit_home)


@pytest.fixture(autouse=True)
def _kit_environment(kit_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point ``KITOPS_HOME`` at ``kit_home`` and clear ``SOURCE_DATE_EPOCH``; a test may set it again."""
    monkeypatch.setenv("KITOPS_HOME", str(kit_home))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    yield
