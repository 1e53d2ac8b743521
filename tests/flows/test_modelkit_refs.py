"""Parent ModelKits (``model.path`` naming another ModelKit) through pack and unpack.

The first part runs kit's upstream ``modelkit-refs`` cases (``tests/data/kit/modelkit-refs/``) with a reimplementation
of kit's harness (spec ``kitops-modelkit.md`` §10.3): ModelKit i is built in ``<tmp>/modelkit-i``; a case with
``packErrRegexp`` must fail to pack with a message that matches it; any other is packed with its tag, listed, and
unpacked into ``<tmp>/modelkit-(i+1)``, where the files of every ModelKit so far must be (parents' model layers are
unpacked recursively) and this one's ``ignored`` files must not. The rest checks exclusion by the parent chain's paths,
filters on parents, the merged-chain validation, and the errors for missing parents and cycles (spec ``format.md``
§1.6, §3.6, §7.2).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import pymodelkit
from pymodelkit.errors import KitfileError, NotFoundError
from pymodelkit.kitfile import Kitfile, Model, ModelPart, load_kitfile
from pymodelkit.oci.reference import parse_reference
from pymodelkit.pack.parents import merge_parent_chain, parent_layer_paths
from pymodelkit.store import LocalStore

CASES_DIR = Path(__file__).resolve().parent.parent / "data" / "kit" / "modelkit-refs"
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class RefModelKit:
    """One ModelKit of an upstream case."""

    tag: str
    kitfile: str
    kitignore: str
    files: tuple[str, ...]
    ignored: tuple[str, ...]
    pack_err_regexp: str | None


def load_case(path: Path) -> tuple[str, list[RefModelKit]]:
    """Read a case file: its description and its ModelKits, in order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    kits = [
        RefModelKit(
            tag=str(kit["tag"]),
            kitfile=str(kit.get("kitfile") or ""),
            kitignore=str(kit.get("kitignore") or ""),
            files=tuple(str(p) for p in kit.get("files") or ()),
            ignored=tuple(str(p) for p in kit.get("ignored") or ()),
            pack_err_regexp=None if kit.get("packErrRegexp") is None else str(kit["packErrRegexp"]),
        )
        for kit in data["modelkits"]
    ]
    return str(data.get("description") or ""), kits


def write_file(path: Path, data: bytes) -> None:
    """Write a 0644 file, creating missing parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)


def setup_files(context: Path, listed: tuple[str, ...]) -> None:
    """kit's ``setupFiles``: each listed path with content ``testing: <path as listed>``."""
    for entry in listed:
        write_file(context / posixpath.normpath(entry), f"testing: {entry}".encode())


def regular_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` as ``{relative path: content}``; anything but files and directories fails."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath, name)
            mode = full.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            assert stat.S_ISREG(mode), f"{full} is not a regular file"
            found[full.relative_to(root).as_posix()] = full.read_bytes()
    return found


def expected_contents(listed: list[str]) -> dict[str, bytes]:
    """What ``setup_files`` wrote for ``listed``, keyed like :func:`regular_files`."""
    return {posixpath.normpath(entry): f"testing: {entry}".encode() for entry in listed}


def layer_members(store: LocalStore, result: pymodelkit.PackResult) -> dict[str, list[str]]:
    """The tar entry names of each layer of a pack, keyed by the layer's filepath annotation."""
    members: dict[str, list[str]] = {}
    for layer in result.manifest.layers or ():
        with tarfile.open(fileobj=io.BytesIO(store.read_blob(layer.digest)), mode="r:") as tar:
            members[(layer.annotations or {})["org.cncf.model.filepath"]] = tar.getnames()
    return members


def pack_kit(store: LocalStore, context: Path, kitfile: str, files: dict[str, str], tag: str) -> pymodelkit.PackResult:
    """Write ``kitfile`` and ``files`` (path: content) into ``context`` and pack it as ``tag``."""
    write_file(context / "Kitfile", kitfile.encode())
    for name, content in files.items():
        write_file(context / name, content.encode())
    return pymodelkit.pack(context, tag=tag, store=store)


def tags_of(store: LocalStore) -> dict[str, str]:
    """Every ``repo:tag`` in the store and the manifest digest it names."""
    return {f"{row.repo}:{t}": str(row.digest) for row in pymodelkit.list_modelkits(store) for t in row.tags}


# ----- kit's upstream cases ------------------------------------------------------------------------------------------


def test_all_upstream_cases_are_present() -> None:
    assert [p.name for p in CASE_FILES] == [
        "test_reference-basic.yaml",
        "test_reference-long-chain.yaml",
        "test_reference-loop.yaml",
    ]


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_upstream_modelkit_refs_case(case_file: Path, tmp_path: Path, store: LocalStore) -> None:
    _, kits = load_case(case_file)
    # As in kit's harness, every directory exists up front, and ModelKit i+1 is built in the directory ModelKit i was
    # unpacked into: its parents' files are there too, and must stay out of its layers.
    for index in range(len(kits) + 1):
        (tmp_path / f"modelkit-{index}").mkdir(mode=0o755)
    all_files: list[str] = []
    for index, kit in enumerate(kits):
        current = tmp_path / f"modelkit-{index}"
        following = tmp_path / f"modelkit-{index + 1}"
        write_file(current / "Kitfile", kit.kitfile.encode())
        if kit.kitignore:
            write_file(current / ".kitignore", kit.kitignore.encode())
        setup_files(current, kit.files + kit.ignored)
        all_files += kit.files

        if kit.pack_err_regexp is not None:
            before = tags_of(store)
            with pytest.raises(KitfileError) as caught:
                pymodelkit.pack(current, tag=kit.tag, store=store)
            message = str(caught.value)
            assert "\n" not in message
            assert re.search(kit.pack_err_regexp, message), message
            assert tags_of(store) == before  # a refused pack changes nothing that lists
            continue

        result = pymodelkit.pack(current, tag=kit.tag, store=store)
        assert f"localhost/{kit.tag}" in tags_of(store)
        assert tags_of(store)[f"localhost/{kit.tag}"] == str(result.digest)
        unpacked = pymodelkit.unpack(kit.tag, following, store=store)
        assert unpacked.digest == result.digest

        found = regular_files(following)
        # kit's harness only checks that the files exist; we check the whole set, content included.
        assert found.pop("Kitfile") == pymodelkit.dump_kitfile(load_kitfile(kit.kitfile)).encode()
        assert found == expected_contents(all_files)
        for ignored in kit.ignored:
            assert not (following / posixpath.normpath(ignored)).exists()


def test_reference_basic_layers_hold_only_their_own_files(tmp_path: Path, store: LocalStore) -> None:
    """In test_reference-basic each ModelKit's layers carry exactly the files it lists, none of its parents'."""
    _, kits = load_case(CASES_DIR / "test_reference-basic.yaml")
    results = []
    for index, kit in enumerate(kits):
        current = tmp_path / f"modelkit-{index}"
        write_file(current / "Kitfile", kit.kitfile.encode())
        setup_files(current, kit.files)
        # Every ModelKit's directory also holds its parents' files, so exclusion by the chain is what keeps them out.
        for earlier in kits[:index]:
            setup_files(current, earlier.files)
        results.append(pymodelkit.pack(current, tag=kit.tag, store=store))

    assert layer_members(store, results[0]) == {
        "my-model": [
            "my-model",
            "my-model/model-1-file-1.txt",
            "my-model/model-1-file-2.txt",
            "my-model/model-1-subdir",
            "my-model/model-1-subdir/model-1-file-3.txt",
        ],
        "my-model-alt/model-1-part-1.txt": ["my-model-alt", "my-model-alt/model-1-part-1.txt"],
        "model-1-part-2.txt": ["model-1-part-2.txt"],
    }
    assert layer_members(store, results[1]) == {
        "my-model/model-2-dir-1": [
            "my-model",
            "my-model/model-2-dir-1",
            "my-model/model-2-dir-1/model-2-subdir-part-1.txt",
            "my-model/model-2-dir-1/model-2-subdir-part-2.txt",
        ],
        "my-model-alt/model-2-part-1.txt": ["my-model-alt", "my-model-alt/model-2-part-1.txt"],
        "model-2-part-3.txt": ["model-2-part-3.txt"],
    }
    assert layer_members(store, results[2]) == {
        "my-model/model-2-dir-1/model-3-part-1.txt": [
            "my-model",
            "my-model/model-2-dir-1",
            "my-model/model-2-dir-1/model-3-part-1.txt",
        ],
        "my-model/model-3-part-2.txt": ["my-model", "my-model/model-3-part-2.txt"],
        "my-model-alt/model-3-part-1.txt": ["my-model-alt", "my-model-alt/model-3-part-1.txt"],
        "model-3-part-4.txt": ["model-3-part-4.txt"],
    }
    # No model layer for a reference model; the config is the child's own Kitfile (not the merged chain).
    assert results[2].kitfile.model is not None
    assert results[2].kitfile.model.path == "test-ref:model-2"
    assert results[2].kitfile.model.digest == ""
    assert [p.name for p in results[2].kitfile.model.parts] == [
        "model-3-part-1",
        "model-3-part-2",
        "model-3-part-3",
        "model-3-part-4",
    ]


def _pack_chain(tmp_path: Path, store: LocalStore, length: int) -> None:
    """test_reference-long-chain's shape: model-1 a file, model-2..model-<length> each referencing the previous."""
    pack_kit(
        store,
        tmp_path / "kit-1",
        "manifestVersion: 1.0.0\nmodel:\n  path: file-1.txt\n",
        {"file-1.txt": "testing: file-1.txt"},
        "test-ref:model-1",
    )
    for n in range(2, length + 1):
        pack_kit(
            store,
            tmp_path / f"kit-{n}",
            f"manifestVersion: 1.0.0\nmodel:\n  path: test-ref:model-{n - 1}\n",
            {},
            f"test-ref:model-{n}",
        )


def test_long_chain_error_names_the_whole_chain(tmp_path: Path, store: LocalStore) -> None:
    _pack_chain(tmp_path, store, 11)
    context = tmp_path / "kit-12"
    write_file(context / "Kitfile", b"manifestVersion: 1.0.0\nmodel:\n  path: test-ref:model-11\n")
    with pytest.raises(KitfileError) as caught:
        pymodelkit.pack(context, tag="test-ref:model-12", store=store)
    chain = "=>".join(f"test-ref:model-{n}" for n in range(12, 0, -1))
    assert str(caught.value) == f"reached maximum number of model references: [{chain}]"


def test_loop_error_names_the_cycle(tmp_path: Path, store: LocalStore) -> None:
    _pack_chain(tmp_path, store, 3)
    context = tmp_path / "again"
    write_file(context / "Kitfile", b"manifestVersion: 1.0.0\nmodel:\n  path: test-ref:model-3\n")
    with pytest.raises(KitfileError) as caught:
        pymodelkit.pack(context, tag="test-ref:model-1", store=store)
    assert str(caught.value) == (
        "Found cycle in modelkit references: [test-ref:model-1=>test-ref:model-3=>test-ref:model-2=>test-ref:model-1]"
    )


def _store_with_loop(tmp_path: Path, store: LocalStore) -> None:
    """A store where ``loop:a`` → ``loop:b`` → ``loop:a``: pack refuses to make one, but a retag can."""
    pack_kit(store, tmp_path / "a", "manifestVersion: 1.0.0\nmodel:\n  path: w.bin\n", {"w.bin": "w"}, "loop:a")
    pack_kit(store, tmp_path / "b", "manifestVersion: 1.0.0\nmodel:\n  path: loop:a\n", {}, "loop:b")
    pack_kit(store, tmp_path / "a2", "manifestVersion: 1.0.0\nmodel:\n  path: loop:b\n", {}, "loop:a2")
    pymodelkit.tag("loop:a2", "loop:a", store=store)


def test_pack_cycle_not_through_the_packed_tag_names_only_the_cycle(tmp_path: Path, store: LocalStore) -> None:
    """kit prints the cycle from its first repeated link: the ModelKit being packed is not part of it."""
    _store_with_loop(tmp_path, store)
    context = tmp_path / "child"
    write_file(context / "Kitfile", b"manifestVersion: 1.0.0\nmodel:\n  path: loop:a\n")
    with pytest.raises(KitfileError) as caught:
        pymodelkit.pack(context, tag="child:1", store=store)
    assert str(caught.value) == "Found cycle in modelkit references: [loop:a=>loop:b=>loop:a]"


def test_unpack_cycle_is_refused_before_writing(tmp_path: Path, store: LocalStore) -> None:
    """Unpack follows parents with kit's lowercase message, naming references in full (registry included)."""
    _store_with_loop(tmp_path, store)
    target = tmp_path / "out"
    with pytest.raises(KitfileError) as caught:
        pymodelkit.unpack("loop:b", target, store=store)
    assert str(caught.value) == (
        "found cycle in modelkit references: [localhost/loop:a=>localhost/loop:b=>localhost/loop:a]"
    )
    assert not target.exists()


def test_unpack_follows_ten_parents_and_refuses_eleven(tmp_path: Path, store: LocalStore) -> None:
    _pack_chain(tmp_path, store, 11)
    out = pymodelkit.unpack("test-ref:model-11", tmp_path / "out-11", store=store)
    assert [p.relative_to(tmp_path / "out-11").as_posix() for p in out.files] == ["file-1.txt"]
    # A twelfth ModelKit cannot be packed on top of the chain; put one there directly, as a registry could hold it.
    _, manifest = store.read_manifest(parse_reference("test-ref:model-11")[0])
    config = store.read_blob(manifest.config.digest).replace(b"test-ref:model-10", b"test-ref:model-11")
    config_digest = store.write_blob(config)
    twelfth = pymodelkit.Manifest(
        config=pymodelkit.Descriptor(manifest.config.media_type, config_digest, len(config)),
        layers=manifest.layers,
        annotations=manifest.annotations,
    )
    store.add_manifest("localhost/test-ref", twelfth.to_json_bytes(), tags=["model-12"])
    target = tmp_path / "out-12"
    with pytest.raises(KitfileError) as caught:
        pymodelkit.unpack("test-ref:model-12", target, store=store)
    chain = "=>".join(f"localhost/test-ref:model-{n}" for n in range(11, 0, -1))
    assert str(caught.value) == f"reached maximum number of model references: [{chain}]"
    assert not target.exists()


# ----- exclusion by the parent chain ---------------------------------------------------------------------------------

PARENT_KITFILE = """\
manifestVersion: 1.0.0
package:
  name: parent
model:
  name: parent-model
  path: data
  parts:
    - name: tok
      path: tokenizer.json
code:
  - path: tools
"""
CHILD_KITFILE = """\
manifestVersion: 1.0.0
package:
  name: child
model:
  name: child-model
  path: exc:parent
  parts:
    - name: adapter
      path: data/adapter.bin
code:
  - path: .
datasets:
  - name: extra
    path: data/extra
"""
GRANDCHILD_KITFILE = """\
manifestVersion: 1.0.0
model:
  path: exc:child
docs:
  - path: .
"""
SHARED_FILES = {
    "data/a.bin": "a",
    "data/b/c.bin": "c",
    "tokenizer.json": "{}",
    "tools/run.sh": "run",
}
CHILD_FILES = {
    **SHARED_FILES,
    "data/adapter.bin": "adapter",
    "data/extra/x.csv": "x",
    "data-v2/new.bin": "new",
    "database.txt": "db",
    "main.py": "print()",
}


def test_parent_chain_paths_exclude_files_from_the_child(tmp_path: Path, store: LocalStore) -> None:
    parent = pack_kit(store, tmp_path / "parent", PARENT_KITFILE, SHARED_FILES, "exc:parent")
    child = pack_kit(store, tmp_path / "child", CHILD_KITFILE, CHILD_FILES, "exc:child")

    assert set(layer_members(store, parent)) == {"data", "tokenizer.json", "tools"}
    # The parent's model dir, part and code files stay out of the child's "." layer (an excluded directory takes its
    # whole subtree); the child's own layers nested in the parent's model dir are packed (a layer is never excluded by
    # a path that encloses it). Prefix siblings of "data" ("data-v2", "database.txt") are other paths.
    assert layer_members(store, child) == {
        "data/adapter.bin": ["data", "data/adapter.bin"],
        ".": ["data-v2", "data-v2/new.bin", "database.txt", "main.py"],
        "data/extra": ["data", "data/extra", "data/extra/x.csv"],
    }
    assert [layer.media_type for layer in child.manifest.layers or ()] == [
        "application/vnd.kitops.modelkit.modelpart.v1.tar",
        "application/vnd.kitops.modelkit.code.v1.tar",
        "application/vnd.kitops.modelkit.dataset.v1.tar",
    ]

    # Two levels up: the grandparent's paths exclude too, and so do the child's (the whole chain, merged). The child's
    # "." layer excludes nothing (every path is within "."), so the child's loose files are packed again, as in kit.
    grandchild_files = {**CHILD_FILES, "README.md": "readme"}
    grandchild = pack_kit(store, tmp_path / "grandchild", GRANDCHILD_KITFILE, grandchild_files, "exc:grandchild")
    assert layer_members(store, grandchild) == {
        ".": ["README.md", "data-v2", "data-v2/new.bin", "database.txt", "main.py"]
    }


def test_unpack_of_the_child_restores_the_whole_tree(tmp_path: Path, store: LocalStore) -> None:
    pack_kit(store, tmp_path / "parent", PARENT_KITFILE, SHARED_FILES, "exc:parent")
    pack_kit(store, tmp_path / "child", CHILD_KITFILE, CHILD_FILES, "exc:child")
    out = tmp_path / "out"
    result = pymodelkit.unpack("exc:child", out, store=store)
    found = regular_files(out)
    assert found.pop("Kitfile").startswith(b"manifestVersion: 1.0.0\npackage:\n  name: child\n")
    # The parent's code layer ("tools") is not a model layer: it is not unpacked from the parent.
    assert found == {name: content.encode() for name, content in CHILD_FILES.items() if name != "tools/run.sh"}
    # Parents first (model, then parts), then the child's layers in kit's order: model, parts, datasets, code.
    assert [p.relative_to(out).as_posix() for p in result.files] == [
        "data/a.bin",
        "data/b/c.bin",
        "tokenizer.json",
        "data/adapter.bin",
        "data/extra/x.csv",
        "data-v2/new.bin",
        "database.txt",
        "main.py",
    ]


# ----- filters and parents -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # No model component: the parent is skipped entirely.
        (["code"], {"data-v2/new.bin", "database.txt", "main.py"}),
        (["kitfile"], {"Kitfile"}),
        (["datasets:extra"], {"data/extra/x.csv"}),
        # model: the parent's model and part layers, and the child's parts.
        (["model"], {"data/a.bin", "data/b/c.bin", "tokenizer.json", "data/adapter.bin"}),
        # Ids are kept for the parent: "tok" names the parent's part only.
        (["model:tok"], {"tokenizer.json"}),
        (["model:parent-model,adapter"], {"data/a.bin", "data/b/c.bin", "data/adapter.bin"}),
        (["code", "model:tok"], {"tokenizer.json", "data-v2/new.bin", "database.txt", "main.py"}),
        (["kitfile,model:child-model"], {"Kitfile"}),
    ],
    ids=lambda value: ",".join(value) if isinstance(value, list) else None,
)
def test_filters_on_a_child_reach_parents_through_model_only(
    tmp_path: Path, store: LocalStore, filters: list[str], expected: set[str]
) -> None:
    pack_kit(store, tmp_path / "parent", PARENT_KITFILE, SHARED_FILES, "exc:parent")
    pack_kit(store, tmp_path / "child", CHILD_KITFILE, CHILD_FILES, "exc:child")
    out = tmp_path / "out"
    pymodelkit.unpack("exc:child", out, filters=filters, store=store)
    assert set(regular_files(out)) == expected


def test_filters_reach_the_grandparent(tmp_path: Path, store: LocalStore) -> None:
    pack_kit(store, tmp_path / "parent", PARENT_KITFILE, SHARED_FILES, "exc:parent")
    pack_kit(store, tmp_path / "child", CHILD_KITFILE, CHILD_FILES, "exc:child")
    pack_kit(store, tmp_path / "grandchild", GRANDCHILD_KITFILE, {**CHILD_FILES, "README.md": "r"}, "exc:grandchild")
    out = tmp_path / "out"
    pymodelkit.unpack("exc:grandchild", out, filters=["model"], store=store)
    assert set(regular_files(out)) == {"data/a.bin", "data/b/c.bin", "tokenizer.json", "data/adapter.bin"}
    docs_only = tmp_path / "docs"
    pymodelkit.unpack("exc:grandchild", docs_only, filters=["docs"], store=store)
    assert set(regular_files(docs_only)) == {"README.md", "data-v2/new.bin", "database.txt", "main.py"}


# ----- missing parents and the merged chain --------------------------------------------------------------------------


def test_pack_with_a_missing_parent_names_the_reference(tmp_path: Path, store: LocalStore) -> None:
    context = tmp_path / "child"
    write_file(context / "Kitfile", b"manifestVersion: 1.0.0\nmodel:\n  path: test-ref:missing\n")
    with pytest.raises(NotFoundError) as caught:
        pymodelkit.pack(context, tag="test-ref:child", store=store)
    assert str(caught.value) == "Could not find modelkit test-ref:missing"
    assert pymodelkit.list_modelkits(store) == []


def test_pack_with_a_missing_grandparent_names_it(tmp_path: Path, store: LocalStore) -> None:
    pack_kit(store, tmp_path / "gp", "manifestVersion: 1.0.0\nmodel:\n  path: w.bin\n", {"w.bin": "w"}, "test-ref:gp")
    pack_kit(store, tmp_path / "p", "manifestVersion: 1.0.0\nmodel:\n  path: test-ref:gp\n", {}, "test-ref:p")
    pymodelkit.remove("test-ref:gp", store=store)
    context = tmp_path / "child"
    write_file(context / "Kitfile", b"manifestVersion: 1.0.0\nmodel:\n  path: test-ref:p\n")
    with pytest.raises(NotFoundError) as caught:
        pymodelkit.pack(context, tag="test-ref:child", store=store)
    assert str(caught.value) == "Could not find modelkit test-ref:gp"


def test_unpack_with_a_missing_parent_writes_nothing(tmp_path: Path, store: LocalStore) -> None:
    pack_kit(store, tmp_path / "parent", PARENT_KITFILE, SHARED_FILES, "exc:parent")
    pack_kit(store, tmp_path / "child", CHILD_KITFILE, CHILD_FILES, "exc:child")
    pymodelkit.remove("exc:parent", store=store)
    target = tmp_path / "out"
    with pytest.raises(NotFoundError) as caught:
        pymodelkit.unpack("exc:child", target, store=store)
    assert str(caught.value) == "Could not find modelkit exc:parent"
    assert not target.exists()
    # A filter without a model component never looks at the parent, so it still works.
    pymodelkit.unpack("exc:child", target, filters=["code"], store=store)
    assert set(regular_files(target)) == {"data-v2/new.bin", "database.txt", "main.py"}


def test_the_merged_chain_is_validated(tmp_path: Path, store: LocalStore) -> None:
    """kit validates the merged parent chain: a part path declared by a parent and by its own parent is refused."""
    pack_kit(
        store,
        tmp_path / "gp",
        "manifestVersion: 1.0.0\nmodel:\n  path: m\n  parts:\n    - name: gp-a\n      path: a.txt\n",
        {"m/w.bin": "w", "a.txt": "a"},
        "dup:gp",
    )
    parent = pack_kit(
        store,
        tmp_path / "p",
        "manifestVersion: 1.0.0\nmodel:\n  path: dup:gp\n  parts:\n    - name: p-a\n      path: a.txt\n",
        {"a.txt": "a"},
        "dup:p",
    )
    assert list(layer_members(store, parent)) == ["a.txt"]  # a layer path is never excluded by itself
    context = tmp_path / "child"
    write_file(context / "Kitfile", b"manifestVersion: 1.0.0\nmodel:\n  path: dup:p\n")
    with pytest.raises(KitfileError) as caught:
        pymodelkit.pack(context, tag="dup:child", store=store)
    assert str(caught.value) == "invalid Kitfile: modelpart p-a and modelpart gp-a use the same path a.txt"


def test_merge_parent_chain_follows_kit() -> None:
    """kit's mergeKitfiles: first non-empty metadata wins, lists are concatenated nearest first, the model path is
    the last parent's, and model license, format and parameters are dropped."""
    near = load_kitfile(
        "manifestVersion: 1.0.0\npackage:\n  name: near\n  authors: [n1]\nmodel:\n  path: r:far\n  license: MIT\n"
        "  parts:\n    - path: near.bin\ncode:\n  - path: near-code\n"
    )
    far = load_kitfile(
        "manifestVersion: 2.0.0\npackage:\n  name: far\n  description: far desc\n  authors: [f1, f2]\n"
        "model:\n  name: far-model\n  path: weights\n  framework: torch\n  format: gguf\n  parameters: {a: 1}\n"
        "  parts:\n    - path: far.bin\ndatasets:\n  - path: far-data\ndocs:\n  - path: far.md\n"
        "prompts:\n  - path: far.prompt\n"
    )
    merged = merge_parent_chain([near, far])
    assert merged == Kitfile(
        manifest_version="1.0.0",
        package=pymodelkit.Package(name="near", description="far desc", authors=["n1", "f1", "f2"]),
        model=Model(
            name="far-model",
            path="weights",
            framework="torch",
            parts=[ModelPart(path="near.bin"), ModelPart(path="far.bin")],
        ),
        code=[pymodelkit.Code(path="near-code")],
        datasets=[pymodelkit.Dataset(path="far-data")],
        docs=[pymodelkit.Docs(path="far.md")],
    )
    assert sorted(parent_layer_paths([near, far])) == sorted(
        ["near-code", "far-data", "far.md", "weights", "near.bin", "far.bin"]
    )
    assert merge_parent_chain([]) == Kitfile()
