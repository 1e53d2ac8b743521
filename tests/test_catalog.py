"""``catalog.list_modelkits`` narrowed as ``kit list REPOSITORY[:TAG|@DIGEST]`` narrows it (spec
``kitops-modelkit.md`` §8.3), over a real store packed for each test. The rows, the tables and the other catalog
calls are tested in ``tests/flows/test_catalog.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.catalog import ListedModelKit, format_list_table, list_modelkits
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import parse_reference
from pymodelkit.store import LocalStore


def _pack(root: Path, weights: bytes, tag: str, store: LocalStore) -> Digest:
    root.mkdir(parents=True)
    (root / "m.bin").write_bytes(weights)
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: demo\n  authors: [Ada]\n"
                                  "model:\n  path: m.bin\n")
    return pymodelkit.pack(root, tag=tag, store=store).digest


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "home")


@pytest.fixture
def packed(store: LocalStore, tmp_path: Path) -> tuple[Digest, Digest]:
    """``demo:v1`` (the first ModelKit); ``demo:v2``, ``demo:stable`` and ``other:v2`` (the second)."""
    first = _pack(tmp_path / "a", b"one", "demo:v1", store)
    second = _pack(tmp_path / "b", b"two", "demo:v2,stable", store)
    pymodelkit.tag("demo:v2", "other:v2", store=store)
    return first, second


def _rows(store: LocalStore, repository: str | None) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(row.repo, str(row.digest), row.tags) for row in list_modelkits(store, repository)]


def test_list_of_a_tag_is_that_tag_s_row_only(store: LocalStore, packed: tuple[Digest, Digest]) -> None:
    first, second = (str(d) for d in packed)
    assert _rows(store, "demo:v1") == [("localhost/demo", first, ("v1",))]
    assert _rows(store, "demo:stable") == [("localhost/demo", second, ("stable",))]  # not its other tag v2
    assert _rows(store, "other:v2") == [("localhost/other", second, ("v2",))]


def test_list_of_a_digest_is_that_manifest_with_all_its_tags(
    store: LocalStore, packed: tuple[Digest, Digest]
) -> None:
    first, second = (str(d) for d in packed)
    assert _rows(store, f"demo@{second}") == [("localhost/demo", second, ("stable", "v2"))]
    assert _rows(store, f"other@{second}") == [("localhost/other", second, ("v2",))]
    assert _rows(store, f"other@{first}") == []  # that manifest is not in this repository


def test_list_of_a_repository_is_every_tag_and_of_nothing_every_repository(
    store: LocalStore, packed: tuple[Digest, Digest]
) -> None:
    first, second = (str(d) for d in packed)
    by_digest = sorted([("localhost/demo", first, ("v1",)), ("localhost/demo", second, ("stable", "v2"))],
                       key=lambda row: row[1])
    assert _rows(store, "demo") == by_digest
    assert _rows(store, None) == _rows(store, "") == [*by_digest, ("localhost/other", second, ("v2",))]


def test_list_of_a_missing_tag_or_digest_is_empty(store: LocalStore, packed: tuple[Digest, Digest]) -> None:
    assert _rows(store, "demo:nope") == []
    assert _rows(store, "other:v1") == []  # v1 is demo's tag, not other's
    assert _rows(store, "demo@sha256:" + "0" * 64) == []
    assert format_list_table(list_modelkits(store, "demo:nope")) == (
        "REPOSITORY   TAG   MAINTAINER   NAME   SIZE   DIGEST\n"
    )


def test_list_takes_a_parsed_reference_as_its_text(store: LocalStore, packed: tuple[Digest, Digest]) -> None:
    for text in ("demo", "demo:stable", f"demo@{packed[0]}"):
        assert list_modelkits(store, parse_reference(text)[0]) == list_modelkits(store, text)
    [row] = list_modelkits(store, parse_reference("demo:v1")[0])
    assert row == ListedModelKit("localhost/demo", packed[0], ("v1",), "demo", "Ada", row.size)


def test_list_refuses_several_tags_and_an_invalid_reference(store: LocalStore) -> None:
    with pytest.raises(pymodelkit.InvalidReferenceError) as several:
        list_modelkits(store, "demo:v1,v2")
    assert str(several.value) == "reference cannot include multiple tags: 'demo:v1,v2'"
    with pytest.raises(pymodelkit.InvalidReferenceError) as empty_tag:
        list_modelkits(store, "demo:")
    assert "'demo:'" in str(empty_tag.value) and "\n" not in str(empty_tag.value)
