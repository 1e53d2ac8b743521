"""pykitops' ``kitops.cli.kit`` functions, each one call of the pymodelkit library instead of a ``kit`` subprocess.

Names, parameters, defaults and return types are pykitops' (spec ``pykitops-api.md`` §3). Where pykitops returns
``kit``'s standard output parsed (``info``: YAML, ``inspect``: JSON) or as text (``list``, ``version``), the value is
built from the same library result the ``pymodelkit`` CLI prints, so it is what kit would have printed. A failure
raises :class:`KitCommandError`, a ``subprocess.CalledProcessError`` (so existing ``except`` clauses still match)
whose ``str()`` carries the error message, with the pymodelkit error in ``.error`` and as ``__cause__``. Each call
logs the kit command it stands for at INFO (``% kit push …``; never a password). ``**kwargs`` are kit's flags
(:mod:`pymodelkit.compat._flags`). The module's ``list`` shadows the builtin, as in pykitops.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import platform
import re
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pymodelkit._atomic import write_atomic
from pymodelkit._version import __version__
from pymodelkit.catalog import format_list_table, list_modelkits
from pymodelkit.catalog import info as _local_info
from pymodelkit.catalog import inspect as _local_inspect
from pymodelkit.catalog import remove as _local_remove
from pymodelkit.catalog import tag as _local_tag
from pymodelkit.compat._flags import map_kwargs
from pymodelkit.compat.kitfile import Kitfile
from pymodelkit.errors import KitfileError, ModelKitError
from pymodelkit.kitfile import dump_kitfile
from pymodelkit.kitfile.generate import generate_kitfile
from pymodelkit.oci.reference import parse_reference
from pymodelkit.pack.pipeline import pack as _pack
from pymodelkit.registry.login import login as _login
from pymodelkit.registry.login import logout as _logout
from pymodelkit.registry.remote import info_remote, inspect_remote, list_remote, remove_remote
from pymodelkit.registry.tls import TlsOptions, current_tls_options, use_tls_options
from pymodelkit.registry.transfer import pull as _pull
from pymodelkit.registry.transfer import push as _push
from pymodelkit.unpack.unpacker import unpack as _unpack

__all__ = [
    "KitCommandError",
    "import_from_hf",
    "info",
    "init",
    "inspect",
    "list",
    "login",
    "logout",
    "pack",
    "pull",
    "push",
    "remove",
    "tag",
    "unpack",
    "version",
]

logger = logging.getLogger(__name__)

_INFO_FILTER_RE = re.compile(r"\.?[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*")


class KitCommandError(subprocess.CalledProcessError):
    """A compat call that failed, as pykitops reports a failed ``kit`` run: ``returncode`` 1 (kit's exit status
    for every error), ``cmd`` the kit argv it stands for, ``stdout`` empty, ``stderr`` the message; ``error`` the
    pymodelkit exception."""

    def __init__(self, cmd: Sequence[str], error: BaseException) -> None:
        super().__init__(1, builtins.list(cmd), output="", stderr=str(error))
        self.error = error

    def __str__(self) -> str:
        return f"Command {shlex.join(self.cmd)!r} returned non-zero exit status {self.returncode}: {self.stderr}"


@contextlib.contextmanager
def _running(argv: Sequence[str], tls: TlsOptions | None = None) -> Iterator[None]:
    logger.info("%% %s", shlex.join(argv))
    try:
        with contextlib.ExitStack() as scope:
            if tls is not None:  # the client certificate of cert=/key= (or the environment), for every client
                scope.enter_context(use_tls_options(_with_client_cert(current_tls_options(), tls)))
            yield
    except ModelKitError as exc:
        raise KitCommandError(argv, exc) from exc


def _with_client_cert(current: TlsOptions, tls: TlsOptions) -> TlsOptions:
    """The enclosing block's options (its CA files, named as it names them) with the client certificate ``tls``
    chose from ``cert=``/``key=`` and the variables: its files, the names of where they came from
    (``KITOPS_CLIENT_CERT``, …), and its ``environment`` (``False``: the variables are applied already, not read
    again). When ``tls`` chose no certificate, the block's own, if it has one, stands."""
    if tls.client_cert is None and current.client_cert is not None:
        return current
    return replace(current, client_cert=tls.client_cert, environment=tls.environment,
                   names=(current.names[0], *tls.names[1:]))


def _given(text: str) -> str:
    """pykitops passes ``" "`` for an unset description or author: whitespace-only means not given (quirk 22)."""
    return "" if not text.strip() else text


def init(directory: str | os.PathLike[str], name: str, description: str = " ", author: str = " ",
         **kwargs: Any) -> Kitfile:
    """``kit init``: generate ``<directory>/Kitfile`` from the directory's contents (MLflow-aware) and return it.

    kwargs: ``force``/``f`` overwrites an existing Kitfile (otherwise that is an error).
    """
    options = map_kwargs("init", kwargs)
    folder = Path(directory)
    argv = ["kit", "init", os.fspath(directory), "--name", name, "--desc", description, "--author", author,
            *options.argv()]
    target = folder / "Kitfile"
    with _running(argv):
        if not options.flag("force") and os.path.lexists(target):
            raise KitfileError(f"Kitfile already exists at {target}; use force=True to overwrite", path=str(target))
        generated = generate_kitfile(folder, name=_given(name), description=_given(description),
                                     author=_given(author))
        write_atomic(target, dump_kitfile(generated).encode("utf-8"), mode=0o644)
    return Kitfile.from_kitfile(generated)


def pack(repo_path_with_tag: str, working_directory: str | os.PathLike[str] = ".", **kwargs: Any) -> None:
    """``kit pack``: pack ``working_directory`` (its Kitfile) into the local store as ``repo_path_with_tag``.

    kwargs: ``file``/``f`` (a Kitfile path), ``compression`` (``none``, ``gzip``, ``gzip-fastest``, ``zstd``).
    """
    options = map_kwargs("pack", kwargs)
    argv = ["kit", "pack", os.fspath(working_directory), "--tag", repo_path_with_tag, *options.argv()]
    with _running(argv):
        _pack(working_directory, kitfile=options.value("file"), tag=repo_path_with_tag,
              compression=options.value("compression") or "none", store=options.store())


def push(repo_path_with_tag: str, **kwargs: Any) -> None:
    """``kit push``: push a ModelKit from the local store to its registry (credentials from ``login``)."""
    options = map_kwargs("push", kwargs)
    with _running(["kit", "push", repo_path_with_tag, *options.argv()], options.tls):
        _push(repo_path_with_tag, store=options.store(), credentials=options.credentials(),
              plain_http=options.plain_http, tls_verify=options.tls_verify, concurrency=options.concurrency)


def pull(repo_path_with_tag: str, **kwargs: Any) -> None:
    """``kit pull``: pull a ModelKit (and its parents) from its registry into the local store."""
    options = map_kwargs("pull", kwargs)
    with _running(["kit", "pull", repo_path_with_tag, *options.argv()], options.tls):
        _pull(repo_path_with_tag, store=options.store(), credentials=options.credentials(),
              plain_http=options.plain_http, tls_verify=options.tls_verify, concurrency=options.concurrency)


def unpack(repo_path_with_tag: str, dir: str | os.PathLike[str], filters: Sequence[str] | None = None,
           **kwargs: Any) -> None:
    """``kit unpack``: write a ModelKit's files into ``dir`` (from the local store, else read from the registry).

    ``filters`` are kit's (``model``, ``datasets:train``, ``kitfile,docs``…). kwargs: ``overwrite``/``o``.
    """
    options = map_kwargs("unpack", kwargs)
    argv = ["kit", "unpack", "--dir", os.fspath(dir), repo_path_with_tag]
    for item in filters or ():
        argv += ["--filter", item]
    with _running([*argv, *options.argv()], options.tls):
        _unpack(repo_path_with_tag, dir, filters=builtins.list(filters or ()), overwrite=options.flag("overwrite"),
                store=options.store(), credentials=options.credentials(), plain_http=options.plain_http,
                tls_verify=options.tls_verify)


def login(user: str, passwd: str, registry: str | None = "jozu.ml", **kwargs: Any) -> None:
    """``kit login``: check the credential against ``registry`` and save it in kit's credentials file.

    Raises:
        ValueError: ``registry`` is ``None`` (pykitops: ``TypeError``). KitCommandError: the login failed.
    """
    if registry is None:
        raise ValueError("kit login needs a registry (host[:port])")
    options = map_kwargs("login", kwargs)
    argv = ["kit", "login", registry, "--username", user, "--password-stdin", *options.argv()]
    with _running(argv, options.tls):
        _login(registry, user, passwd, home=options.home, plain_http=options.plain_http,
               tls_verify=options.tls_verify)


def logout(registry: str = "jozu.ml", **kwargs: Any) -> None:
    """``kit logout``: forget the credential saved for ``registry`` (nothing happens if there is none)."""
    options = map_kwargs("logout", kwargs)
    with _running(["kit", "logout", registry, *options.argv()]):
        _logout(registry, home=options.home)


def list(repo_path_without_tag: str | None = None, **kwargs: Any) -> str:
    """``kit list``: the table of ModelKits in the local store, or of a registry repository's tags (stripped).

    As with kit, ``repo_path_without_tag`` may name a tag or digest after all (``repo:tag``, ``repo@digest``): the
    table then has that one only (``catalog.list_modelkits``, ``registry.remote.list_remote``)."""
    options = map_kwargs("list", kwargs)
    argv = ["kit", "list", *([repo_path_without_tag] if repo_path_without_tag else []), *options.argv()]
    with _running(argv, options.tls):
        if repo_path_without_tag and not parse_reference(repo_path_without_tag)[0].is_local:
            rows = list_remote(repo_path_without_tag, credentials=options.credentials(),
                               plain_http=options.plain_http, tls_verify=options.tls_verify)
        else:
            rows = list_modelkits(options.store(), repo_path_without_tag)
    return format_list_table(rows).strip()


def inspect(repo_path_with_tag: str, remote: bool = False, **kwargs: Any) -> dict[str, Any]:
    """``kit inspect``: the ModelKit's ``digest``, ``cliVersion``, ``kitfile`` (config) and ``manifest``."""
    options = map_kwargs("inspect", kwargs)
    remote = remote or options.flag("remote")
    argv = ["kit", "inspect", repo_path_with_tag, *(["--remote"] if remote else []), *options.argv()]
    with _running(argv, options.tls):
        if remote:
            text = inspect_remote(repo_path_with_tag, credentials=options.credentials(),
                                  plain_http=options.plain_http, tls_verify=options.tls_verify)
        else:
            text = _local_inspect(repo_path_with_tag, options.store())
    document: dict[str, Any] = json.loads(text)
    return document


def info(repo_path_with_tag: str, filters: Sequence[str] | None = None, remote: bool = False,
         **kwargs: Any) -> Any:
    """``kit info``: the ModelKit's Kitfile as a dict (kit's YAML, parsed as pykitops parses it).

    A filter (``.package.name``, ``model.parts``; the last one wins, as with kit's single ``--filter``) returns that
    field's value instead; keys match case-insensitively (kit wants Go field names such as ``.dataSets``); a field
    that is not set gives ``None``.
    """
    options = map_kwargs("info", kwargs)
    remote = remote or options.flag("remote")
    argv = ["kit", "info", repo_path_with_tag]
    for item in filters or ():
        argv += ["--filter", item]
    argv += [*(["--remote"] if remote else []), *options.argv()]
    with _running(argv, options.tls):
        if filters and not _INFO_FILTER_RE.fullmatch(filters[-1]):
            raise ModelKitError(f"invalid filter {filters[-1]!r}: use a field path such as .package.name")
        if remote:
            kitfile = info_remote(repo_path_with_tag, credentials=options.credentials(),
                                  plain_http=options.plain_http, tls_verify=options.tls_verify)
        else:
            kitfile = _local_info(repo_path_with_tag, options.store())
    value: Any = yaml.safe_load(dump_kitfile(kitfile))
    if filters:
        for segment in filters[-1].lstrip(".").split("."):
            keys = {str(key).lower(): key for key in value} if isinstance(value, dict) else {}
            if segment.lower() not in keys:
                return None
            value = value[keys[segment.lower()]]
    return value


def remove(repo_path_with_tag: str, remote: bool = False, **kwargs: Any) -> None:
    """``kit remove``: remove a ModelKit or tag from the local store, or (``remote``) from its registry.

    kwargs: ``force``/``f`` (remove the manifest even if other tags point at it; remote: delete by digest),
    ``all``/``a`` (every untagged ModelKit of the local store, with ``force`` everything; the reference is ignored).
    """
    options = map_kwargs("remove", kwargs)
    remote = remote or options.flag("remote")
    argv = ["kit", "remove", repo_path_with_tag, *(["--remote"] if remote else []), *options.argv()]
    force = options.flag("force")
    with _running(argv, options.tls):
        if remote:
            remove_remote(repo_path_with_tag, force=force, credentials=options.credentials(),
                          plain_http=options.plain_http, tls_verify=options.tls_verify)
        elif options.flag("all"):
            options.store().remove_all(force=force)
        else:
            _local_remove(repo_path_with_tag, force=force, store=options.store())


def tag(repo_path_with_tag: str, repo_path_with_new_tag: str, **kwargs: Any) -> None:
    """``kit tag``: give a ModelKit of the local store another name."""
    options = map_kwargs("tag", kwargs)
    with _running(["kit", "tag", repo_path_with_tag, repo_path_with_new_tag, *options.argv()]):
        _local_tag(repo_path_with_tag, repo_path_with_new_tag, options.store())


def version(**kwargs: Any) -> str:
    """``kit version``: the version text (pymodelkit's, in kit's layout)."""
    map_kwargs("version", kwargs)
    return f"Version: {__version__} (pymodelkit)\nPython: {platform.python_version()}"


def import_from_hf(repo_path_without_tag: str, **kwargs: Any) -> None:
    """``kit import``: not available yet in pymodelkit (Hugging Face import is not implemented).

    Raises:
        NotImplementedError: always.
    """
    map_kwargs("import", kwargs)
    raise NotImplementedError("kit import (from Hugging Face) is not implemented in pymodelkit yet")
