"""pymodelkit: KitOps ModelKits in pure Python."""

from pymodelkit._version import __version__

__all__ = ["__version__"]
