"""``login`` and ``logout``: check a credential against a registry, then keep it in kit's credentials file
(spec ``kitops-modelkit.md`` §5.4).

Login pings ``GET /v2/`` through a :class:`~pymodelkit.registry.client.RegistryClient` holding only the given
credential (no retry), and stores it only if the registry accepts it; the client's rules apply: the scheme (https, a
loopback registry falling back to http), the trusted CAs (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``,
for a loopback registry too, plus the given CA files), the TLS files (with plain HTTP none is read unless an https
request is made after all, an https token server), the timeouts (``PYMODELKIT_TIMEOUT``), and a server that is no
OCI registry named as such. Storing is ``registry.credentials``' job.

The registry is read as docker reads ``docker login`` and ``docker logout`` arguments (:func:`registry_host`): a
leading ``http://`` or ``https://`` and anything from the first ``/`` on are dropped, and what remains must be
``host[:port]``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path

from pymodelkit.errors import AuthError, InvalidReferenceError
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.credentials import (
    DOCKER_HUB_HOSTS,
    Credential,
    ExplicitCredentials,
    remove_credential,
    store_credential,
)
from pymodelkit.registry.retry import NO_RETRY
from pymodelkit.registry.tls import CaBundle, ClientCert

__all__ = ["login", "logout", "registry_host"]

logger = logging.getLogger(__name__)

# docker's reference grammar: a domain is components of letters, digits and inner hyphens joined by dots (any case),
# or an IPv6 address in brackets; then an optional :port
_DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*",
                        re.ASCII)


def registry_host(registry: str) -> str:
    """The ``host[:port]`` that login and logout use for ``registry``, read as docker reads it.

    A leading ``http://`` or ``https://`` (any case) and anything from the first ``/`` on are dropped:
    ``https://registry.example.com:5000/v2/`` is ``registry.example.com:5000``.

    Raises:
        InvalidReferenceError: what remains is not ``host[:port]`` (the port a number from 1 to 65535).
    """
    text = registry.strip()
    for prefix in ("https://", "http://"):
        if text[: len(prefix)].lower() == prefix:
            text = text[len(prefix) :]
            break
    host = text.split("/", 1)[0]
    if host != registry:
        logger.debug("registry %r read as %s", registry, host)
    if host.startswith("["):
        name, close, rest = host[1:].partition("]")
        if not close or not _is_ipv6(name) or (rest and not rest.startswith(":")):
            raise _invalid(registry, "not host[:port]")
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = host.partition(":")
        if not _DOMAIN_RE.fullmatch(name):
            raise _invalid(registry, "give host[:port]" if not host else "not host[:port]")
        port = port_text if colon else None
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise _invalid(registry, f"the port {port!r} is not a number from 1 to 65535")
    return host


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
    timeout_s: float | None = None,
) -> None:
    """Check ``username``/``password`` against ``registry`` and save them in kit's ``credentials.json``.

    An empty ``username`` makes ``password`` an identity (OAuth2 refresh) token, as ``kit login`` does.

    Args:
        registry: ``host[:port]``, read by :func:`registry_host` (``https://host/path`` is ``host``); the credential
            is saved for that host. ``docker.io`` is checked at ``registry-1.docker.io``.
        home: the kit home holding ``credentials.json`` (default: ``$KITOPS_HOME`` or the platform default).
        plain_http: ``True``: http; ``False``: https only; ``None``: https, falling back to http for a loopback
            registry (``localhost``, ``127.0.0.0/8``, ``::1``) that does not speak TLS.
        tls_verify: verify the registry's certificate.
        ca_bundle, client_cert: extra CA files and the client certificate, as for
            :class:`~pymodelkit.registry.client.RegistryClient`: checked before the first request, or, with plain
            HTTP, not read unless an https request needs them.
        timeout_s: the longest wait of the ping, as for ``RegistryClient`` (default ``PYMODELKIT_TIMEOUT``, 30 s).

    Raises:
        InvalidReferenceError: ``registry`` is not ``host[:port]`` (nothing is asked of the network).
        AuthError: the registry or its token server refused the credential (nothing is stored), or it is unusable.
        RegistryError: the registry could not be reached, is not an OCI registry, or answered with another error.
        NotFoundError, ModelKitError: a TLS file cannot be read or used (one line naming it).
    """
    host = registry_host(registry)
    if not password:
        raise AuthError(f"cannot log in to {host}: a password or token is required")
    if ":" in username:
        raise AuthError(f"cannot log in to {host}: a username must not contain ':'")
    credential = Credential(username=username, password=password) if username else Credential(identity_token=password)
    checked_as = "docker.io" if host.lower() in DOCKER_HUB_HOSTS else host
    try:
        with RegistryClient(checked_as, credentials=ExplicitCredentials(credential), plain_http=plain_http,
                            tls_verify=tls_verify, ca_bundle=ca_bundle, client_cert=client_cert, retry=NO_RETRY,
                            timeout_s=timeout_s) as client:
            client.ping()
    except AuthError as exc:
        raise AuthError(f"cannot log in to {host}: {exc.message}", **exc.details) from None
    path = store_credential(host, credential, home)
    logger.info("credentials for %s saved in %s", host, path)


def logout(registry: str, *, home: Path | None = None) -> bool:
    """Forget the credential kit's ``credentials.json`` holds for ``registry`` (read by :func:`registry_host`);
    ``False`` if there was none. Raises InvalidReferenceError when ``registry`` is not ``host[:port]``."""
    host = registry_host(registry)
    removed = remove_credential(host, home)
    logger.info("credentials for %s %s", host, "removed" if removed else "were not stored")
    return removed


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _invalid(registry: str, why: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid registry {registry!r}: {why}", reference=registry)
