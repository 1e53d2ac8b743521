"""OCI image layouts on disk: directories (``oci:``) and tar archives (``oci-archive:``), the copy endpoints over
them and over the local store, and the engine that copies manifests blob by blob (``spec/transport.md``).

``pymodelkit.save``/``load`` (in :mod:`pymodelkit.transports`) and ``pymodelkit.copy`` (in
:mod:`pymodelkit.registry.copy`) are the entry points.
"""

from pymodelkit.ocilayout.archive import ArchiveReader, ArchiveWriter
from pymodelkit.ocilayout.directory import LayoutDirectory
from pymodelkit.ocilayout.endpoint import CopyResult
from pymodelkit.ocilayout.layout import LayoutLocation, parse_layout_location

__all__ = ["ArchiveReader", "ArchiveWriter", "CopyResult", "LayoutDirectory", "LayoutLocation", "parse_layout_location"]
