"""``oci:`` / ``oci-archive:`` locations, layout names and blob names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymodelkit.errors import InvalidReferenceError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.reference import Reference
from pymodelkit.ocilayout.layout import (
    LayoutLocation,
    digest_of_blob_name,
    image_name_for,
    image_name_of,
    named_descriptor,
    parse_layout_location,
)

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci:/mnt/usb/layout", LayoutLocation("oci", Path("/mnt/usb/layout"))),
        ("oci:layout:v1", LayoutLocation("oci", Path("layout"), "v1")),
        ("oci-archive:/tmp/churn.tar", LayoutLocation("oci-archive", Path("/tmp/churn.tar"))),
        ("oci-archive:churn.tar:sha256-" + HEX + ".sig",
         LayoutLocation("oci-archive", Path("churn.tar"), "sha256-" + HEX + ".sig")),
        ("oci-archive:churn.tar:reg.io/team/churn:v1", LayoutLocation("oci-archive", Path("churn.tar"),
                                                                    "reg.io/team/churn:v1")),
    ],
)
def test_locations_parse_as_skopeo_splits_them(text: str, expected: LayoutLocation) -> None:
    assert parse_layout_location(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("oci:", "oci location 'oci:' has no path"),
        ("oci-archive:x.tar:", "has an empty name after ':'"),
        ("oci-archive:x.tar:bad name", "invalid name 'bad name' in oci-archive:x.tar:bad name"),
        ("docker://x/y", "not an oci: or oci-archive: location"),
    ],
)
def test_bad_locations_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message.replace(".", r"\.")):
        parse_layout_location(text)


def test_blob_names_map_to_digests_and_nothing_else() -> None:
    assert digest_of_blob_name(f"blobs/sha256/{HEX}") == Digest("sha256", HEX)
    for name in (f"blobs/sha256/{HEX}/x", "blobs/sha256/ABC", f"blobs/md5/{HEX}", f"x/sha256/{HEX}", "index.json"):
        assert digest_of_blob_name(name) is None


def test_index_names_round_trip_for_registry_and_local_modelkits() -> None:
    desc = Descriptor("application/vnd.oci.image.manifest.v1+json", Digest("sha256", HEX), 10, {"a": "b"})
    remote = Reference("reg.io:5000", "team/churn", "v1")
    named = named_descriptor(desc, "v1", image_name_for(remote))
    assert named.annotations == {"a": "b", "io.containerd.image.name": "reg.io:5000/team/churn:v1",
                                 "org.opencontainers.image.ref.name": "v1"}
    assert image_name_of(named) == remote
    local = Reference("localhost", "churn", "v2")
    assert image_name_for(local) == "churn:v2"
    assert image_name_of(named_descriptor(desc, "v2", image_name_for(local))) == local
    assert image_name_of(named_descriptor(desc, "v1", None)) is None  # a bare tag names no repository
    assert image_name_of(named_descriptor(desc, "reg.io/team/churn:v3", None)) == Reference("reg.io", "team/churn",
                                                                                            "v3")
