"""pykitops' ``ModelKitManager``: log in, pack and push, pull and unpack, remove — each step one ``kit.*`` call.

The sequences are pykitops' (spec ``pykitops-api.md`` §6). Fixes (quirks 13, 15–18, 20, and 10): the default working
directory is the current one at construction, not at import; credentials are read only when a login needs them, so
local-only work needs none; an incomplete reference is a ``ValueError`` before anything runs; ``save_kitfile`` writes
``<working_directory>/Kitfile`` (the file that is packed), not ``./Kitfile``; ``remove_modelkit()`` with neither
``local`` nor ``remote`` warns that it removes nothing; there is a ``logout()``; a reference without a registry uses
the credentials' ``registry``. After a failed step the manager still logs out when it logged in.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from pymodelkit.compat import kit
from pymodelkit.compat.kitfile import Kitfile
from pymodelkit.compat.reference import ModelKitReference
from pymodelkit.compat.user import UserCredentials

__all__ = ["ModelKitManager"]


class ModelKitManager:
    """Packs, pushes, pulls and unpacks one ModelKit (``modelkit_tag``) in one ``working_directory``.

    Args:
        working_directory: the folder packed from and unpacked into; created if missing. Default: the current
            directory (when the manager is made).
        user_credentials: the login; default: :class:`UserCredentials` from ``JOZU_*``, read at the first login.
        modelkit_reference: the ModelKit; default: parsed from ``modelkit_tag``.
        modelkit_tag: ``registry/[namespace/]repository[:tag|@digest]``.

    Raises:
        ValueError: ``modelkit_tag`` does not parse.
    """

    def __init__(
        self,
        working_directory: str | os.PathLike[str] | None = None,
        user_credentials: UserCredentials | None = None,
        modelkit_reference: ModelKitReference | None = None,
        modelkit_tag: str | None = None,
    ) -> None:
        self.working_directory = working_directory if working_directory is not None else os.getcwd()
        self._user_credentials = user_credentials
        self.modelkit_reference = modelkit_reference if modelkit_reference is not None else ModelKitReference(
            modelkit_tag
        )
        self._kitfile: Kitfile | None = None

    @property
    def working_directory(self) -> str:
        """The working directory, as a POSIX path string."""
        return self._working_directory

    @working_directory.setter
    def working_directory(self, value: str | os.PathLike[str]) -> None:
        path = Path(value)
        path.mkdir(parents=True, exist_ok=True)
        self._working_directory = path.as_posix()

    @property
    def user_credentials(self) -> UserCredentials:
        """The login; made from the environment on first use when none was given.

        Raises:
            ValueError: no username or password is given or set in ``JOZU_*``.
        """
        if self._user_credentials is None:
            self._user_credentials = UserCredentials()
        return self._user_credentials

    @user_credentials.setter
    def user_credentials(self, value: UserCredentials | None) -> None:
        if value is not None and not isinstance(value, UserCredentials):
            raise TypeError(f"user_credentials must be a UserCredentials, not {type(value).__name__}")
        self._user_credentials = value

    @property
    def modelkit_reference(self) -> ModelKitReference:
        """The ModelKit this manager works on."""
        return self._modelkit_reference

    @modelkit_reference.setter
    def modelkit_reference(self, value: ModelKitReference) -> None:
        if not isinstance(value, ModelKitReference):
            raise TypeError(f"modelkit_reference must be a ModelKitReference, not {type(value).__name__}")
        self._modelkit_reference = value

    @property
    def kitfile(self) -> Kitfile | None:
        """The Kitfile to save before packing (``save_kitfile``), or the one loaded after unpacking."""
        return self._kitfile

    @kitfile.setter
    def kitfile(self, value: Kitfile | None) -> None:
        if value is not None and not isinstance(value, Kitfile):
            raise TypeError(f"kitfile must be a Kitfile, not {type(value).__name__}")
        self._kitfile = value

    # ----- operations ------------------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in to the ModelKit's registry with :attr:`user_credentials` (``kit login``)."""
        credentials = self.user_credentials
        assert credentials.username is not None and credentials.password is not None  # UserCredentials ensures it
        kit.login(credentials.username, credentials.password, registry=self._registry())

    def logout(self) -> None:
        """Forget the saved login for the ModelKit's registry (``kit logout``; an addition to pykitops)."""
        kit.logout(registry=self._registry())

    def inspect_modelkit(self, remote: bool = False) -> dict[str, Any]:
        """``kit inspect`` of the ModelKit (from the local store, or ``remote``)."""
        return kit.inspect(self._tag(), remote=remote)

    def pack_and_push_modelkit(
        self,
        save_kitfile: bool = False,
        with_login_and_logout: bool = True,
        sign_key: str | os.PathLike[str] | None = None,
        sign_password: bytes | None = None,
    ) -> None:
        """Pack the working directory as the ModelKit and push it.

        With ``save_kitfile`` and a :attr:`kitfile` set, that Kitfile is first written to
        ``<working_directory>/Kitfile``. With ``with_login_and_logout``, log in first and out at the end.
        With ``sign_key`` (a private key file; an addition to pykitops), the pushed manifest digest is then signed
        as ``pymodelkit sign`` does, while still logged in; ``sign_password`` defaults to
        ``PYMODELKIT_KEY_PASSWORD``.
        """
        tag = self._tag()
        if save_kitfile and self.kitfile is not None:
            self.kitfile.save(Path(self.working_directory) / "Kitfile")
        with self._session(with_login_and_logout):
            kit.pack(tag, working_directory=self.working_directory)
            kit.push(tag)
            if sign_key is not None:
                from pymodelkit.oci.reference import parse_reference
                from pymodelkit.signing.signer import sign
                from pymodelkit.store import LocalStore

                ref = parse_reference(tag)[0].with_default_tag()
                sign(ref.with_digest(LocalStore().resolve(ref).digest), sign_key, password=sign_password)

    def pull_and_unpack_modelkit(
        self, load_kitfile: bool = False, filters: list[str] | None = None, with_login_and_logout: bool = True
    ) -> None:
        """Pull the ModelKit and unpack it into the working directory.

        With ``filters`` nothing is pulled: only the selected layers are read from the registry, as in pykitops.
        With ``load_kitfile``, :attr:`kitfile` is then read from the unpacked ``Kitfile``.
        """
        tag = self._tag()
        with self._session(with_login_and_logout):
            if not filters:
                kit.pull(tag)
            kit.unpack(tag, dir=self.working_directory, filters=filters)
        if load_kitfile:
            self.kitfile = Kitfile(Path(self.working_directory) / "Kitfile")

    def remove_modelkit(self, local: bool = False, remote: bool = False, with_login_and_logout: bool = True) -> None:
        """Remove the ModelKit from the local store (``local``) and/or its registry (``remote``); both default to
        ``False``, so a call without either removes nothing (a ``UserWarning`` says so)."""
        tag = self._tag()
        if not local and not remote:
            warnings.warn("remove_modelkit(): neither local nor remote is True; nothing is removed", UserWarning,
                          stacklevel=2)
        with self._session(with_login_and_logout):
            if local:
                kit.remove(tag)
            if remote:
                kit.remove(tag, remote=True)

    # ----- internals -------------------------------------------------------------------------------------------

    def _registry(self) -> str:
        registry = self.modelkit_reference.registry
        if not registry:
            try:
                registry = self.user_credentials.registry
            except ValueError:  # no credentials either: the missing registry is the error to report
                registry = None
        if not registry:
            raise ValueError(
                "ModelKitManager needs a registry: give a modelkit_tag such as 'registry.example.com/team/model:v1' "
                "(or a UserCredentials registry)"
            )
        return registry

    def _tag(self) -> str:
        ref = self.modelkit_reference
        if not ref.repository:
            raise ValueError(
                "ModelKitManager has no ModelKit reference: give modelkit_tag='registry/namespace/repository:tag'"
            )
        if ref.registry:
            return ref.modelkit_tag
        complete = ModelKitReference()
        complete.registry, complete.namespace, complete.repository = self._registry(), ref.namespace, ref.repository
        complete.tag, complete.digest = ref.tag, ref.digest
        return complete.modelkit_tag

    def _session(self, with_login_and_logout: bool) -> _Session:
        return _Session(self, with_login_and_logout)


class _Session:
    """Log in on entry and out on exit (also after a failure), or do nothing."""

    def __init__(self, manager: ModelKitManager, active: bool) -> None:
        self._manager = manager
        self._active = active

    def __enter__(self) -> None:
        if self._active:
            self._manager.login()

    def __exit__(self, *exc_info: object) -> None:
        if self._active:
            self._manager.logout()
