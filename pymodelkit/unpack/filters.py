"""Which parts of a ModelKit ``unpack`` extracts: kit's ``--filter types[:ids]`` values (spec §7, §1.5).

A filter names filter words (``kitfile``, ``model``, ``datasets``, ``code``, ``prompts``, ``docs``, ``mcpservers``)
and optionally ids, compared exactly (no path cleaning) with an element's name or path. Filters are OR-ed; no filters
means everything. Choosing and extracting layers is left to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodelkit.errors import UnpackError
from pymodelkit.kitfile.model import LayerKind

__all__ = [
    "FILTER_TYPES",
    "MATCH_NOTHING",
    "UnpackFilter",
    "filters_from_flags",
    "parse_filter",
    "parse_filters",
    "reduce_filters_for_parent",
    "should_unpack",
    "should_unpack_kitfile",
]

# Kit's order, as its error message lists them (kitops-ml/kitops@0cbcf21:pkg/lib/kitfile/filter.go).
FILTER_TYPES = ("kitfile", "model", "datasets", "code", "prompts", "docs", "mcpservers")

# The filter word that selects each layer kind; model parts are covered by ``model``.
_KIND_FILTER_TYPE: dict[str, str] = {
    "model": "model",
    "modelpart": "model",
    "code": "code",
    "dataset": "datasets",
    "docs": "docs",
    "prompt": "prompts",
    "mcpserver": "mcpservers",
}
# Code and docs have no name: ids are compared with their path only.
_PATH_ONLY_KINDS = frozenset({"code", "docs"})


@dataclass(frozen=True, slots=True)
class UnpackFilter:
    """One ``--filter`` value: filter words in ``types``; ``ids`` empty means every element of those types.

    ``text`` is the value as given (``str()`` shows it, or a rendering of ``types`` and ``ids`` without it); it
    takes no part in comparisons.
    """

    types: frozenset[str]
    ids: frozenset[str] = frozenset()
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        if self.text:
            return self.text
        types = ",".join(word for word in FILTER_TYPES if word in self.types)
        return f"{types}:{','.join(sorted(self.ids))}" if self.ids else types

    def matches(self, kind: LayerKind, name: str, path: str) -> bool:
        """True when this filter selects the element of ``kind`` with this name and path."""
        if _filter_type(kind) not in self.types:
            return False
        if not self.ids:
            return True
        if kind in _PATH_ONLY_KINDS:
            return path in self.ids
        return name in self.ids or path in self.ids


# A filter no element matches: what a parent ModelKit gets when no user filter selects models.
MATCH_NOTHING = UnpackFilter(types=frozenset())


def parse_filter(text: str) -> UnpackFilter:
    """Parse one ``types[:ids]`` value, both comma-separated.

    Raises:
        UnpackError: more than one ``:``, or a type that is not one of :data:`FILTER_TYPES` (attribute ``filter``).
    """
    types_and_ids = text.split(":")
    if len(types_and_ids) > 2:
        raise UnpackError("invalid filter: should be in format <type1>,<type2>[:<filter1>,<filter2>]", filter=text)
    types: list[str] = []
    for word in types_and_ids[0].split(","):
        if word not in FILTER_TYPES:
            raise UnpackError(
                f"invalid filter type {word or repr(word)} (must be one of {', '.join(FILTER_TYPES)})", filter=text
            )
        types.append(word)
    # "model:" has one empty id (it matches an empty name), exactly as kit's strings.Split gives.
    ids = frozenset(types_and_ids[1].split(",")) if len(types_and_ids) == 2 else frozenset()
    return UnpackFilter(types=frozenset(types), ids=ids, text=text)


def parse_filters(values: Sequence[str]) -> list[UnpackFilter]:
    """Parse every ``--filter`` value, in order (see :func:`parse_filter`)."""
    return [parse_filter(value) for value in values]


def filters_from_flags(kitfile: bool, model: bool, code: bool, datasets: bool, docs: bool) -> list[UnpackFilter]:
    """The one filter kit builds from the deprecated ``--kitfile --model --code --datasets --docs`` booleans.

    No flag set gives no filters (unpack everything), as kit only uses these when at least one is given.
    """
    chosen = {"kitfile": kitfile, "model": model, "code": code, "datasets": datasets, "docs": docs}
    types = frozenset(word for word, on in chosen.items() if on)
    return [UnpackFilter(types=types)] if types else []


def should_unpack_kitfile(filters: Sequence[UnpackFilter]) -> bool:
    """True when the Kitfile is written: no filters, or a filter that includes ``kitfile``."""
    return not filters or any("kitfile" in f.types for f in filters)


def should_unpack(filters: Sequence[UnpackFilter], kind: LayerKind, name: str, path: str) -> bool:
    """True when the element of ``kind`` (a :data:`~pymodelkit.kitfile.model.LayerKind`) is to be unpacked.

    ``name`` is the element's name (``""`` if it has none) and ``path`` its Kitfile path, both as written.

    Raises:
        ValueError: ``kind`` is not a layer kind.
    """
    _filter_type(kind)
    return not filters or any(f.matches(kind, name, path) for f in filters)


def reduce_filters_for_parent(filters: Sequence[UnpackFilter]) -> list[UnpackFilter]:
    """The filters a parent ModelKit (``model.path`` reference) is unpacked with (§1.5).

    No filters become ``model``; otherwise each filter that includes ``model`` keeps only that type (and its ids).
    If none does, the result is ``[MATCH_NOTHING]``: nothing, not even the Kitfile, is unpacked from the parent
    (an empty list would mean everything).
    """
    if not filters:
        return [UnpackFilter(types=frozenset({"model"}))]
    reduced = [UnpackFilter(types=frozenset({"model"}), ids=f.ids) for f in filters if "model" in f.types]
    return reduced or [MATCH_NOTHING]


def _filter_type(kind: str) -> str:
    try:
        return _KIND_FILTER_TYPE[kind]
    except KeyError:
        raise ValueError(f"unknown layer kind {kind!r}") from None
