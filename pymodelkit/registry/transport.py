"""The transport stack under a registry's ``httpx.Client``: request-level retry over a transport per scheme, mounted per
environment proxy (STYLE rule 4; spec ``oci-distribution.md`` §8 trap 28, proxies and loopback traffic).

Each request goes through :class:`~pymodelkit.registry.retry.RetryTransport` over a
:class:`~pymodelkit.registry.tls.SchemeTransport`: plain http through a transport that never loads a CA bundle, https
through a verifying one built on the first https request (``registry/tls.py``). With ``trust_env``,
``HTTP(S)_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` become httpx mounts, each with the same stack through its proxy; a
loopback registry is never proxied. Auth and logging are the client's (an ``httpx.Auth`` and event hooks), above
this stack.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Callable

import httpx

from pymodelkit.registry.retry import RetryPolicy, RetryTransport
from pymodelkit.registry.tls import SchemeTransport, TlsOptions, plain_transport, ssl_context

__all__ = ["is_loopback", "registry_transports"]

_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)


def is_loopback(registry: str) -> bool:
    """Tell whether ``registry`` (``host[:port]``) is ``localhost``, in ``127.0.0.0/8`` or ``::1``."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_transports(
    host: str,
    *,
    tls_files: Callable[[], TlsOptions],
    tls_verify: bool,
    trust_env: bool,
    retry: RetryPolicy,
    transport: httpx.BaseTransport | None = None,
) -> tuple[httpx.BaseTransport, dict[str, httpx.BaseTransport | None]]:
    """The ``transport`` and ``mounts`` of an ``httpx.Client`` for the registry at ``host``, each retrying as
    ``retry`` says. http requests go through a transport that never loads the CA bundle; https ones through a
    verifying one built on the first https request (registry/tls.py), with the files ``tls_files`` returns then.
    With ``trust_env``, ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` and ``SSL_CERT_FILE``/``SSL_CERT_DIR`` apply, but
    a loopback ``host`` is never proxied; an https proxy is a TLS peer for every request, so its transport is built
    (and ``tls_files`` called) here. ``transport`` replaces the HTTP transport (tests), with no proxies."""

    def through(proxy: str | None) -> httpx.BaseTransport:
        def secure() -> httpx.BaseTransport:
            files = tls_files()
            verify = ssl_context(tls_verify=tls_verify, ca_bundle=files.ca_files, trust_env=trust_env,
                                 client_cert=files.client_cert)
            return httpx.HTTPTransport(verify=verify, limits=_LIMITS, proxy=proxy)

        if proxy is not None and proxy.lower().startswith("https://"):
            return secure()
        return SchemeTransport(plain_transport(_LIMITS, proxy), secure)

    base = transport if transport is not None else through(None)
    mounts: dict[str, httpx.BaseTransport | None] = {}
    if trust_env and transport is None and not is_loopback(host):
        for pattern, proxy in _environment_proxies().items():
            mounts[pattern] = None if proxy is None else RetryTransport(through(proxy), retry)
    return RetryTransport(base, retry), mounts


def _environment_proxies() -> dict[str, str | None]:
    """httpx mount patterns for ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and the ``NO_PROXY`` exceptions."""
    found = urllib.request.getproxies_environment()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        proxy = found.get(scheme)
        if proxy:
            mounts[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    for entry in (part.strip() for part in found.get("no", "").split(",")):
        if entry == "*":
            return {}
        if not entry:
            continue
        if "://" in entry:
            mounts[entry] = None
            continue
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            mounts[f"all://*{entry}"] = None
            continue
        mounts[f"all://[{entry}]" if address.version == 6 else f"all://{entry}"] = None
    return mounts
