"""Bounded waits (audit P3): a server that accepts connections and never answers fails a command in about twice the
probe timeout (loopback, scheme probed) or once ``PYMODELKIT_TIMEOUT`` (a known scheme), with no retry of a timed-out
request; the limit is per wait, so a slow but steady answer longer than it in total still arrives.

The silent server is a loopback socket that accepts and never reads or writes; the slow one sends a registry-like
answer a few bytes at a time.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pymodelkit.cli.main import main
from pymodelkit.errors import ModelKitError, RegistryError
from pymodelkit.oci.digest import Digest
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.login import login
from pymodelkit.registry.upload import COMMIT_BYTES_PER_S, FileSpan, put_blob, start_upload
from pymodelkit.settings import DEFAULT_REGISTRY_TIMEOUT_S, registry_timeout
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry


class _Listener:
    """A loopback TCP listener whose ``serve(conn)`` runs on a thread per accepted connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        """Accept and never answer."""

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


class _Trickle(_Listener):
    """Answers every request with a 200 whose ``size``-byte body comes ``step`` bytes every ``gap_s`` seconds."""

    size, step, gap_s = 40, 4, 0.2

    def serve(self, conn: socket.socket) -> None:
        conn.recv(65536)
        head = (f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\nContent-Type: application/octet-stream\r\n"
                "Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n\r\n")
        conn.sendall(head.encode())
        for start in range(0, self.size, self.step):
            time.sleep(self.gap_s)
            conn.sendall(b"x" * min(self.step, self.size - start))


@pytest.fixture
def silent() -> Iterator[_Listener]:
    listener = _Listener()
    yield listener
    listener.close()


@pytest.fixture
def trickle() -> Iterator[_Listener]:
    listener = _Trickle()
    yield listener
    listener.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err, time.monotonic() - start


# --- the setting -----------------------------------------------------------------------------------------------------


def test_pymodelkit_timeout_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry_timeout() == DEFAULT_REGISTRY_TIMEOUT_S == 30.0
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", " 2.5 ")
    assert registry_timeout() == 2.5
    assert RegistryClient("127.0.0.1:9").timeout_s == 2.5
    assert RegistryClient("127.0.0.1:9", timeout_s=7).timeout_s == 7  # the argument wins
    for bad in ("0", "-1", "abc", "inf", "nan"):
        monkeypatch.setenv("PYMODELKIT_TIMEOUT", bad)
        with pytest.raises(ModelKitError) as info:
            registry_timeout()
        assert str(info.value) == f"invalid PYMODELKIT_TIMEOUT {bad!r}: give a positive number of seconds"
    with pytest.raises(ValueError, match="timeout_s must be a positive number"):
        RegistryClient("127.0.0.1:9", timeout_s=0)


def test_a_bad_pymodelkit_timeout_stops_a_network_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "soon")
    code, out, err, _ = _run(capsys, "inspect", "-r", "127.0.0.1:9/demo:v1")
    assert (code, out, err) == (1, "", "pymodelkit: error: invalid PYMODELKIT_TIMEOUT 'soon': give a positive number "
                                       "of seconds\n")


# --- a server that never answers -------------------------------------------------------------------------------------


def test_a_silent_loopback_server_fails_after_the_two_probes(silent: _Listener, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "0.5")
    start = time.monotonic()
    with RegistryClient(silent.host) as client, pytest.raises(RegistryError) as info:
        client.fetch_manifest("demo", "v1")
    elapsed = time.monotonic() - start
    assert str(info.value) == (f"cannot reach registry {silent.host}: no answer over https or http within 0.5 s "
                               f"[GET http://{silent.host}/v2/]")
    assert info.value.status is None
    assert 0.9 < elapsed < 3.0
    assert silent.accepted == 2  # the https probe, the http one; nothing retried


def test_a_timed_out_request_is_not_retried(silent: _Listener) -> None:
    start = time.monotonic()
    with RegistryClient(silent.host, plain_http=True, timeout_s=0.5) as client, pytest.raises(RegistryError) as info:
        client.fetch_manifest("demo", "v1")
    elapsed = time.monotonic() - start
    assert str(info.value) == (
        f"cannot reach registry {silent.host}: timed out: nothing received for 0.5 s (PYMODELKIT_TIMEOUT sets the "
        f"limit) [GET http://{silent.host}/v2/demo/manifests/v1]"
    )
    assert info.value.is_temporary is True  # worth trying later, but not again and again now
    assert 0.4 < elapsed < 2.0
    assert silent.accepted == 1


def test_the_unreachable_verdict_is_kept_for_every_caller(silent: _Listener, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "0.3")
    errors: list[str] = []
    with RegistryClient(silent.host) as client:
        def head() -> None:
            try:
                client.url("")
            except RegistryError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=head) for _ in range(4)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        elapsed = time.monotonic() - start
    assert len(errors) == 4 and len(set(errors)) == 1
    assert elapsed < 2.0  # the probes ran once, not once per thread
    assert silent.accepted == 2


@pytest.mark.parametrize("command", [
    ["pull", "{host}/demo:v1"],
    ["push", "demo:v1", "{host}/demo:v1"],
    ["list", "{host}/demo"],
])
def test_network_commands_give_up_on_a_silent_server_in_seconds(
    silent: _Listener, command: list[str], monkeypatch: pytest.MonkeyPatch, clean_environ: Path,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    if command[0] == "push":
        (tmp_path / "m.bin").write_bytes(b"w")
        (tmp_path / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  name: m\n  path: m.bin\n")
        assert _run(capsys, "pack", str(tmp_path), "-t", "demo:v1")[0] == 0
    before = sorted(p.name for p in (clean_environ / "kitops").rglob("*"))
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "0.5")
    code, out, err, elapsed = _run(capsys, *(part.format(host=silent.host) for part in command))
    assert (code, out) == (11, "")
    assert err == (f"pymodelkit: error: cannot reach registry {silent.host}: no answer over https or http within "
                   f"0.5 s [GET http://{silent.host}/v2/]\n")
    assert elapsed < 4.0
    assert sorted(p.name for p in (clean_environ / "kitops").rglob("*")) == before


def test_login_to_a_silent_server_gives_up_and_saves_nothing(
    silent: _Listener, monkeypatch: pytest.MonkeyPatch, clean_environ: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "0.5")
    monkeypatch.setattr("sys.stdin", _Stdin("pw\n"))
    code, out, err, elapsed = _run(capsys, "login", silent.host, "-u", "u", "--password-stdin")
    assert (code, out) == (11, "")
    assert err == (f"pymodelkit: error: cannot reach registry {silent.host}: no answer over https or http within "
                   f"0.5 s [GET http://{silent.host}/v2/]\n")
    assert elapsed < 4.0
    assert not (clean_environ / "kitops" / "credentials.json").exists()
    start = time.monotonic()
    with pytest.raises(RegistryError, match=r"timed out: nothing received for 0\.5 s"):
        login(silent.host, "u", "pw", plain_http=True, timeout_s=0.5)  # the library parameter
    assert time.monotonic() - start < 2.0


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text

    def isatty(self) -> bool:
        return False


# --- a slow answer ---------------------------------------------------------------------------------------------------


def test_the_limit_is_per_read_not_per_answer(trickle: _Listener) -> None:
    start = time.monotonic()
    with RegistryClient(trickle.host, plain_http=True, timeout_s=0.5) as client:
        response = client.send("GET", client.url("demo/blobs/sha256:00"), scopes=(), stream=True, retry=False)
        body = b"".join(response.iter_bytes())
        response.close()
    assert body == b"x" * _Trickle.size
    assert time.monotonic() - start > 1.5  # three times the limit in all, every gap under it


# ----- a blob's closing PUT may take longer to answer than the timeout, in proportion to the blob --------------------


def _put_whole_blob(client: RegistryClient, repository: str, path: Path) -> Digest:
    digest = Digest.from_bytes(path.read_bytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        put_blob(client, start_upload(client, repository), digest, FileSpan(fd, 0, path.stat().st_size))
    finally:
        os.close(fd)
    return digest


def test_a_large_blobs_closing_put_may_be_answered_after_the_timeout(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "0.5")
    proxy = fault_proxy(registry.url)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 128)  # 128 MiB: its answer may take 128 MiB / COMMIT_BYTES_PER_S = 2.7 s
    assert (128 << 20) / COMMIT_BYTES_PER_S > 2.0
    proxy.stall("PUT", r"digest=", seconds=1.5, direction="response")
    with RegistryClient(proxy.host, plain_http=True) as client:
        digest = _put_whole_blob(client, "timeouts/big", big)
        assert client.has_blob("timeouts/big", digest, 128 << 20)


def test_a_small_blobs_closing_put_still_times_out(
    registry: TestRegistry, fault_proxy: Callable[..., FaultProxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYMODELKIT_TIMEOUT", "0.5")
    proxy = fault_proxy(registry.url)
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(1 << 20))  # 1 MiB: its answer gets the timeout, 0.5 s
    proxy.stall("PUT", r"digest=", seconds=3.0, direction="response")
    start = time.monotonic()
    with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(RegistryError, match=r"timed out"):
        _put_whole_blob(client, "timeouts/small", small)
    assert time.monotonic() - start < 2.5
