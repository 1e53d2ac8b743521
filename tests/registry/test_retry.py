"""RetryTransport: idempotent requests are retried on temporary failures, bounded, honouring Retry-After.

These are protocol corner cases a real registry will not produce on demand, so ``httpx.MockTransport`` stands in
for the network (the fault-proxy tests in tests/flows cover the same paths against the real registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from pymodelkit.registry.retry import NO_RETRY_EXTENSION, RetryPolicy, RetryTransport

URL = "http://127.0.0.1:5000/v2/team/model/manifests/v1"


class _Script:
    """A MockTransport handler answering from a list: a status, or an exception class to raise."""

    def __init__(self, *answers: int | tuple[int, dict[str, str]] | type[httpx.TransportError]) -> None:
        self.answers = list(answers)
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, type):
            raise answer("connection reset by peer", request=request)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return httpx.Response(status, headers=headers)


def _client(script: _Script, policy: RetryPolicy, sleeps: list[float], clock: Callable[[], float] | None = None
            ) -> httpx.Client:
    transport = RetryTransport(httpx.MockTransport(script), policy, sleep=sleeps.append,
                               clock=clock or (lambda: 0.0))
    return httpx.Client(transport=transport)


POLICY = RetryPolicy(attempts=4, base_delay_s=0.5, max_delay_s=2.0, budget_s=30.0)


def test_get_is_retried_on_503_until_it_succeeds() -> None:
    script = _Script(503, 503, 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.get(URL).status_code == 200
    assert len(script.calls) == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] < 0.5 and 0.5 <= sleeps[1] < 1.0  # backoff 0.5, 1.0 with jitter in [0.5, 1)


def test_retry_after_seconds_is_honoured() -> None:
    script = _Script((429, {"Retry-After": "3"}), 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.head(URL).status_code == 200
    assert sleeps == [3.0]


def test_gives_up_after_the_attempts_and_returns_the_last_answer() -> None:
    script = _Script(500, 502, 503, 504, 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.get(URL).status_code == 504
    assert len(script.calls) == 4
    assert len(sleeps) == 3


def test_a_retry_after_beyond_the_time_budget_is_not_waited_for() -> None:
    script = _Script((503, {"Retry-After": "3600"}), 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.get(URL).status_code == 503
    assert sleeps == []


def test_the_time_budget_bounds_the_retries() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    script = _Script(*([503] * 50))
    policy = RetryPolicy(attempts=50, base_delay_s=1.0, max_delay_s=1.0, budget_s=5.0)
    transport = RetryTransport(httpx.MockTransport(script), policy, sleep=sleep, clock=lambda: now[0])
    with httpx.Client(transport=transport) as client:
        assert client.get(URL).status_code == 503
    assert now[0] <= 5.0
    assert 6 <= len(script.calls) <= 11  # waits of 0.5 to 1 s inside 5 s


def test_connection_errors_are_retried() -> None:
    script = _Script(httpx.ReadError, httpx.ConnectError, 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.get(URL).status_code == 200
    assert len(script.calls) == 3


def test_connection_errors_past_the_attempts_are_raised() -> None:
    script = _Script(*([httpx.ReadError] * 4))
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client, pytest.raises(httpx.ReadError):
        client.get(URL)
    assert len(script.calls) == 4


def test_unknown_host_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    transport = RetryTransport(httpx.MockTransport(handler), POLICY, sleep=lambda s: None)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get(URL)
    assert len(calls) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_methods_are_not_retried(method: str) -> None:
    script = _Script(503, 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.request(method, URL, content=b"x").status_code == 503
    assert len(script.calls) == 1


def test_requests_marked_no_retry_pass_through() -> None:
    script = _Script(503, 200)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        request = client.build_request("PUT", URL, content=b"{}", extensions={NO_RETRY_EXTENSION: True})
        assert client.send(request).status_code == 503
    assert len(script.calls) == 1


def test_streamed_bodies_are_not_retried() -> None:
    script = _Script(503, 201)
    sleeps: list[float] = []

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with _client(script, POLICY, sleeps) as client:
        assert client.put(URL, content=body()).status_code == 503
    assert len(script.calls) == 1


def test_manifest_put_with_bytes_is_retried_with_the_same_body() -> None:
    script = _Script(503, 201)
    sleeps: list[float] = []
    with _client(script, POLICY, sleeps) as client:
        assert client.put(URL, content=b'{"schemaVersion":2}').status_code == 201
    assert [call.content for call in script.calls] == [b'{"schemaVersion":2}'] * 2


def test_policy_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay_s=0.25, max_delay_s=3.0)
    assert [policy.delay_s(n, rand=lambda: 1.0) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert [policy.delay_s(n, rand=lambda: 0.0) for n in range(1, 4)] == [0.125, 0.25, 0.5]
    assert policy.delay_s(1, retry_after_s=7.5) == 7.5


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(budget_s=-1)
