"""Kitfile path arithmetic as Go's ``path/filepath`` does it on Unix: ``Clean``, ``IsLocal``, ``IsAbs``."""

from __future__ import annotations

__all__ = ["clean_path", "is_local_path", "is_within"]


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
