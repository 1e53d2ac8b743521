"""The package version, written into every manifest as ``dev.pymodelkit.version``."""

__version__ = "0.1.0"
