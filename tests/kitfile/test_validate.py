"""Kitfile validation as current kit's KitFile.Validate (spec kitops-modelkit.md §1.3, §1.5, trap 15), checked
against kit's own validation test data (tests/data/kitfile/validation, see README.md there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pymodelkit.errors import KitfileError
from pymodelkit.kitfile import (
    Code,
    Dataset,
    Docs,
    Kitfile,
    McpServer,
    Model,
    ModelPart,
    Prompt,
    classify_path,
    is_modelkit_reference,
    load_kitfile,
    validate_kitfile,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "kitfile" / "validation"
DIGEST = "sha256:" + "ab" * 32

# Upstream expectations that current kit no longer meets (see tests/data/kitfile/README.md).
_STALE = {
    # From an iteration of #1085 whose breaking variant was dropped: current kit only warns.
    "bad-manifest-version.yaml": None,
    # Older wording; current kit also accepts ModelKit references as remote dataset paths.
    "remote-dataset-must-use-s3.yaml": r"only S3 URLs and ModelKit references are supported for remote dataset paths "
    r"\(mybucket\.s3\.us-east-2\.amazonaws\.com\)",
}


def _problems(kitfile: Kitfile) -> list[str]:
    with pytest.raises(KitfileError) as info:
        validate_kitfile(kitfile)
    problems = list(info.value.problems)
    if kitfile.source:  # read from a file: located (tests/kitfile/test_validate_located.py pins the form)
        assert str(info.value).startswith(f"{kitfile.source}:") and "\n" not in str(info.value)
        assert all(problem in str(info.value) for problem in problems)
    else:
        assert str(info.value) == "invalid Kitfile: " + "; ".join(problems)
    return problems


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir()))
def test_upstream_validation_cases(name: str) -> None:
    case = yaml.safe_load((DATA / name).read_text())
    kitfile = load_kitfile(case["kitfile"])
    pattern = _STALE.get(name, case.get("errRegexp") or "")
    if name == "bad-manifest-version.yaml":
        assert validate_kitfile(kitfile) == ["Unrecognized manifestVersion v99.99.99: treating Kitfile as 1.0.0"]
    elif not pattern:
        assert validate_kitfile(kitfile) == []
    else:
        problems = _problems(kitfile)
        assert any(re.search(pattern, problem) for problem in problems), problems


def test_manifest_version_other_than_1_0_0_only_warns() -> None:
    assert validate_kitfile(Kitfile(manifest_version="1.0.0")) == []
    assert validate_kitfile(Kitfile()) == ["Unrecognized manifestVersion : treating Kitfile as 1.0.0"]
    assert validate_kitfile(Kitfile(manifest_version="1.0")) == [
        "Unrecognized manifestVersion 1.0: treating Kitfile as 1.0.0"
    ]


def test_problems_are_sorted_and_joined_on_one_line() -> None:
    kitfile = Kitfile(
        manifest_version="2",
        model=Model(name="m", path="https://example.com/m"),
        code=[Code(path="/abs")],
        mcp_servers=[McpServer(path="x.zip")],
    )
    with pytest.raises(KitfileError) as info:
        validate_kitfile(kitfile)
    assert info.value.problems == [
        "absolute paths are not supported in a Kitfile (path /abs in code layer 0)",
        "invalid path for mcpServer (x.zip): path must point to a single .mcpb file",
        "invalid path for model: HTTP urls are not supported in paths (https://example.com/m)",
        "invalid path for model: only local paths and ModelKit references are permitted",
        "mcpServer with path x.zip must have a name",
    ]
    assert str(info.value) == "invalid Kitfile: " + "; ".join(info.value.problems)
    assert "\n" not in str(info.value)
    warnings = getattr(info.value, "warnings")  # noqa: B009 (set by validate_kitfile, not declared on KitfileError)
    assert warnings == ["Unrecognized manifestVersion 2: treating Kitfile as 1.0.0"]


def test_duplicate_paths_are_compared_cleaned_and_list_every_user() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        model=Model(name="m", path="./data/"),
        code=[Code(path="data")],
        datasets=[Dataset(path="x/../data")],
        docs=[Docs(path=""), Docs(path=".")],
    )
    assert _problems(kitfile) == [
        "docs layer 0 and docs layer 1 use the same path .",
        "model m, code layer 0 and dataset layer 0 use the same path data",
    ]


def test_duplicate_labels_follow_kit_order() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        model=Model(path="p", parts=[ModelPart(name="a", path="p")]),
        code=[Code(path="p")],
        datasets=[Dataset(path="p")],
        docs=[Docs(path="p")],
        prompts=[Prompt(path="p")],
        mcp_servers=[McpServer(name="s", path="p.mcpb"), McpServer(name="t", path="p.mcpb")],
    )
    assert _problems(kitfile) == [
        "mcpServer layer 0 and mcpServer layer 1 use the same path p.mcpb",
        "model, modelpart a, code layer 0, dataset layer 0, docs layer 0 and prompt layer 0 use the same path p",
    ]


def test_paths_outside_the_context_are_rejected_after_cleaning() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        code=[Code(path="src/../lib"), Code(path="a/../../b"), Code(path="..")],
    )
    assert _problems(kitfile) == [
        "paths outside the context directory are not supported in a Kitfile (path .. in code layer 2)",
        "paths outside the context directory are not supported in a Kitfile (path ../b in code layer 1)",
    ]


def test_model_part_type_rules() -> None:
    ok = Kitfile(manifest_version="1.0.0", model=Model(path="m", parts=[ModelPart(path="p", type="a" * 64)]))
    assert validate_kitfile(ok) == []
    for good in ("lora", "_x", "a.b-c_d", "9"):
        model = Model(path="m", parts=[ModelPart(path="p", type=good)])
        assert validate_kitfile(Kitfile(manifest_version="1.0.0", model=model)) == []
    kitfile = Kitfile(
        manifest_version="1.0.0",
        model=Model(path="m", parts=[ModelPart(name="a", path="a", type="b" * 65),
                                     ModelPart(name="b", path="b", type="-x"),
                                     ModelPart(name="c", path="c", type="x\n"),
                                     ModelPart(name="d", path="d", type="é")]),
    )  # fmt: skip
    assert _problems(kitfile) == [
        "modelpart a type is too long (must be fewer than 64 characters)",
        "modelpart b has invalid type (must be alphanumeric with dots, dashes, and underscores)",
        "modelpart c has invalid type (must be alphanumeric with dots, dashes, and underscores)",
        "modelpart d has invalid type (must be alphanumeric with dots, dashes, and underscores)",
    ]


def test_remote_dataset_rules() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        datasets=[
            Dataset(path="a", remote_path="s3://bucket/key"),
            Dataset(path="b", remote_hash="h"),
            Dataset(path="c", remote_path="ftp://host/x", remote_hash="h"),
            Dataset(path="d", remote_path="https://host/x", remote_hash="h"),
            Dataset(path="e", remote_path="s3://bucket/key", remote_hash="h"),
        ],
    )
    assert _problems(kitfile) == [
        "invalid remote path for dataset (ftp://host/x): unrecognized URL in path: ftp://host/x",
        "invalid remote path for dataset (https://host/x): HTTP urls are not supported in paths (https://host/x)",
        "only S3 URLs and ModelKit references are supported for remote dataset paths (ftp://host/x)",
        "only S3 URLs and ModelKit references are supported for remote dataset paths (https://host/x)",
        "remote hash is only applicable when remotePath is set",
        "remoteHash is required when remote dataset paths are used (s3://bucket/key)",
    ]


def test_modelkit_remote_dataset_ignores_its_hash_with_a_warning() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        datasets=[Dataset(path="data/train", remote_path=f"registry.io/org/data@{DIGEST}", remote_hash="h")],
        code=[Code(path="data/train-eval")],
    )
    assert validate_kitfile(kitfile) == ["remoteHash is ignored for ModelKit references in datasets (data/train)"]


def test_nothing_may_lie_inside_a_modelkit_remote_dataset() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        model=Model(path="data/m.bin"),
        datasets=[Dataset(path="./data/", remote_path="repo:tag"), Dataset(path="data/x/y"), Dataset(path="other")],
        docs=[Docs(path="/data/abs")],
    )
    assert _problems(kitfile) == [
        "absolute paths are not supported in a Kitfile (path /data/abs in docs layer 0)",
        "dataset layer 1 uses a path (data/x/y) that is within the path for a remote dataset",
        "error calculating relative path for remote dataset: Rel: can't make /data/abs relative to data",
        "model uses a path (data/m.bin) that is within the path for a remote dataset",
    ]


def test_remote_dataset_with_empty_path_holds_everything() -> None:
    kitfile = Kitfile(manifest_version="1.0.0", datasets=[Dataset(remote_path="repo:tag")], code=[Code(path="src")])
    assert _problems(kitfile) == ["code layer 0 uses a path (src) that is within the path for a remote dataset"]


def test_local_only_sections_refuse_references_and_urls() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        prompts=[Prompt(path="C:\\prompts")],
        mcp_servers=[McpServer(name="a", path="repo:tag.mcpb")],
        docs=[Docs(path="s3://b/docs")],
    )
    assert _problems(kitfile) == [
        "invalid path for doc (s3://b/docs): only local paths are permitted",
        "invalid path for mcpServer (repo:tag.mcpb): only local paths are permitted",
        "invalid path for prompt (C:\\prompts): only local paths are permitted",
        "invalid path for prompt (C:\\prompts): unrecognized URL in path: C:\\prompts",
    ]


def test_model_path_may_be_a_modelkit_reference() -> None:
    for path in ("test-ref:model-1", "ghcr.io/org/m:v1", f"repo@{DIGEST}", "models/v1:2"):
        assert validate_kitfile(Kitfile(manifest_version="1.0.0", model=Model(path=path))) == []


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("data/train", "local"),
        ("", "local"),
        (".", "local"),
        ("/abs/path", "local"),
        ("../up", "local"),
        ("docker.io/kit-org/kit-repo:latest", "modelkit"),
        ("test-ref:model-1", "modelkit"),
        ("models/v1:2", "modelkit"),
        (f"repo@{DIGEST}", "modelkit"),
        (DIGEST, "modelkit"),
        ("localhost:5000/repo", "modelkit"),
        ("s3://bucket/key", "s3"),
        ("S3://bucket/key", "s3"),
        ("http://example.com", "http"),
        ("https://example.com/x", "http"),
        ("ftp://example.com/x", "unknown"),
        ("C:\\data", "unknown"),
        ("mailto:me", "modelkit"),  # repository "mailto", tag "me"
        ("foo:bar baz", "unknown"),
        ("//host/share", "unknown"),
        ("UPPER:tag", "unknown"),
        (":foo", "local"),
        ("a b:c", "local"),
        ("%zz", "local"),
        ("http://exa mple.com", "local"),
        ("http://host:port/x", "local"),
        ("http://[::1/x", "local"),
        ("s3://a\x00b", "local"),
        ("http://user name@host/x", "local"),
        ("http://h/%4", "local"),
        ("http://host/x#%zz", "local"),
        ("http://h%41/", "local"),
        ("http://h%C3%A9/", "http"),
        ("http://[::1]:80/x", "http"),
        ("https://user:pw@host:443/x?q=%zz", "http"),
        ("*", "local"),
    ],
)
def test_classify_path(path: str, kind: str) -> None:
    assert classify_path(path) == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("test-ref:model-1", True),
        ("models/v1:2", True),
        (f"localhost:5000/repo@{DIGEST}", True),
        (f"localhost/_@{DIGEST}", False),  # "_" is not a valid repository component
        ("plain/path", False),
        ("UPPER:tag", False),
        ("repo@sha256:short", False),
        ("", False),
    ],
)
def test_is_modelkit_reference(text: str, expected: bool) -> None:
    assert is_modelkit_reference(text) is expected
