"""pykitops' ``kitops.modelkit.utils`` (its module name): small helpers pykitops code imports.

``parse_modelkit_tag`` and ``load_environment_variables`` are those of :mod:`pymodelkit.compat.reference` and
:mod:`pymodelkit.compat.user` (with their fixes); the rest are pykitops' own helpers, kept for the code that uses them.
"""

from __future__ import annotations

import sys
from collections.abc import Set
from enum import Enum
from pathlib import Path
from typing import Any

from pymodelkit.compat.reference import parse_modelkit_tag
from pymodelkit.compat.user import load_environment_variables

__all__ = [
    "IS_A_TTY",
    "Color",
    "clean_empty_items",
    "get_or_create_directory",
    "load_environment_variables",
    "parse_modelkit_tag",
    "validate_dict",
]

IS_A_TTY = sys.stdout.isatty()


class Color(Enum):
    """ANSI colour codes (pykitops colours its log lines with them on a terminal)."""

    BLACK = "\033[30m"
    RED = "\033[31m"
    GREEN = "\033[32m"
    YELLOW = "\033[33m"
    BLUE = "\033[34m"
    MAGENTA = "\033[35m"
    CYAN = "\033[36m"
    WHITE = "\033[37m"
    RESET = "\033[0m"


def validate_dict(value: Any, allowed_keys: Set[str]) -> None:
    """Check that ``value`` is a dict whose keys are all in ``allowed_keys``.

    Raises:
        ValueError: not a dict (``Expected a dictionary but got <type>``), or ``Found unallowed key(s): …``.
    """
    if not isinstance(value, dict):
        raise ValueError(f"Expected a dictionary but got {type(value).__name__}")
    unallowed = sorted(set(value) - set(allowed_keys), key=str)
    if unallowed:
        raise ValueError(f"Found unallowed key(s): {', '.join(map(str, unallowed))}")


def clean_empty_items(d: Any) -> Any:
    """``d`` without ``None``, blank strings, and dicts or lists that end up empty (recursively); blank keys too."""
    if isinstance(d, dict):
        cleaned: dict[Any, Any] = {}
        for key, value in d.items():
            if isinstance(key, str) and not key.strip():
                continue
            kept = _clean_value(value)
            if kept is not _DROP:
                cleaned[key] = kept
        return cleaned
    if isinstance(d, list):
        return [kept for kept in map(_clean_value, d) if kept is not _DROP]
    return d


_DROP = object()


def _clean_value(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return _DROP
    if isinstance(value, (dict, list)):
        cleaned = clean_empty_items(value)
        return cleaned if cleaned else _DROP
    return value


def get_or_create_directory(directory: str) -> str:
    """Create ``directory`` (and its parents) if missing; return it as a POSIX path string."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return path.as_posix()
