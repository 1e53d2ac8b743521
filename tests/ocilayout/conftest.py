"""Fixtures for the OCI layout tests: a packed ModelKit in a store of its own, and its saved archive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.pack.pipeline import PackResult
from tests.support.trees import CHURN_KITFILE, write_source_tree

REFERENCE = "registry.example.com/team/churn:v1"


@dataclass(frozen=True)
class Saved:
    """A ModelKit packed into ``store`` as ``REFERENCE`` and saved to ``archive``."""

    store: pymodelkit.LocalStore
    packed: PackResult
    archive: Path
    source: Path


@pytest.fixture
def saved(tmp_path: Path) -> Saved:
    src = write_source_tree(tmp_path, CHURN_KITFILE, weights=200_000)
    store = pymodelkit.LocalStore(tmp_path / "home-packed")
    packed = pymodelkit.pack(src, tag=REFERENCE, store=store)
    archive = tmp_path / "churn.tar"
    pymodelkit.save(REFERENCE, archive, store=store)
    return Saved(store, packed, archive, src)


@pytest.fixture
def empty_store(tmp_path: Path) -> pymodelkit.LocalStore:
    return pymodelkit.LocalStore(tmp_path / "home-empty")
