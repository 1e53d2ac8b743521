"""The library is safe to call from several threads on different ModelKits sharing one store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymodelkit


def test_parallel_packs_and_unpacks_share_one_store(tmp_path: Path) -> None:
    store = pymodelkit.LocalStore(tmp_path / "home")
    sources = []
    for i in range(8):
        src = tmp_path / f"src{i}"
        (src / "model").mkdir(parents=True)
        (src / "model" / "w.bin").write_bytes(bytes([i]) * (100_000 + i))
        (src / "shared.txt").write_text("same in every kit\n")
        (src / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model\ndocs:\n  - path: shared.txt\n")
        sources.append(src)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: pymodelkit.pack(sources[i], tag=f"par/kit{i}:v1", store=store), range(8)))
    listed = {(row.repo, row.tags) for row in pymodelkit.list_modelkits(store)}
    assert listed == {(f"localhost/par/kit{i}", ("v1",)) for i in range(8)}
    assert len({r.digest for r in results}) == 8

    def unpack(i: int) -> bytes:
        out = tmp_path / f"out{i}"
        pymodelkit.unpack(f"par/kit{i}:v1", out, store=store)
        return (out / "model" / "w.bin").read_bytes()

    with ThreadPoolExecutor(max_workers=8) as pool:
        contents = list(pool.map(unpack, range(8)))
    assert contents == [bytes([i]) * (100_000 + i) for i in range(8)]
    assert store.fsck().ok
