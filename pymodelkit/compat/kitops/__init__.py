"""pykitops' package layout (``kitops``), for code that only changes its imports: ``kitops.cli.kit`` is
``pymodelkit.compat.kitops.cli.kit``, ``kitops.modelkit.manager`` is ``pymodelkit.compat.kitops.modelkit.manager``…

Unlike pykitops 1.5 (quirk 1), ``__all__`` lists names that exist, so ``from … import *`` works.
"""

from __future__ import annotations

from pymodelkit.compat.kitops import cli, modelkit

__version__ = "1.5.0"  # the pykitops version whose API this mirrors

__all__ = ["__version__", "cli", "modelkit"]
