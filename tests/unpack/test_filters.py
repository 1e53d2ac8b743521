"""Unpack filters: kit's ``--filter types[:ids]`` parsing and matching (spec §7, §1.5)."""

from __future__ import annotations

import pickle

import pytest

from pymodelkit.errors import UnpackError
from pymodelkit.unpack.filters import (
    FILTER_TYPES,
    MATCH_NOTHING,
    UnpackFilter,
    filters_from_flags,
    parse_filter,
    parse_filters,
    reduce_filters_for_parent,
    should_unpack,
    should_unpack_kitfile,
)

ALL_KINDS = ("model", "modelpart", "code", "dataset", "docs", "prompt", "mcpserver")


def test_parse_types_only() -> None:
    assert parse_filter("model") == UnpackFilter(types=frozenset({"model"}), ids=frozenset())
    assert parse_filter("model,datasets,kitfile") == UnpackFilter(frozenset({"model", "datasets", "kitfile"}))


def test_parse_types_and_ids() -> None:
    assert parse_filter("datasets,code:train,./src") == UnpackFilter(
        types=frozenset({"datasets", "code"}), ids=frozenset({"train", "./src"})
    )


def test_parse_trailing_colon_gives_one_empty_id() -> None:
    assert parse_filter("model:") == UnpackFilter(frozenset({"model"}), frozenset({""}))


def test_every_filter_word_parses() -> None:
    assert FILTER_TYPES == ("kitfile", "model", "datasets", "code", "prompts", "docs", "mcpservers")
    for word in FILTER_TYPES:
        assert parse_filter(word).types == frozenset({word})


def test_parse_rejects_two_colons() -> None:
    with pytest.raises(UnpackError) as info:
        parse_filter("model:a:b")
    assert str(info.value) == "invalid filter: should be in format <type1>,<type2>[:<filter1>,<filter2>]"
    assert info.value.details["filter"] == "model:a:b"


@pytest.mark.parametrize("text, bad", [("dataset", "dataset"), ("model,Docs", "Docs"), (":x", "''"), ("", "''")])
def test_parse_rejects_unknown_type(text: str, bad: str) -> None:
    with pytest.raises(UnpackError) as info:
        parse_filter(text)
    assert str(info.value) == (
        f"invalid filter type {bad} (must be one of kitfile, model, datasets, code, prompts, docs, mcpservers)"
    )


def test_parse_filters_keeps_order_and_fails_on_first_bad() -> None:
    assert parse_filters(["model", "datasets:validation"]) == [
        UnpackFilter(frozenset({"model"})),
        UnpackFilter(frozenset({"datasets"}), frozenset({"validation"})),
    ]
    with pytest.raises(UnpackError, match=r"invalid filter type weights"):
        parse_filters(["model", "weights"])


def test_error_pickles() -> None:
    with pytest.raises(UnpackError) as info:
        parse_filter("bogus")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is UnpackError and str(again) == str(info.value) and again.details["filter"] == "bogus"


def test_no_filters_unpack_everything() -> None:
    assert should_unpack_kitfile([])
    for kind in ALL_KINDS:
        assert should_unpack([], kind, "n", "p")  # type: ignore[arg-type]


def test_kitfile_only_with_kitfile_word() -> None:
    assert should_unpack_kitfile([parse_filter("model"), parse_filter("kitfile,docs")])
    assert not should_unpack_kitfile([parse_filter("model,datasets,code,docs,prompts,mcpservers")])
    kitfile_only = [parse_filter("kitfile")]
    for kind in ALL_KINDS:
        assert not should_unpack(kitfile_only, kind, "n", "p")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "word, kinds",
    [
        ("model", {"model", "modelpart"}),
        ("datasets", {"dataset"}),
        ("code", {"code"}),
        ("docs", {"docs"}),
        ("prompts", {"prompt"}),
        ("mcpservers", {"mcpserver"}),
    ],
)
def test_filter_word_selects_kinds(word: str, kinds: set[str]) -> None:
    filters = [parse_filter(word)]
    selected = {kind for kind in ALL_KINDS if should_unpack(filters, kind, "n", "p")}  # type: ignore[arg-type]
    assert selected == kinds


def test_ids_match_name_or_path_exactly() -> None:
    filters = [parse_filter("datasets:validation,data/test.csv")]
    assert should_unpack(filters, "dataset", "validation", "data/val.csv")
    assert should_unpack(filters, "dataset", "", "data/test.csv")
    assert not should_unpack(filters, "dataset", "train", "data/train.csv")
    # No path cleaning: ./data/test.csv is another string.
    assert not should_unpack(filters, "dataset", "", "./data/test.csv")
    assert not should_unpack([parse_filter("docs:README.md")], "docs", "", "./README.md")
    assert should_unpack([parse_filter("docs:./README.md")], "docs", "", "./README.md")


def test_code_and_docs_match_path_only() -> None:
    assert not should_unpack([parse_filter("code:tools")], "code", "tools", "src")
    assert should_unpack([parse_filter("code:src")], "code", "tools", "src")
    assert not should_unpack([parse_filter("docs:guide")], "docs", "guide", "docs/")


def test_model_parts_prompts_and_mcpservers_match_name_or_path() -> None:
    assert should_unpack([parse_filter("model:lora")], "modelpart", "lora", "adapters/lora")
    assert should_unpack([parse_filter("model:adapters/lora")], "modelpart", "", "adapters/lora")
    assert should_unpack([parse_filter("prompts:system")], "prompt", "system", "prompts/system.md")
    assert should_unpack([parse_filter("mcpservers:postgres")], "mcpserver", "postgres", "servers/pg.mcpb")
    assert not should_unpack([parse_filter("mcpservers:postgres")], "mcpserver", "sqlite", "servers/lite.mcpb")


def test_empty_id_matches_empty_name() -> None:
    assert should_unpack([parse_filter("model:")], "model", "", "model.bin")
    assert not should_unpack([parse_filter("model:")], "model", "llama", "model.bin")


def test_filters_are_ored() -> None:
    filters = [parse_filter("model"), parse_filter("datasets:validation")]
    assert should_unpack(filters, "model", "m", "m.bin")
    assert should_unpack(filters, "dataset", "validation", "v.csv")
    assert not should_unpack(filters, "dataset", "train", "t.csv")
    assert not should_unpack(filters, "code", "", "src")
    assert not should_unpack_kitfile(filters)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"unknown layer kind 'datasets'"):
        should_unpack([], "datasets", "", "")  # type: ignore[arg-type]


def test_filters_from_flags() -> None:
    assert filters_from_flags(False, False, False, False, False) == []
    assert filters_from_flags(True, True, False, True, False) == [
        UnpackFilter(frozenset({"kitfile", "model", "datasets"}))
    ]
    (combined,) = filters_from_flags(False, False, True, False, True)
    assert should_unpack([combined], "code", "", "src")
    assert should_unpack([combined], "docs", "", "README.md")
    assert not should_unpack([combined], "model", "", "m")
    assert not should_unpack_kitfile([combined])


def test_parent_without_filters_gets_model_only() -> None:
    reduced = reduce_filters_for_parent([])
    assert reduced == [UnpackFilter(frozenset({"model"}))]
    assert not should_unpack_kitfile(reduced)
    assert should_unpack(reduced, "modelpart", "p", "p")
    assert not should_unpack(reduced, "dataset", "d", "d")


def test_parent_filters_reduced_to_model_component() -> None:
    filters = [parse_filter("model,datasets:llama,train"), parse_filter("code"), parse_filter("kitfile,model")]
    assert reduce_filters_for_parent(filters) == [
        UnpackFilter(frozenset({"model"}), frozenset({"llama", "train"})),
        UnpackFilter(frozenset({"model"})),
    ]


def test_parent_gets_nothing_when_no_filter_has_model() -> None:
    reduced = reduce_filters_for_parent([parse_filter("datasets"), parse_filter("kitfile")])
    assert reduced == [MATCH_NOTHING]
    assert not should_unpack_kitfile(reduced)
    for kind in ALL_KINDS:
        assert not should_unpack(reduced, kind, "", "")  # type: ignore[arg-type]
