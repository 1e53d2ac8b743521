"""ModelKitReference and parse_modelkit_tag: kit's grammar (digests, nested namespaces, ports, no tag)."""

from __future__ import annotations

import pytest

from pymodelkit.compat import ModelKitReference
from pymodelkit.compat.kitops.modelkit.utils import parse_modelkit_tag

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("jozu.ml/ns/m:latest", ("jozu.ml", "ns", "m", "latest", None)),
        ("localhost:5000/ns/m:v1", ("localhost:5000", "ns", "m", "v1", None)),
        ("reg.io/a/b/c:v1", ("reg.io", "a/b", "c", "v1", None)),
        ("reg.io/ns/m", ("reg.io", "ns", "m", None, None)),
        (f"reg.io/ns/m@{DIGEST}", ("reg.io", "ns", "m", None, DIGEST)),
        ("reg.io/m:v1", ("reg.io", None, "m", "v1", None)),
        ("ns/m:v1", (None, "ns", "m", "v1", None)),
    ],
)
def test_references_parse_with_kits_grammar(text: str, parts: tuple[str | None, ...]) -> None:
    ref = ModelKitReference(text)
    assert (ref.registry, ref.namespace, ref.repository, ref.tag, ref.digest) == parts


def test_modelkit_tag_puts_the_parts_back_together() -> None:
    assert ModelKitReference("jozu.ml/ns/m:latest").modelkit_tag == "jozu.ml/ns/m:latest"
    assert ModelKitReference("reg.io/a/b/c").modelkit_tag == "reg.io/a/b/c"
    assert ModelKitReference(f"reg.io/ns/m@{DIGEST}").modelkit_tag == f"reg.io/ns/m@{DIGEST}"
    ref = ModelKitReference()
    ref.registry, ref.namespace, ref.repository, ref.tag = "r.io", "team", "model", "v2"
    assert ref.modelkit_tag == "r.io/team/model:v2"


def test_an_incomplete_reference_has_no_modelkit_tag() -> None:
    ref = ModelKitReference()
    assert (ref.registry, ref.namespace, ref.repository, ref.tag) == (None, None, None, None)
    with pytest.raises(ValueError) as info:
        _ = ref.modelkit_tag
    assert str(info.value).startswith("incomplete ModelKit reference: a registry and a repository are required")


@pytest.mark.parametrize("text", ["", "Reg.io/NS/M:v1", "reg.io/ns/m:bad tag", "reg.io/ns/m@sha256:abc", "a:v1,v2"])
def test_invalid_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        ModelKitReference(text)
    assert str(info.value).startswith(f"invalid ModelKit tag {text!r}")


def test_parts_must_be_strings_or_none() -> None:
    ref = ModelKitReference("jozu.ml/ns/m:v1")
    with pytest.raises(ValueError) as info:
        ref.tag = 1  # type: ignore[assignment]
    assert str(info.value) == "tag must be a string or None, not int"
    ref.tag = None
    assert ref.modelkit_tag == "jozu.ml/ns/m"


def test_parse_modelkit_tag_keeps_pykitops_keys() -> None:
    assert parse_modelkit_tag("jozu.ml/jozu-demos/titanic-survivability:latest") == {
        "registry": "jozu.ml",
        "namespace": "jozu-demos",
        "model": "titanic-survivability",
        "repository": "titanic-survivability",
        "tag": "latest",
        "digest": None,
    }
