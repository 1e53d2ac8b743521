"""A real CNCF distribution registry for tests: external, a testcontainers ``registry:2``, or Debian's binary.

Backends, in order (see ``/work/shared/spec/oci-distribution.md`` §7):

1. ``PYMODELKIT_TEST_REGISTRY`` (``host:port``, optionally with ``http://``/``https://``): used as is, anonymous
   variant only (its config is unknown, so auth and delete variants never use it);
2. testcontainers' ``DockerRegistryContainer`` (``registry:2``) when a Docker engine answers;
3. ``/usr/bin/docker-registry serve CONFIG`` (Debian package ``docker-registry``, distribution 2.8.2) on a free
   ``127.0.0.1`` port with its own config and storage in a temp dir.

Variants: ``auth="none"``, ``"basic"`` (htpasswd, realm ``local-registry``), ``"token"`` (a :class:`TokenServer`
issuing RS256 JWTs, the registry configured with ``auth: token``); ``delete_enabled``. Every variant sets
``http.secret`` so upload sessions survive :meth:`TestRegistry.restart`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import httpx
import yaml

from tests.support.tokenserver import TokenServer

__all__ = [
    "BASIC_REALM",
    "ENV_REGISTRY",
    "HOW_TO_GET_A_REGISTRY",
    "REGISTRY_BINARY",
    "TEST_PASSWORD",
    "TEST_USERNAME",
    "AuthMode",
    "RegistryProcess",
    "RegistryUnavailable",
    "TestRegistry",
    "parse_registry_address",
    "registry_server",
]

AuthMode = Literal["none", "basic", "token"]

ENV_REGISTRY = "PYMODELKIT_TEST_REGISTRY"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
BASIC_REALM = "local-registry"
HTTP_SECRET = "pymodelkit-test-registry-http-secret"

TEST_USERNAME = "modelkit"
TEST_PASSWORD = "modelkit-test-pw"
# bcrypt of TEST_PASSWORD at cost 6 (cheap to check on every request; distribution needs bcrypt in htpasswd).
_TEST_PASSWORD_BCRYPT = "$2b$06$5K8LBk0L0ESWQEWqt6M2GOpLsZg4XCxSPYrKucQ.I40dQTBAkkcI."

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0

HOW_TO_GET_A_REGISTRY = (
    "no test registry available; get one of: "
    "(1) Debian's registry binary: `apt-get install docker-registry` (provides /usr/bin/docker-registry); "
    "(2) a running Docker engine (testcontainers starts registry:2; `pip install -e .[test]`); "
    "(3) an existing registry: PYMODELKIT_TEST_REGISTRY=127.0.0.1:5000 (anonymous, plain HTTP)"
)


class RegistryUnavailable(RuntimeError):
    """No registry could be had, or one did not come up; the message says why and how to get one."""


@dataclass(frozen=True)
class TestRegistry:
    """A running registry: what tests put in references (``host``) and where to send HTTP (``url``)."""

    __test__: ClassVar[bool] = False  # not a test class, whatever its name

    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT"
    username: str | None = None
    password: str | None = None
    storage_dir: Path | None = None  # filesystem root of the binary backend, else None
    auth: AuthMode = "none"
    delete_enabled: bool = False
    backend: Literal["external", "container", "binary"] = "binary"
    token_server: TokenServer | None = None  # the token variant's token server
    _process: RegistryProcess | None = field(default=None, repr=False, compare=False)

    @property
    def restartable(self) -> bool:
        return self._process is not None

    def restart(self) -> None:
        """Stop the registry and start it again on the same port and storage (binary backend only)."""
        if self._process is None:
            raise RuntimeError(f"restart() needs the docker-registry binary backend, not {self.backend}")
        self._process.restart()

    def stop(self) -> None:
        """Stop the registry process (binary backend); :meth:`restart` brings it back."""
        if self._process is None:
            raise RuntimeError(f"stop() needs the docker-registry binary backend, not {self.backend}")
        self._process.stop()


def parse_registry_address(value: str) -> tuple[str, str]:
    """``"host:port"``, ``"http://host:port/"`` or ``"https://…"`` → (host, base url)."""
    text = value.strip().rstrip("/")
    scheme = "http"
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            scheme, text = prefix[:-3], text[len(prefix) :]
    if not text or "/" in text:
        raise RegistryUnavailable(f"{ENV_REGISTRY}={value!r} is not a host:port")
    return text, f"{scheme}://{text}"


def wait_ready(url: str, *, timeout_s: float = READY_TIMEOUT_S, alive: Callable[[], bool] | None = None) -> None:
    """Poll ``GET {url}/v2/`` until it answers 200 or 401."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise RegistryUnavailable(f"registry at {url} exited while starting")
            try:
                status = client.get(f"{url}/v2/").status_code
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if status in (200, 401):
                    return
                last = f"HTTP {status}"
            time.sleep(0.02)
    raise RegistryUnavailable(f"registry at {url} not ready after {timeout_s:g} s ({last})")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RegistryProcess:
    """``docker-registry serve CONFIG`` as a child process with its own config, storage and log in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        auth: AuthMode = "none",
        delete_enabled: bool = False,
        token_server: TokenServer | None = None,
        binary: Path = REGISTRY_BINARY,
    ) -> None:
        if auth == "token" and token_server is None:
            raise ValueError("auth='token' needs a token_server")
        self.workdir = workdir
        self.auth: AuthMode = auth
        self.delete_enabled = delete_enabled
        self.token_server = token_server
        self.binary = binary
        self.storage_dir = workdir / "data"
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def config(self) -> dict[str, object]:
        """The registry's config.yml, as a mapping (mimics the stock ``registry:2`` config)."""
        auth: dict[str, object] = {}
        if self.auth == "basic":
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{TEST_USERNAME}:{_TEST_PASSWORD_BCRYPT}\n", encoding="ascii")
            auth = {"htpasswd": {"realm": BASIC_REALM, "path": str(htpasswd)}}
        elif self.auth == "token":
            assert self.token_server is not None
            cert = self.token_server.write_cert(self.workdir / "token-cert.pem")
            auth = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(cert),
                }
            }
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": self.delete_enabled},
            },
            "http": {
                "addr": self.host,
                "secret": HTTP_SECRET,
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if auth:
            config["auth"] = auth
        return config

    def start(self) -> None:
        """Start on a free port (first start) or the same port (after :meth:`stop`), then wait for ``/v2/``."""
        if self._proc is not None:
            return
        if not self.binary.is_file():
            raise RegistryUnavailable(f"{self.binary} not found; {HOW_TO_GET_A_REGISTRY}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        keep_port = self.port != 0
        attempts = 1 if keep_port else 3
        for attempt in range(attempts):
            if not keep_port:
                self.port = _free_port()
            self._spawn()
            try:
                wait_ready(self.url, alive=self.alive)
                return
            except RegistryUnavailable as exc:
                log = self.log_tail()
                self.stop()
                if attempt + 1 < attempts and "address already in use" in log:
                    continue
                raise RegistryUnavailable(f"{exc}; log: {log or '(empty)'}") from None

    def _spawn(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.workdir,
            )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL after a timeout."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Stop and start on the same port and storage (upload sessions stay valid thanks to ``http.secret``)."""
        self.stop()
        self.start()

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-limit:].strip()
        except FileNotFoundError:
            return ""


@lru_cache(maxsize=1)
def docker_engine_answers() -> bool:
    """True when a Docker engine answers a ping (and testcontainers is installed); cheap when there is none."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import docker  # type: ignore[import-untyped, import-not-found, unused-ignore]

            docker.from_env(timeout=3).ping()
            import testcontainers.community.registry  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _container_registry(workdir: Path, auth: AuthMode, delete_enabled: bool) -> Iterator[TestRegistry]:
    """``registry:2`` through testcontainers (only reached when a Docker engine answers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from testcontainers.community.registry import (  # type: ignore[import-not-found, unused-ignore]
            DockerRegistryContainer,
        )
        from testcontainers.core.container import DockerContainer  # type: ignore[import-not-found, unused-ignore]

    token_server = TokenServer({TEST_USERNAME: TEST_PASSWORD}).start() if auth == "token" else None
    if auth == "basic":
        container = DockerRegistryContainer(username=TEST_USERNAME, password=TEST_PASSWORD)
    else:
        container = DockerRegistryContainer()
    container.with_env("REGISTRY_HTTP_SECRET", HTTP_SECRET)
    if delete_enabled:
        container.with_env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
    if token_server is not None:
        certs = workdir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        token_server.write_cert(certs / "token-cert.pem")
        container.with_volume_mapping(str(certs), "/certs", "ro")
        for key, value in (
            ("REALM", token_server.realm),
            ("SERVICE", token_server.service),
            ("ISSUER", token_server.issuer),
            ("ROOTCERTBUNDLE", "/certs/token-cert.pem"),
        ):
            container.with_env(f"REGISTRY_AUTH_TOKEN_{key}", value)
    try:
        if token_server is not None:
            DockerContainer.start(container)  # its own readiness probe expects 200 from /v2
        else:
            container.start()
        host = str(container.get_registry())
        wait_ready(f"http://{host}")
        basic = auth in ("basic", "token")
        yield TestRegistry(
            host=host,
            url=f"http://{host}",
            username=TEST_USERNAME if basic else None,
            password=TEST_PASSWORD if basic else None,
            auth=auth,
            delete_enabled=delete_enabled,
            backend="container",
            token_server=token_server,
        )
    finally:
        container.stop()
        if token_server is not None:
            token_server.stop()


@contextlib.contextmanager
def _binary_registry(workdir: Path, auth: AuthMode, delete_enabled: bool, binary: Path) -> Iterator[TestRegistry]:
    token_server = TokenServer({TEST_USERNAME: TEST_PASSWORD}).start() if auth == "token" else None
    process = RegistryProcess(
        workdir, auth=auth, delete_enabled=delete_enabled, token_server=token_server, binary=binary
    )
    try:
        process.start()
        basic = auth in ("basic", "token")
        yield TestRegistry(
            host=process.host,
            url=process.url,
            username=TEST_USERNAME if basic else None,
            password=TEST_PASSWORD if basic else None,
            storage_dir=process.storage_dir,
            auth=auth,
            delete_enabled=delete_enabled,
            backend="binary",
            token_server=token_server,
            _process=process,
        )
    finally:
        process.stop()
        if token_server is not None:
            token_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def registry_server(
    workdir: Path,
    *,
    auth: AuthMode = "none",
    delete_enabled: bool = False,
    external: str | None = None,
    restartable: bool = False,
    binary: Path = REGISTRY_BINARY,
    external_timeout_s: float = 5.0,
) -> Iterator[TestRegistry]:
    """Run a registry of the given variant for the ``with`` block; raise :class:`RegistryUnavailable` if none.

    ``external`` (the value of ``PYMODELKIT_TEST_REGISTRY``) is used only for the plain anonymous variant;
    ``restartable`` insists on the binary backend.
    """
    if external and auth == "none" and not delete_enabled and not restartable:
        host, url = parse_registry_address(external)
        try:
            wait_ready(url, timeout_s=external_timeout_s)
        except RegistryUnavailable as exc:
            raise RegistryUnavailable(f"{ENV_REGISTRY}={external!r}: {exc}") from None
        yield TestRegistry(host=host, url=url, backend="external")
        return
    if not restartable and docker_engine_answers():
        with _container_registry(workdir, auth, delete_enabled) as registry:
            yield registry
        return
    if binary.is_file():
        with _binary_registry(workdir, auth, delete_enabled, binary) as registry:
            yield registry
        return
    need = f"a restartable registry needs {binary}; " if restartable else ""
    raise RegistryUnavailable(need + HOW_TO_GET_A_REGISTRY)
