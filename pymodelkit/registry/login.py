"""``login`` and ``logout``: check a credential against a registry, then keep it in kit's credentials file
(spec ``kitops-modelkit.md`` §5.4).

Login pings ``GET /v2/`` through :class:`~pymodelkit.registry.auth.RegistryAuth` with only the given credential and
stores it only if the registry accepts it. Storing is ``registry.credentials``' job. The ping goes through the
registry client's transports (``registry_transports``): with plain HTTP no TLS file is read unless an https request
is made after all (an https token server); otherwise the files are checked before the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx

from pymodelkit import settings
from pymodelkit._version import __version__
from pymodelkit.errors import AuthError
from pymodelkit.registry.auth import SCOPES_EXTENSION, RegistryAuth
from pymodelkit.registry.client import is_certificate_error, is_loopback, registry_transports
from pymodelkit.registry.credentials import (
    DOCKER_HUB_HOSTS,
    Credential,
    ExplicitCredentials,
    remove_credential,
    store_credential,
)
from pymodelkit.registry.responses import check_response, transport_failure
from pymodelkit.registry.retry import NO_RETRY
from pymodelkit.registry.tls import CaBundle, ClientCert, TlsOptions, deferred_tls_options

__all__ = ["PING_TIMEOUT_S", "login", "logout"]

logger = logging.getLogger(__name__)

PING_TIMEOUT_S = 30.0


def login(
    registry: str,
    username: str,
    password: str,
    *,
    home: Path | None = None,
    plain_http: bool | None = None,
    tls_verify: bool = True,
    ca_bundle: CaBundle | None = None,
    client_cert: ClientCert | None = None,
) -> None:
    """Check ``username``/``password`` against ``registry`` and save them in kit's ``credentials.json``.

    An empty ``username`` makes ``password`` an identity (OAuth2 refresh) token, as ``kit login`` does.

    Args:
        registry: ``host[:port]``; ``docker.io`` is checked at ``registry-1.docker.io``.
        home: the kit home holding ``credentials.json`` (default: ``$KITOPS_HOME`` or the platform default).
        plain_http: ``True``: http; ``False``: https only; ``None``: https, falling back to http for a loopback
            registry (``localhost``, ``127.0.0.0/8``, ``::1``) that does not speak TLS.
        tls_verify: verify the registry's certificate.
        ca_bundle, client_cert: extra CA files and the client certificate, as for
            :class:`~pymodelkit.registry.client.RegistryClient`: checked before the first request, or, with plain
            HTTP, not read unless an https request needs them.

    Raises:
        AuthError: the registry or its token server refused the credential (nothing is stored), or it is unusable.
        RegistryError: the registry could not be reached or answered with another error.
        NotFoundError, ModelKitError: a TLS file cannot be read or used (one line naming it).
    """
    if not password:
        raise AuthError(f"cannot log in to {registry}: a password or token is required")
    if ":" in username:
        raise AuthError(f"cannot log in to {registry}: a username must not contain ':'")
    credential = Credential(username=username, password=password) if username else Credential(identity_token=password)
    if plain_http is None and settings.plain_http():
        plain_http = True
    tls_files = deferred_tls_options(ca_bundle=ca_bundle, client_cert=client_cert)
    if not plain_http:
        tls_files()  # https will be tried: check the files now, before any request
    try:
        _ping(registry, credential, plain_http=plain_http, tls_verify=tls_verify, tls_files=tls_files)
    except AuthError as exc:
        raise AuthError(f"cannot log in to {registry}: {exc.message}", **exc.details) from None
    path = store_credential(registry, credential, home)
    logger.info("credentials for %s saved in %s", registry, path)


def logout(registry: str, *, home: Path | None = None) -> bool:
    """Forget the credential kit's ``credentials.json`` holds for ``registry``; ``False`` if there was none."""
    removed = remove_credential(registry, home)
    logger.info("credentials for %s %s", registry, "removed" if removed else "were not stored")
    return removed


def _ping(
    registry: str,
    credential: Credential,
    *,
    plain_http: bool | None,
    tls_verify: bool,
    tls_files: Callable[[], TlsOptions],
) -> None:
    host = "registry-1.docker.io" if registry.lower() in DOCKER_HUB_HOSTS else registry
    loopback = is_loopback(host)
    schemes = ["http"] if plain_http else ["https", "http"] if plain_http is None and loopback else ["https"]
    auth = RegistryAuth(registry, ExplicitCredentials(credential))
    # https (the registry's, or a token server's) through a verifying transport built on the first https request;
    # proxies from the environment (the mounts), but never for a loopback registry
    transport, mounts = registry_transports(host, tls_files=tls_files, tls_verify=tls_verify,
                                            trust_env=not loopback, retry=NO_RETRY)
    with httpx.Client(
        auth=auth,
        transport=transport,
        mounts=mounts,
        timeout=PING_TIMEOUT_S,
        trust_env=not loopback,
        follow_redirects=False,
        headers={"User-Agent": f"pymodelkit/{__version__}"},
    ) as client:
        for index, scheme in enumerate(schemes):
            url = f"{scheme}://{host}/v2/"
            try:
                response = client.get(url, extensions={SCOPES_EXTENSION: ()})
            except httpx.TransportError as exc:
                if index + 1 < len(schemes) and not is_certificate_error(exc):  # TLS that refused us is not http
                    logger.debug("%s does not answer https (%s): trying http", host, type(exc).__name__)
                    continue
                raise transport_failure(exc, registry=registry) from exc
            check_response(response, 200, subject=f"registry {registry}")
            return
