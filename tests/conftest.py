"""Fixtures shared by every test: a clean, private environment for each test; the real test registry."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.registry import ENV_REGISTRY, AuthMode, RegistryUnavailable, TestRegistry, registry_server
from tests.support.tlsfront import TestPki

_CLEARED_PREFIXES = ("JOZU_", "PYMODELKIT_", "KITOPS_")
_CLEARED = ("SOURCE_DATE_EPOCH", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE")


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point HOME, KITOPS_HOME, DOCKER_CONFIG and XDG_* at a fresh temp dir; drop JOZU_*, PYMODELKIT_*, KITOPS_*."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KITOPS_HOME", str(home / "kitops"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    for xdg in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(xdg, str(home / xdg.lower()))
    previous = os.umask(0o022)
    try:
        yield home
    finally:
        os.umask(previous)


# --- the real test registry and the fault proxy -------------------------------------------------------------------
# Session-scoped registries are shared by every test that uses them: use a repository name of your own per test.

_EXTERNAL_REGISTRY = os.environ.get(ENV_REGISTRY) or None  # read at import, before clean_environ drops PYMODELKIT_*
_REGISTRY_FIXTURES = frozenset(
    {"registry", "registry_basic", "registry_token", "registry_deletes", "fresh_registry", "make_registry"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests using a registry fixture ``integration`` and those using the fault proxy ``faults``."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _REGISTRY_FIXTURES:
            item.add_marker(pytest.mark.integration)
        if "fault_proxy" in names:
            item.add_marker(pytest.mark.faults)


@contextlib.contextmanager
def _registry_or_fail(workdir: Path, **options: Any) -> Iterator[TestRegistry]:
    try:
        with registry_server(workdir, **options) as server:
            yield server
    except RegistryUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    """An anonymous registry (``PYMODELKIT_TEST_REGISTRY`` if set), shared by the session."""
    with _registry_or_fail(tmp_path_factory.mktemp("registry"), external=_EXTERNAL_REGISTRY) as server:
        yield server


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    """A registry with htpasswd Basic auth (realm ``local-registry``); ``.username``/``.password`` log in."""
    with _registry_or_fail(tmp_path_factory.mktemp("registry-basic"), auth="basic") as server:
        yield server


@pytest.fixture(scope="session")
def _registry_token_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with _registry_or_fail(tmp_path_factory.mktemp("registry-token"), auth="token") as server:
        yield server


@pytest.fixture
def registry_token(_registry_token_session: TestRegistry) -> Iterator[TestRegistry]:
    """A token-auth registry; ``.token_server`` (knobs and counters) is reset before and after each test."""
    token_server = _registry_token_session.token_server
    assert token_server is not None
    token_server.reset()
    yield _registry_token_session
    token_server.reset()


@pytest.fixture(scope="session")
def registry_deletes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    """An anonymous registry with ``storage.delete.enabled: true`` (the stock ``registry:2`` has deletes off)."""
    with _registry_or_fail(tmp_path_factory.mktemp("registry-deletes"), delete_enabled=True) as server:
        yield server


@pytest.fixture
def make_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TestRegistry]]:
    """Factory for private, restartable registries: ``make_registry(auth="none"|"basic"|"token",
    delete_enabled=False)``; each is stopped at teardown. Needs the docker-registry binary."""
    stack = contextlib.ExitStack()

    def make(*, auth: AuthMode = "none", delete_enabled: bool = False) -> TestRegistry:
        workdir = tmp_path_factory.mktemp("registry-fresh")
        return stack.enter_context(
            _registry_or_fail(workdir, auth=auth, delete_enabled=delete_enabled, restartable=True)
        )

    with stack:
        yield make


@pytest.fixture
def fresh_registry(make_registry: Callable[..., TestRegistry]) -> TestRegistry:
    """A private anonymous registry for this test only; ``.restart()`` keeps its port and storage."""
    return make_registry()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Factory: ``fault_proxy(target_url, **options) -> FaultProxy`` (started; stopped at teardown)."""
    proxies: list[FaultProxy] = []

    def make(target_url: str, **options: Any) -> FaultProxy:
        proxy = FaultProxy(target_url, **options).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A CA (with server and client certificates on demand) for the TLS tests of one module."""
    return TestPki(tmp_path_factory.mktemp("pki"), "registry")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A second, unrelated CA: certificates the registry's side does not trust."""
    return TestPki(tmp_path_factory.mktemp("other-pki"), "other")
