"""Property: packing the same tree into two separate stores gives the same ModelKit, and unpacking restores the tree.

Trees are small and random: nested and empty directories, empty files, random bytes, unicode names and names longer
than a USTAR name field (100 bytes). With ``SOURCE_DATE_EPOCH`` set, the manifest digest is reproducible across kit
homes; unpacking restores every file's bytes and every file's and directory's permission bits (under the umask).
"""

from __future__ import annotations

import datetime as _dt
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pymodelkit

# A tree is a directory mapping names to children; a leaf is a file (content, permission bits).
File = tuple[bytes, int]
Tree = dict[str, Union[File, "Tree"]]  # Union: `|` with a string forward reference fails at runtime

FILE_MODES = (0o644, 0o600, 0o640, 0o755, 0o700, 0o444)
DIR_MODES = (0o755, 0o750, 0o700)
# Names kit's walk drops on purpose (spec §2.4, §2.5): OS junk files and, at the root, the Kitfile and .kitignore.
JUNK_NAMES = {
    ".ds_store",
    ".appledouble",
    ".lsoverride",
    ".spotlight-v100",
    ".trashes",
    "thumbs.db",
    "desktop.ini",
    "$recycle.bin",
    "ehthumbs.db",
}
ROOT_RESERVED = {"Kitfile", "kitfile", ".kitfile", ".kitignore"}
TAG = "test:props"
NAME_BYTES_MAX = 255


def _usable_name(name: str) -> bool:
    """A name kit packs as itself: no `..` (kit drops paths containing it), no reference characters (`:`/`@` would
    make ``model.path`` a ModelKit reference), no surrounding whitespace (kit trims paths), not junk, fits a
    filesystem name."""
    return (
        name not in (".", "")
        and ".." not in name
        and ":" not in name
        and "@" not in name
        and name.strip() == name
        and name.lower() not in JUNK_NAMES
        and len(name.encode()) <= NAME_BYTES_MAX
    )


_short_names = st.text(
    alphabet=st.one_of(
        st.sampled_from("abcxyz019-_. "),
        st.characters(whitelist_categories=("L", "M", "N", "P", "S"), blacklist_characters="/\\:@"),
    ),
    min_size=1,
    max_size=12,
)


def _long_name(stem: str, size: int) -> str:
    """``stem`` repeated to at most ``size`` UTF-8 bytes."""
    name = stem
    while len((name + stem).encode()) <= size:
        name += stem
    return name


_long_names = st.builds(
    _long_name,
    st.sampled_from(["long-name-", "é", "日本語", "x"]),
    st.integers(min_value=110, max_value=NAME_BYTES_MAX),
)
names = st.one_of(_short_names, _short_names, _short_names, _long_names).filter(_usable_name)

files = st.tuples(st.one_of(st.just(b""), st.binary(max_size=1500)), st.sampled_from(FILE_MODES))
trees: st.SearchStrategy[Tree] = st.recursive(
    st.dictionaries(names, files, max_size=3),
    lambda children: st.dictionaries(names, st.one_of(files, children), max_size=3),
    max_leaves=10,
)
root_trees = st.dictionaries(
    names.filter(lambda name: name not in ROOT_RESERVED), st.one_of(files, trees), min_size=2, max_size=4
)


@dataclass(frozen=True)
class Layout:
    """How the Kitfile divides the tree: ``single`` = ``model: {path: .}``; ``split`` = the first top-level entry
    is the model, the second a dataset, and ``.`` the code layer that takes the rest."""

    kind: str


layouts = st.sampled_from([Layout("single"), Layout("split")])


def yaml_string(text: str) -> str:
    """A YAML double-quoted scalar for ``text`` (names contain no control characters)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kitfile_for(tree: Tree, layout: Layout) -> str:
    lines = ["manifestVersion: 1.0.0", "package:", "  name: props"]
    if layout.kind == "single":
        lines += ["model:", "  path: ."]
    else:
        first, second = sorted(tree)[:2]
        lines += ["model:", f"  path: {yaml_string(first)}"]
        lines += ["datasets:", f"  - path: {yaml_string(second)}"]
        lines += ["code:", "  - path: ."]
    return "\n".join(lines) + "\n"


def materialise(root: Path, tree: Tree, dir_modes: dict[str, int], prefix: str = "") -> None:
    """Create ``tree`` under ``root``; directories get modes from ``dir_modes`` (by relative path) after filling."""
    for name, node in tree.items():
        path = root / name
        rel = f"{prefix}{name}"
        if isinstance(node, dict):
            path.mkdir()
            materialise(path, node, dir_modes, rel + "/")
            path.chmod(dir_modes.get(rel, 0o755))
        else:
            data, mode = node
            path.write_bytes(data)
            path.chmod(mode)


def snapshot(root: Path, skip: set[str]) -> dict[str, tuple[str, bytes, int]]:
    """``{relative path: (kind, bytes, permission bits)}`` for everything under ``root`` except ``skip``."""
    found: dict[str, tuple[str, bytes, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if rel in skip:
                continue
            info = full.lstat()
            perm = stat.S_IMODE(info.st_mode)
            if stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", b"", perm)
            else:
                assert stat.S_ISREG(info.st_mode), f"{rel} is not a regular file"
                found[rel] = ("file", full.read_bytes(), perm)
    return found


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def layer_digests(result: pymodelkit.PackResult) -> list[str]:
    return [str(layer.digest) for layer in result.manifest.layers or ()]


# The autouse environment fixture (conftest) is function-scoped; each example makes its own temp dirs and stores and
# sets its own environment, so sharing that fixture between examples is harmless.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=root_trees,
    layout=layouts,
    epoch=st.integers(min_value=0, max_value=2**31 - 1),
    dir_mode_choices=st.lists(st.sampled_from(DIR_MODES), min_size=1, max_size=8),
)
def test_pack_is_reproducible_across_homes_and_unpack_restores_tree(
    tree: Tree, layout: Layout, epoch: int, dir_mode_choices: list[int]
) -> None:
    umask = current_umask()
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as env:
        env.setenv("SOURCE_DATE_EPOCH", str(epoch))
        work = Path(tmp)
        context = work / "in"
        context.mkdir()
        dir_paths = sorted(_dir_paths(tree))
        dir_modes = {path: dir_mode_choices[i % len(dir_mode_choices)] for i, path in enumerate(dir_paths)}
        materialise(context, tree, dir_modes)
        (context / "Kitfile").write_text(kitfile_for(tree, layout), encoding="utf-8")

        homes = [work / "home-1", work / "home-2"]
        stores = [pymodelkit.LocalStore(home) for home in homes]
        packed: list[pymodelkit.PackResult] = []
        for home, store in zip(homes, stores, strict=True):
            env.setenv("KITOPS_HOME", str(home))
            packed.append(pymodelkit.pack(context, tag=TAG, store=store))
        first, second = packed

        assert first.manifest_bytes == second.manifest_bytes
        assert first.digest == second.digest
        assert first.config_bytes == second.config_bytes
        assert layer_digests(first) == layer_digests(second)
        expected_layers = 1 if layout.kind == "single" else 3
        assert len(layer_digests(first)) == expected_layers
        created = _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert dict(first.manifest.annotations or {})["org.opencontainers.image.created"] == created

        out = work / "out"
        pymodelkit.unpack(TAG, out, store=stores[1])

        source = snapshot(context, skip={"Kitfile"})
        unpacked = snapshot(out, skip={"Kitfile"})
        expected = {rel: (kind, data, perm & ~umask) for rel, (kind, data, perm) in source.items()}
        assert unpacked == expected
        assert (out / "Kitfile").is_file()


def _dir_paths(tree: Tree, prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, node in tree.items():
        if isinstance(node, dict):
            paths.append(prefix + name)
            paths.extend(_dir_paths(node, f"{prefix}{name}/"))
    return paths
