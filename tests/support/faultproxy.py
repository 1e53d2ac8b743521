"""A loopback TCP proxy that breaks HTTP/1.1 traffic on purpose: cut connections, stall, answer canned 5xx.

It sits in front of one upstream (the test registry) on ``127.0.0.1`` and forwards bytes unchanged, parsing just
enough HTTP/1.1 to find request and response boundaries (request line and headers; ``Content-Length`` or chunked
bodies; responses without a length end at close). Rules match by method and a regex searched in the request target
(path and query) and fire for their next ``times`` matching requests:

* :meth:`FaultProxy.cut` — close the connection after N bytes of a request body (client → upstream) or of a response
  body (upstream → client). A request body shorter than N is forwarded whole and the connection is then closed before
  any response reaches the client (the upstream acted on it; the client never hears).
* :meth:`FaultProxy.stall` — pause S seconds before forwarding (``after_bytes=None``) or after N body bytes.
* :meth:`FaultProxy.fail` — answer with a canned status (default 503, optionally ``Retry-After``) without contacting
  the upstream; the request body is read and dropped first.

The only rewriting, on by default: ``Location`` and ``WWW-Authenticate`` header values naming the upstream's
``host:port`` are made to name the proxy's (distribution builds absolute Locations from the ``Host`` header, which
passes through unchanged, so this matters only for upstreams configured with a fixed ``http.host``).
Every loop ends by itself: sockets time out after ``idle_timeout_s`` and :meth:`FaultProxy.stop` shuts them all.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["Direction", "FaultProxy", "ProxiedRequest", "Rule"]

Direction = Literal["request", "response"]
RuleKind = Literal["cut", "stall", "fail"]

_MAX_LINE = 65536
_MAX_HEADERS = 200
_BUFSIZE = 65536

_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_OCI_CODES = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


class _Closed(Exception):
    """The peer closed, timed out or sent something unparseable: drop the connection."""


class _Cut(Exception):
    """A cut rule fired: close both sides now."""


@dataclass
class Rule:
    """One fault, matched against ``METHOD target``; ``hits`` counts the times it fired."""

    kind: RuleKind
    method: str | None
    path: re.Pattern[str]
    times: int | None  # how many more matching requests it fires for; None: every one
    direction: Direction = "request"
    after_bytes: int | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: str | None = None
    body: bytes | None = None
    abort: bool = False
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path.search(target) is not None


@dataclass(frozen=True)
class ProxiedRequest:
    """What the proxy saw and did for one request; ``status`` is None when no response reached the client."""

    method: str
    target: str
    status: int | None
    actions: tuple[RuleKind, ...] = ()


@dataclass
class _Message:
    first_line: bytes
    lines: list[bytes]  # raw header lines without CRLF
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names; repeated headers joined by ", "

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def raw(self) -> bytes:
        return b"\r\n".join([self.first_line, *self.lines]) + b"\r\n\r\n"

    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for t in self.header("connection").split(",")}
        line = self.first_line
        version = line.split(b" ", 1)[0] if line.startswith(b"HTTP/") else line.rsplit(b" ", 1)[-1]
        return "close" in tokens or (version == b"HTTP/1.0" and "keep-alive" not in tokens)


def _read_message(reader: io.BufferedReader) -> _Message | None:
    """Read a request or response head; None on a clean EOF before its first byte."""
    try:
        if reader.peek(1)[:1] == b"\x16":  # a TLS ClientHello: we speak plain HTTP, refuse at once as a server would
            raise _Closed
        first = reader.readline(_MAX_LINE)
        while first in (b"\r\n", b"\n"):  # tolerate stray CRLF between messages
            first = reader.readline(_MAX_LINE)
    except (OSError, ValueError) as exc:
        raise _Closed from exc
    if not first:
        return None
    if not first.endswith(b"\n"):
        raise _Closed
    message = _Message(first.rstrip(b"\r\n"), [])
    for _ in range(_MAX_HEADERS):
        try:
            line = reader.readline(_MAX_LINE)
        except (OSError, ValueError) as exc:
            raise _Closed from exc
        if not line.endswith(b"\n"):
            raise _Closed
        line = line.rstrip(b"\r\n")
        if not line:
            return message
        message.lines.append(line)
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            message.headers[key] = f"{message.headers[key]}, {text}" if key in message.headers else text
    raise _Closed


Framing = tuple[Literal["none", "length", "chunked", "close"], int]


def _request_framing(message: _Message) -> Framing:
    if "chunked" in message.header("transfer-encoding").lower():
        return ("chunked", 0)
    length = message.header("content-length")
    if length:
        try:
            return ("length", int(length.split(",")[0]))
        except ValueError as exc:
            raise _Closed from exc
    return ("none", 0)


def _response_framing(message: _Message, request_method: str) -> Framing:
    parts = message.first_line.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if request_method.upper() == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return ("none", 0)
    framing = _request_framing(message)
    return ("close", 0) if framing[0] == "none" else framing


def _status_of(message: _Message) -> int:
    parts = message.first_line.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


class _UpstreamSender:
    """Sends request bytes upstream; once the upstream stops taking them, drops the rest (and says so)."""

    def __init__(self, upstream: socket.socket) -> None:
        self.upstream = upstream
        self.failed = False

    def __call__(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            self.upstream.sendall(data)
        except OSError:
            self.failed = True


class _Pump:
    """Forwards payload bytes to ``dst`` and applies a cut and/or a stall at payload offsets."""

    def __init__(
        self,
        send: Callable[[bytes], object],
        stop: threading.Event,
        cut_at: int | None = None,
        stall_at: int | None = None,
        stall_s: float = 0.0,
    ) -> None:
        self.send = send
        self.stop = stop
        self.cut_at = cut_at
        self.stall_at = stall_at
        self.stall_s = stall_s
        self.offset = 0

    def raw(self, data: bytes) -> None:
        if data:
            self.send(data)

    def payload(self, data: bytes) -> None:
        while data:
            end = self.offset + len(data)
            stops = [p for p in (self.cut_at, self.stall_at) if p is not None and self.offset <= p < end]
            if not stops:
                self.raw(data)
                self.offset = end
                return
            point = min(stops)
            head, data = data[: point - self.offset], data[point - self.offset :]
            self.raw(head)
            self.offset = point
            self._at_point()

    def finish(self) -> None:
        """The body ended: a stall or cut point at or beyond its end fires now."""
        if self.stall_at is not None and self.stall_at >= self.offset:
            self.stall_at = self.offset
        if self.cut_at is not None and self.cut_at >= self.offset:
            self.cut_at = self.offset
        self._at_point()

    def _at_point(self) -> None:
        if self.stall_at is not None and self.stall_at == self.offset:
            self.stall_at = None
            _pause(self.stop, self.stall_s)
        if self.cut_at is not None and self.cut_at == self.offset:
            raise _Cut


def _pump_body(reader: io.BufferedReader, framing: Framing, pump: _Pump) -> None:
    kind, length = framing
    try:
        if kind == "length":
            remaining = length
            while remaining > 0:
                chunk = reader.read1(min(_BUFSIZE, remaining))
                if not chunk:
                    raise _Closed
                remaining -= len(chunk)
                pump.payload(chunk)
        elif kind == "chunked":
            while True:
                size_line = reader.readline(_MAX_LINE)
                if not size_line.endswith(b"\n"):
                    raise _Closed
                pump.raw(size_line)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        trailer = reader.readline(_MAX_LINE)
                        if not trailer.endswith(b"\n"):
                            raise _Closed
                        pump.raw(trailer)
                        if trailer in (b"\r\n", b"\n"):
                            break
                    break
                remaining = size
                while remaining > 0:
                    chunk = reader.read1(min(_BUFSIZE, remaining))
                    if not chunk:
                        raise _Closed
                    remaining -= len(chunk)
                    pump.payload(chunk)
                crlf = reader.readline(_MAX_LINE)
                if not crlf.endswith(b"\n"):
                    raise _Closed
                pump.raw(crlf)
        elif kind == "close":
            while True:
                chunk = reader.read1(_BUFSIZE)
                if not chunk:
                    break
                pump.payload(chunk)
    except (OSError, ValueError) as exc:
        raise _Closed from exc
    pump.finish()


def _pause(stop: threading.Event, seconds: float) -> None:
    """Sleep, unless the proxy is stopping (then drop the connection)."""
    if stop.wait(seconds):
        raise _Closed


def _discard(data: bytes) -> None:
    return None


def _close(sock: socket.socket | None, *, abort: bool = False) -> None:
    if sock is None:
        return
    try:
        if abort:  # RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """Proxy ``127.0.0.1:<port>`` → ``target_url``; ``start()`` it (or use ``with``), ``stop()`` it.

    Counters: ``cuts``, ``stalls``, ``injected`` (canned errors sent) and ``requests`` (a :class:`ProxiedRequest`
    per request seen). ``url``/``host`` are what clients should use instead of the upstream's.
    """

    def __init__(self, target_url: str, *, rewrite_locations: bool = True, idle_timeout_s: float = 30.0) -> None:
        parts = urlsplit(target_url if "//" in target_url else f"http://{target_url}")
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"FaultProxy needs an http://host:port target, not {target_url!r}")
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"FaultProxy only fronts loopback upstreams, not {parts.hostname!r}")
        self.target_addr = (parts.hostname, parts.port)
        self.target_host = parts.netloc
        self.rewrite_locations = rewrite_locations
        self.idle_timeout_s = idle_timeout_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rules: list[Rule] = []
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._port = 0
        self._requests: list[ProxiedRequest] = []
        self._in_flight = 0  # exchanges read but not yet recorded
        self._idle = threading.Condition(self._lock)
        self.errors: list[Exception] = []  # unexpected exceptions in connection threads (should stay empty)
        self.cuts = 0
        self.stalls = 0
        self.injected = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._stop.clear()
        thread = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection, join the threads."""
        self._stop.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("fault proxy not started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: what goes in references instead of the upstream's host."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- rules -------------------------------------------------------------------------------------------------

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def cut(
        self,
        method: str | None,
        path: str,
        *,
        after_bytes: int,
        direction: Direction = "request",
        times: int | None = 1,
        abort: bool = False,
    ) -> Rule:
        """Close the connection after ``after_bytes`` of the body in ``direction`` (``abort``: RST, not FIN)."""
        if after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        return self._add(Rule("cut", method, re.compile(path), times, direction, after_bytes=after_bytes, abort=abort))

    def stall(
        self,
        method: str | None,
        path: str,
        *,
        seconds: float,
        after_bytes: int | None = None,
        direction: Direction = "response",
        times: int | None = 1,
    ) -> Rule:
        """Pause ``seconds`` before forwarding the message in ``direction``, or after ``after_bytes`` of its body."""
        return self._add(
            Rule("stall", method, re.compile(path), times, direction, after_bytes=after_bytes, seconds=seconds)
        )

    def fail(
        self,
        method: str | None,
        path: str,
        *,
        status: int = 503,
        times: int | None = 1,
        retry_after: str | int | None = None,
        body: bytes | None = None,
    ) -> Rule:
        """Answer the next ``times`` matching requests with ``status`` (an OCI error body unless ``body``)."""
        retry = None if retry_after is None else str(retry_after)
        return self._add(Rule("fail", method, re.compile(path), times, status=status, retry_after=retry, body=body))

    def clear(self) -> None:
        """Drop every rule (counters stay)."""
        with self._lock:
            self._rules = []

    def _take(self, kind: RuleKind, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and rule.matches(method, target):
                    if rule.times is not None:
                        rule.times -= 1
                    rule.hits += 1
                    if kind == "cut":
                        self.cuts += 1
                    elif kind == "stall":
                        self.stalls += 1
                    else:
                        self.injected += 1
                    return rule
        return None

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request seen so far, in order. Waits (at most 2 s) for exchanges still being forwarded, since a
        request is recorded only once its whole answer has gone out, a moment after the client has it."""
        deadline = time.monotonic() + 2.0
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(0.05)
            return list(self._requests)

    def settled_count(self) -> int:
        """The number of requests recorded once it stops changing (three polls 20 ms apart agree, at most 2 s): a
        request is recorded only after its whole answer is forwarded, so the last one may land just after the client
        has it."""
        count, stable, deadline = len(self.requests), 0, time.monotonic() + 2.0
        while stable < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
            now = len(self.requests)
            stable, count = (stable + 1, count) if now == count else (0, now)
        return count

    def requests_since(self, start: int) -> list[ProxiedRequest]:
        """The requests recorded after the first ``start``, once the count has settled."""
        self.settled_count()
        return self.requests[start:]

    def _record(self, method: str, target: str, status: int | None, actions: tuple[RuleKind, ...]) -> None:
        with self._lock:
            self._requests.append(ProxiedRequest(method, target, status, actions))

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self._lock:
                self._sockets.discard(sock)

    # -- serving -----------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stop.is_set():
                _close(client)
                return
            client.settimeout(self.idle_timeout_s)
            self._track(client)
            thread = threading.Thread(target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _connect_upstream(self) -> socket.socket:
        upstream = socket.create_connection(self.target_addr, timeout=self.idle_timeout_s)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(upstream)
        return upstream

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        abort = False
        client_reader = client.makefile("rb")
        upstream_reader: io.BufferedReader | None = None
        try:
            while not self._stop.is_set():
                request = _read_message(client_reader)
                if request is None:
                    return
                if upstream is None:
                    try:
                        upstream = self._connect_upstream()
                    except OSError:
                        self._send_canned(client, request, 502, None, None)
                        return
                    upstream_reader = upstream.makefile("rb")
                assert upstream_reader is not None
                with self._lock:
                    self._in_flight += 1
                try:
                    keep, abort = self._exchange(request, client, client_reader, upstream, upstream_reader)
                finally:
                    with self._idle:
                        self._in_flight -= 1
                        self._idle.notify_all()
                if not keep:
                    return
        except (_Closed, OSError):
            return
        except Exception as exc:  # a proxy bug must not kill the thread noisily; tests can check .errors
            with self._lock:
                self.errors.append(exc)
            return
        finally:
            client_reader.close()
            if upstream_reader is not None:
                upstream_reader.close()
            self._untrack(client)
            self._untrack(upstream)
            _close(client, abort=abort)
            _close(upstream, abort=abort)

    def _exchange(
        self,
        request: _Message,
        client: socket.socket,
        client_reader: io.BufferedReader,
        upstream: socket.socket,
        upstream_reader: io.BufferedReader,
    ) -> tuple[bool, bool]:
        """Handle one request; returns (keep the connection, abort it with RST)."""
        parts = request.first_line.decode("latin-1").split(" ")
        if len(parts) != 3:
            raise _Closed
        method, target = parts[0], parts[1]
        expect_continue = request.header("expect").lower() == "100-continue"
        request_framing = _request_framing(request)

        failure = self._take("fail", method, target)
        if failure is not None:
            if not expect_continue:  # the client is sending its body: read and drop it
                _pump_body(client_reader, request_framing, _Pump(_discard, self._stop))
            self._send_canned(client, request, failure.status, failure.retry_after, failure.body)
            self._record(method, target, failure.status, ("fail",))
            return (not expect_continue and not request.wants_close(), False)

        cut = self._take("cut", method, target)
        stall = self._take("stall", method, target)
        actions: tuple[RuleKind, ...] = tuple(r.kind for r in (cut, stall) if r is not None)

        def hooks(direction: Direction) -> tuple[int | None, int | None, float]:
            cut_at = cut.after_bytes if cut is not None and cut.direction == direction else None
            stall_at: int | None = None
            seconds = 0.0
            if stall is not None and stall.direction == direction:
                stall_at, seconds = (stall.after_bytes if stall.after_bytes is not None else -1), stall.seconds
            return cut_at, stall_at, seconds

        try:
            cut_at, stall_at, seconds = hooks("request")
            if stall_at == -1:
                _pause(self._stop, seconds)
                stall_at = None
            upstream.sendall(request.raw())
            response = None
            skipped_body = False
            if expect_continue:
                response = self._read_response(upstream_reader)
                if _status_of(response) == 100:
                    client.sendall(response.raw())
                    response = None
                else:
                    skipped_body = True  # a final answer without 100: the body may or may not follow
            if response is None:
                sender = _UpstreamSender(upstream)
                pump = _Pump(sender, self._stop, cut_at, stall_at, seconds)
                _pump_body(client_reader, request_framing, pump)
                # an upstream that answered early (say 401) and closed: the client still gets that answer
                response = self._read_response(upstream_reader)
                skipped_body = skipped_body or sender.failed
                while 100 <= _status_of(response) < 200:  # interim responses pass through
                    client.sendall(response.raw())
                    response = self._read_response(upstream_reader)
            elif cut_at is not None:
                raise _Cut

            cut_at, stall_at, seconds = hooks("response")
            self._rewrite(response)
            if stall_at == -1:
                _pause(self._stop, seconds)
                stall_at = None
            client.sendall(response.raw())
            framing = _response_framing(response, method)
            _pump_body(upstream_reader, framing, _Pump(client.sendall, self._stop, cut_at, stall_at, seconds))
        except _Cut:
            self._record(method, target, None, actions)
            return (False, cut.abort if cut is not None else False)
        except _Closed:
            self._record(method, target, None, actions)
            raise
        status = _status_of(response)
        self._record(method, target, status, actions)
        keep = not (request.wants_close() or response.wants_close() or framing[0] == "close" or skipped_body)
        return (keep, False)

    @staticmethod
    def _read_response(reader: io.BufferedReader) -> _Message:
        response = _read_message(reader)
        if response is None:
            raise _Closed
        return response

    def _rewrite(self, response: _Message) -> None:
        if not self.rewrite_locations:
            return
        old = f"//{self.target_host}".encode("latin-1")
        new = f"//{self.host}".encode("latin-1")
        for i, line in enumerate(response.lines):
            name = line.split(b":", 1)[0].strip().lower()
            if name in (b"location", b"www-authenticate") and old in line:
                response.lines[i] = line.replace(old, new)

    def _send_canned(
        self, client: socket.socket, request: _Message, status: int, retry_after: str | None, body: bytes | None
    ) -> None:
        if body is None:
            code = _OCI_CODES.get(status, "UNKNOWN")
            error = {"code": code, "message": "injected by the fault proxy", "detail": None}
            body = json.dumps({"errors": [error]}).encode("utf-8") + b"\n"
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Docker-Distribution-Api-Version: registry/2.0",
        ]
        if retry_after is not None:
            lines.append(f"Retry-After: {retry_after}")
        if request.wants_close() or request.header("expect").lower() == "100-continue":
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        method = request.first_line.split(b" ", 1)[0].upper()
        client.sendall(head if method == b"HEAD" else head + body)

    def iter_requests(self, method: str | None = None, path: str | None = None) -> Iterator[ProxiedRequest]:
        """The recorded requests, filtered by method and a regex searched in the target."""
        pattern = re.compile(path) if path is not None else None
        seen = self.requests
        for entry in seen:
            if method is not None and entry.method.upper() != method.upper():
                continue
            if pattern is not None and not pattern.search(entry.target):
                continue
            yield entry
