"""The local store: kit's ``$KITOPS_HOME/storage`` OCI layout with per-repo index and tags files (spec §3).

Blobs are written through an ingest writer and committed atomically; index and tags files are replaced
temp-then-rename under an inter-process lock. ``LocalStore`` is the entry point.
"""

from pymodelkit.store.check import FsckReport, GcReport
from pymodelkit.store.ingest import BlobWriter
from pymodelkit.store.layout import repo_file_stem
from pymodelkit.store.localstore import LocalStore, Removal, StoredModelKit

__all__ = ["BlobWriter", "FsckReport", "GcReport", "LocalStore", "Removal", "StoredModelKit", "repo_file_stem"]
