"""OCI values: digests, descriptors, manifests, media types and references. No HTTP, no filesystem."""

from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest, compute_file_digest, is_digest
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import LayerMediaType
from pymodelkit.oci.reference import Reference, parse_reference

__all__ = [
    "Descriptor",
    "Digest",
    "LayerMediaType",
    "Manifest",
    "Reference",
    "compute_file_digest",
    "is_digest",
    "parse_reference",
]
