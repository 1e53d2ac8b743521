"""push/pull orchestration against the real registry: the plan, progress events, and recovery from faults (cut
connections at random offsets, 5xx bursts, a registry restart) that ends byte-exact or in a clean error."""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import pymodelkit
from pymodelkit.errors import RegistryError
from pymodelkit.oci.reference import parse_reference
from pymodelkit.progress import ProgressEvent
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.retry import RetryPolicy
from pymodelkit.registry.transfer import TOTAL_PROGRESS_KEY, plan_push, pull, push
from tests.support.faultproxy import FaultProxy
from tests.support.registry import TestRegistry

FAST = RetryPolicy(attempts=6, base_delay_s=0.01, max_delay_s=0.05, budget_s=20.0)
CHUNK = 256 << 10
WEIGHTS = 1_000_000  # four PATCHes of CHUNK


def _pack(tmp_path: Path, ref: str, *, weights: int = WEIGHTS, seed: int = 0) -> tuple[pymodelkit.LocalStore, bytes]:
    src = tmp_path / f"src{seed}"
    (src / "model").mkdir(parents=True)
    data = random.Random(seed).randbytes(weights)
    (src / "model" / "w.bin").write_bytes(data)
    (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model\n")
    store = pymodelkit.LocalStore(tmp_path / f"home{seed}")
    pymodelkit.pack(src, tag=ref, store=store)
    return store, data


def _pull_weights(ref: str, tmp_path: Path, name: str) -> bytes:
    store = pymodelkit.LocalStore(tmp_path / f"pulled-{name}")
    pull(ref, store=store, plain_http=True, retry=FAST)
    out = tmp_path / f"out-{name}"
    pymodelkit.unpack(ref, out, store=store)
    assert store.fsck().ok
    return (out / "model" / "w.bin").read_bytes()


def _repo(name: str) -> str:
    return f"transfer/{name}-{secrets.token_hex(4)}"


def test_plan_uploads_then_skips_then_mounts(registry: TestRegistry, tmp_path: Path) -> None:
    ref_a = parse_reference(f"{registry.host}/{_repo('plan-a')}:v1")[0]
    ref_b = parse_reference(f"{registry.host}/{_repo('plan-b')}:v1")[0]
    store, _ = _pack(tmp_path, str(ref_a), weights=1000)
    desc, manifest = store.read_manifest(ref_a)
    with RegistryClient(registry.host) as client:
        plan = plan_push(client, store, ref_a, ref_a, manifest, manifest_digest=desc.digest)
        assert [s.action for s in plan.blobs] == ["upload", "upload"]
        assert plan.bytes_to_send == manifest.config.size + sum(d.size for d in manifest.layers or ())
        push(ref_a, store=store)
        assert [s.action for s in plan_push(client, store, ref_a, ref_a, manifest,
                                            manifest_digest=desc.digest).blobs] == ["skip", "skip"]
        to_b = plan_push(client, store, ref_a, ref_b, manifest, manifest_digest=desc.digest)
    assert [(s.action, s.mount_from) for s in to_b.blobs] == [("mount", ref_a.repository)] * 2
    assert to_b.bytes_to_send == 0


def test_progress_reports_every_blob_and_the_total(registry: TestRegistry, tmp_path: Path) -> None:
    ref = f"{registry.host}/{_repo('progress')}:v1"
    store, _ = _pack(tmp_path, ref)
    events: list[ProgressEvent] = []
    lock = threading.Lock()

    def record(event: ProgressEvent) -> None:
        with lock:
            events.append(event)

    result = push(ref, store=store, chunk_bytes=CHUNK, on_progress=record)
    _, manifest = store.read_manifest(parse_reference(ref)[0])
    sizes = {d.digest.short(): d.size for d in [manifest.config, *(manifest.layers or ())]}
    finals = {e.key: e for e in events if e.finished and e.key != TOTAL_PROGRESS_KEY}
    assert {k: (e.done, e.total) for k, e in finals.items()} == {k: (s, s) for k, s in sizes.items()}
    totals = [e for e in events if e.key == TOTAL_PROGRESS_KEY]
    assert totals[-1] == ProgressEvent(TOTAL_PROGRESS_KEY, result.bytes_uploaded, result.bytes_uploaded, True)
    layer = max(sizes, key=lambda k: sizes[k])
    done = [e.done for e in events if e.key == layer]
    assert done == sorted(done)  # no attempt failed, so nothing rolled back
    assert {CHUNK, 2 * CHUNK, 3 * CHUNK} <= set(done)  # the offsets the registry acknowledged


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        push("127.0.0.1:5000/a:b", store=pymodelkit.LocalStore(tmp_path), concurrency=0)
    with pytest.raises(ValueError, match="chunk_bytes must be at least 1"):
        push("127.0.0.1:5000/a:b", store=pymodelkit.LocalStore(tmp_path), chunk_bytes=0)


# ----- faults -------------------------------------------------------------------------------------------------


def test_patch_cut_at_random_offsets_recovers(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry.url)
    rng = random.Random(20260)
    store, data = _pack(tmp_path, f"{proxy.host}/transfer/seed:v1")
    source = parse_reference(f"{proxy.host}/transfer/seed:v1")[0]
    cuts = [rng.randrange(0, CHUNK) for _ in range(20)]
    for number, cut in enumerate(cuts):
        proxy.clear()
        # Cut a random PATCH (the first, second, … of the blob's chunks) after `cut` bytes of its body.
        proxy.cut("PATCH", "/blobs/uploads/", after_bytes=cut, times=1)
        ref = f"{proxy.host}/{_repo(f'patch{number}')}:v1"
        result = push(source, ref, store=store, chunk_bytes=CHUNK, plain_http=True, retry=FAST)
        assert result.digest == store.resolve(source).digest
    assert proxy.cuts == 20
    assert _pull_weights(ref, tmp_path, "patch") == data


def test_put_cut_at_random_offsets_recovers(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry.url)
    rng = random.Random(7)
    source = f"{proxy.host}/transfer/mono:v1"
    store, data = _pack(tmp_path, source, weights=300_000, seed=1)
    for number in range(20):
        proxy.clear()
        proxy.cut("PUT", "/blobs/uploads/", after_bytes=rng.randrange(0, 300_000), times=1)
        ref = f"{proxy.host}/{_repo(f'put{number}')}:v1"
        push(source, ref, store=store, plain_http=True, retry=FAST)  # monolithic: 300 kB < the default chunk
    assert proxy.cuts == 20
    assert _pull_weights(ref, tmp_path, "put") == data


def test_pull_cut_at_random_offsets_resumes(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    ref = f"{registry.host}/{_repo('pullcut')}:v1"
    store, data = _pack(tmp_path, ref, seed=2)
    push(ref, store=store)
    proxy = fault_proxy(registry.url)
    via_proxy = ref.replace(registry.host, proxy.host)
    rng = random.Random(99)
    for number in range(20):
        proxy.clear()
        proxy.cut("GET", "/blobs/sha256:", after_bytes=rng.randrange(0, WEIGHTS), direction="response", times=1)
        assert _pull_weights(via_proxy, tmp_path, f"get{number}") == data
    assert proxy.cuts == 20


def test_a_burst_of_5xx_is_ridden_out(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry.url)
    ref = f"{proxy.host}/{_repo('burst')}:v1"
    store, data = _pack(tmp_path, ref, seed=3)
    proxy.fail("PATCH", "/blobs/uploads/", status=500, times=2)
    proxy.fail(None, "/blobs/", status=503, times=3, retry_after=0)
    push(ref, store=store, chunk_bytes=CHUNK, plain_http=True, retry=FAST)
    assert proxy.injected == 5
    assert _pull_weights(ref, tmp_path, "burst") == data


def test_endless_5xx_ends_in_an_error_naming_the_blob(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    proxy = fault_proxy(registry.url)
    repo = _repo("endless")
    ref = f"{proxy.host}/{repo}:v1"
    store, _ = _pack(tmp_path, ref, seed=4)
    proxy.fail("PATCH", "/blobs/uploads/", status=503, times=None)
    with pytest.raises(RegistryError) as info:
        push(ref, store=store, chunk_bytes=CHUNK, plain_http=True, retry=FAST, concurrency=1)
    layer = max(store.read_manifest(parse_reference(ref)[0])[1].layers or (), key=lambda d: d.size)
    assert str(info.value).startswith(f"pushing blob {layer.digest} to {proxy.host}/{repo} failed after 6 attempts: ")
    assert "503 UNAVAILABLE" in str(info.value)
    assert (info.value.status, info.value.code) == (503, "UNAVAILABLE")
    with RegistryClient(proxy.host, plain_http=True) as client, pytest.raises(RegistryError) as missing:
        client.fetch_manifest(repo, "v1")
    assert missing.value.status == 404


def test_registry_restarted_mid_push(fresh_registry: TestRegistry, tmp_path: Path) -> None:
    ref = f"{fresh_registry.host}/{_repo('restart')}:v1"
    store, data = _pack(tmp_path, ref, seed=5)
    restarted = threading.Event()

    def restart_once(event: ProgressEvent) -> None:
        if event.key != TOTAL_PROGRESS_KEY and event.done >= CHUNK and not restarted.is_set():
            restarted.set()
            fresh_registry.restart()

    push(ref, store=store, chunk_bytes=CHUNK, on_progress=restart_once, retry=FAST, concurrency=1)
    assert restarted.is_set()
    assert _pull_weights(ref, tmp_path, "restart") == data


def test_no_partial_blob_is_left_after_a_failed_pull(
    registry: TestRegistry, tmp_path: Path, fault_proxy: Callable[..., FaultProxy]
) -> None:
    ref = f"{registry.host}/{_repo('pullfail')}:v1"
    store, _ = _pack(tmp_path, ref, seed=6)
    push(ref, store=store)
    proxy = fault_proxy(registry.url)
    proxy.cut("GET", "/blobs/sha256:", after_bytes=0, direction="response", times=None)  # no progress, ever
    target = pymodelkit.LocalStore(tmp_path / "target")
    with pytest.raises(RegistryError, match="failed after 6 attempts"):
        pull(ref.replace(registry.host, proxy.host), store=target, plain_http=True, retry=FAST)
    assert target.list_modelkits() == []
    assert os.listdir(target.storage / "ingest") == []


def test_a_token_expiring_mid_upload_is_renewed_without_losing_the_upload(
    registry_token: TestRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pymodelkit.registry.credentials import Credential, ExplicitCredentials

    server = registry_token.token_server
    assert server is not None and registry_token.username and registry_token.password
    server.token_lifetime_s = 2
    server.omit_expires_in = True  # the client believes the token lasts 60 s: the registry's 401 tells it otherwise
    credentials = ExplicitCredentials(Credential(username=registry_token.username, password=registry_token.password))
    ref = f"{registry_token.host}/{_repo('token')}:v1"
    store, data = _pack(tmp_path, ref, seed=7)
    waited = threading.Event()

    def wait_for_expiry(event: ProgressEvent) -> None:
        if event.key != TOTAL_PROGRESS_KEY and event.done >= CHUNK and not waited.is_set():
            waited.set()
            threading.Event().wait(2.5)

    with caplog.at_level(logging.INFO, logger="pymodelkit.registry.transfer"):
        push(ref, store=store, credentials=credentials, chunk_bytes=CHUNK, on_progress=wait_for_expiry,
             concurrency=1)
    assert waited.is_set()
    assert [r.getMessage() for r in caplog.records if "retry" in r.getMessage()] == []  # the session went on
    issued = server.tokens_issued
    assert issued >= 2
    pulled = pymodelkit.LocalStore(tmp_path / "pulled-token")
    pull(ref, store=pulled, credentials=credentials)
    pymodelkit.unpack(ref, tmp_path / "out-token", store=pulled)
    assert (tmp_path / "out-token" / "model" / "w.bin").read_bytes() == data
