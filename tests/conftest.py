"""Fixtures shared by every test: a clean, private environment for each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_CLEARED_PREFIXES = ("JOZU_", "PYMODELKIT_", "KITOPS_")
_CLEARED = ("SOURCE_DATE_EPOCH", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE")


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point HOME, KITOPS_HOME, DOCKER_CONFIG and XDG_* at a fresh temp dir; drop JOZU_*, PYMODELKIT_*, KITOPS_*."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KITOPS_HOME", str(home / "kitops"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    for xdg in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(xdg, str(home / xdg.lower()))
    previous = os.umask(0o022)
    try:
        yield home
    finally:
        os.umask(previous)
