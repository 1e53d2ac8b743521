"""Kitfile path arithmetic as Go's ``path/filepath`` does it on Unix: ``Clean``, ``IsLocal``, ``IsAbs``."""

from __future__ import annotations

__all__ = ["OS_JUNK_FILES", "clean_path", "is_local_path", "is_os_junk", "is_within"]

# File names kit skips everywhere, compared case-insensitively (kit PR #1099): in pack, in init.
OS_JUNK_FILES = (
    ".DS_Store",
    ".AppleDouble",
    ".LSOverride",
    ".Spotlight-V100",
    ".Trashes",
    "Thumbs.db",
    "desktop.ini",
    "$RECYCLE.BIN",
    "ehthumbs.db",
)


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean``: the shortest equivalent path; ``""`` becomes ``"."``, ``./a/`` becomes ``a``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    text = "/".join(parts)
    if rooted:
        return "/" + text
    return text or "."


def is_local_path(path: str) -> bool:
    """Go's ``filepath.IsLocal`` on Unix: relative, non-empty, and not leaving its directory once cleaned."""
    if path == "" or path.startswith("/"):
        return False
    cleaned = clean_path(path)
    return cleaned != ".." and not cleaned.startswith("../")


def is_within(path: str, directory: str) -> bool:
    """True when cleaned ``path`` is ``directory`` or lies under it by whole path elements (``.`` holds all)."""
    return directory == "." or path == directory or path.startswith(directory + "/")


def _fold(text: str) -> str:
    # Go's strings.EqualFold compares rune by rune with simple folding: keep only one-to-one folds.
    return "".join(folded if len(folded := char.casefold()) == 1 else char for char in text)


_JUNK_FOLDED = frozenset(_fold(name) for name in OS_JUNK_FILES)
_JUNK_LENGTHS = frozenset(len(name) for name in OS_JUNK_FILES)
_JUNK_LOWER = frozenset(name.lower() for name in OS_JUNK_FILES)


def is_os_junk(name: str) -> bool:
    """Whether a file or directory name is one of the OS junk names kit skips (``.DS_Store``, ``Thumbs.db``…)."""
    if len(name) not in _JUNK_LENGTHS:
        return False
    if name.isascii():  # ASCII letters fold only among themselves
        return name.lower() in _JUNK_LOWER
    return _fold(name) in _JUNK_FOLDED
