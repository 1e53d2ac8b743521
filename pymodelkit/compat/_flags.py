"""pykitops' ``**kwargs`` → kit flags table, mapped to pymodelkit keyword arguments (spec ``pykitops-api.md`` §3.1).

pykitops accepts a fixed set of keys per command and drops the rest silently; dashed names have to be passed through
a dict (``**{"plain-http": True}``). Here ``plain_http`` and ``plain-http`` both work (quirk 3), short names are
expanded per command (``f`` is ``force`` for ``init`` and ``remove``, ``file`` for ``pack``), and a key kit would not
receive gives a ``UserWarning`` instead of vanishing (quirk 4). The result is :class:`CommandOptions`: what the
library calls take. ``cert=``/``key=`` are kit's ``--cert``/``--key``, which ``KITOPS_CLIENT_CERT`` and
``KITOPS_CLIENT_KEY`` override when set (``kitops-modelkit.md`` §5.1 and §11, trap 20).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodelkit.errors import ModelKitError
from pymodelkit.registry.credentials import (
    ChainCredentials,
    CredentialSource,
    DockerConfigCredentials,
    KitCredentials,
)
from pymodelkit.registry.tls import TlsOptions, choose_client_cert
from pymodelkit.registry.transfer import DEFAULT_CONCURRENCY
from pymodelkit.store import LocalStore

__all__ = ["CommandOptions", "map_kwargs"]

_NETWORK = frozenset({"plain-http", "tls-verify", "cert", "key", "concurrency", "proxy"})
_GLOBAL = frozenset({"h", "v", "vv", "vvv", "help", "verbose", "config", "log-level", "progress"})
_COMMAND_KEYS: dict[str, frozenset[str]] = {
    "info": _NETWORK | {"remote", "r", "filter"},
    "inspect": _NETWORK | {"remote", "r"},
    "list": _NETWORK,
    "login": _NETWORK,
    "logout": frozenset(),
    "pull": _NETWORK,
    "push": _NETWORK,
    "remove": _NETWORK | {"remote", "r", "all", "a", "force", "f"},
    "unpack": _NETWORK | {"overwrite", "o"},
    "import": frozenset({"tag", "t", "token"}),
    "init": frozenset({"force", "f"}),
    "pack": frozenset({"file", "f", "compression"}),
    "tag": frozenset(),
    "version": frozenset({"show-update-notifications"}),
}
_SHORT: dict[str, dict[str, str]] = {
    "init": {"f": "force"},
    "pack": {"f": "file"},
    "remove": {"f": "force", "a": "all", "r": "remote"},
    "info": {"r": "remote"},
    "inspect": {"r": "remote"},
    "unpack": {"o": "overwrite"},
    "import": {"t": "tag"},
}
# accepted with no effect: explicit proxies (not in pymodelkit yet: a UserWarning says so); verbosity, help, log
# level and progress (the caller's logging configuration decides; silently)
_UNSUPPORTED = frozenset({"proxy"})


@dataclass(frozen=True)
class CommandOptions:
    """The library arguments one compat call uses, from its kwargs."""

    flags: Mapping[str, Any] = field(default_factory=dict)
    plain_http: bool | None = None
    tls_verify: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    home: Path | None = None
    tls: TlsOptions | None = None  # the client certificate (cert=/key= or the environment), or None

    def flag(self, name: str) -> bool:
        """Whether a boolean flag was given a truthy value."""
        return bool(self.flags.get(name))

    def value(self, name: str) -> Any:
        """A value flag's value, or ``None``."""
        return self.flags.get(name)

    def store(self) -> LocalStore:
        """The local store: under ``config=`` (kit's ``--config``) if given, else the default one."""
        return LocalStore(self.home)

    def credentials(self) -> CredentialSource:
        """Where ``kit`` itself finds a login: its credentials file (under ``config=`` if given, where ``login``
        saved it), then Docker's ``config.json``. Not the ``JOZU_*``/``PYMODELKIT_*`` variables: pykitops' recipe
        sets ``JOZU_PASSWORD`` alone (the username is an argument), which the library's environment source refuses
        as half a pair; kit never reads them either."""
        return ChainCredentials([KitCredentials(self.home), DockerConfigCredentials()])

    def argv(self) -> list[str]:
        """The flags as kit would receive them (for logs and error messages)."""
        out: list[str] = []
        for name, value in self.flags.items():
            dashes = "-" if len(name) == 1 or name in ("vv", "vvv") else "--"
            if value is True:
                out.append(f"{dashes}{name}")
            elif value not in (None, False):
                out += [f"{dashes}{name}", str(value)]
        return out


def map_kwargs(command: str, kwargs: Mapping[str, Any]) -> CommandOptions:
    """Normalise ``kwargs`` for ``command`` (``_`` → ``-``, short names expanded); warn about keys kit would drop."""
    allowed = _COMMAND_KEYS[command] | _GLOBAL
    short = _SHORT.get(command, {})
    flags: dict[str, Any] = {}
    for raw, value in kwargs.items():
        name = raw.replace("_", "-")
        if name not in allowed:
            warnings.warn(f"kit {command}: ignoring unknown option {raw!r}", UserWarning, stacklevel=3)
            continue
        name = short.get(name, name)
        if name in _UNSUPPORTED and value:
            warnings.warn(f"kit {command}: option {raw!r} has no effect in pymodelkit", UserWarning, stacklevel=3)
        flags[name] = value
    concurrency = flags.get("concurrency")
    config = flags.get("config")
    return CommandOptions(
        flags=flags,
        plain_http=True if flags.get("plain-http") else None,
        tls_verify=bool(flags["tls-verify"]) if "tls-verify" in flags else True,
        concurrency=int(concurrency) if concurrency else DEFAULT_CONCURRENCY,
        home=Path(config) if config else None,
        tls=_client_tls(command, flags),
    )


def _client_tls(command: str, flags: Mapping[str, Any]) -> TlsOptions | None:
    """kit's client certificate for ``cert=``/``key=``, by the library's one rule (``choose_client_cert``:
    ``KITOPS_CLIENT_CERT``/``KITOPS_CLIENT_KEY`` replace them each on its own). ``None`` when neither is given (the
    library reads the variables itself when the call makes its client). When the rule leaves no certificate, the
    options say so (``environment=False``), so that the library does not apply the rule, and warn, a second time; a key
    alone is ignored with a warning, as kit ignores it."""
    cert, key = flags.get("cert") or None, flags.get("key") or None
    if cert is None and key is None:
        return None
    try:
        choice = choose_client_cert(str(cert) if cert else None, str(key) if key else None,
                                    names=("client certificate", "client key"))
    except ModelKitError:
        return None  # KITOPS_CLIENT_KEY without a certificate: refused by the library inside the call, as without key=
    if choice.unpaired_key is not None:
        warnings.warn(f"kit {command}: option 'key' has no effect without 'cert'", UserWarning, stacklevel=4)
    return TlsOptions(client_cert=choice.files, environment=False, names=("CA certificate", *choice.names))
