"""Push and pull a large ModelKit over loopback and compare with curl and skopeo against the same registry.

Usage: python benchmarks/push_pull.py [--size-gib 1] [--registry HOST:PORT] [--repeat 3] [--sweep-repeat 1]
       [--concurrency 1,2,4,8] [--chunk-mib 16,32,64,128] [--no-sweep | --sweep-only] [--dir DIR]

Packs a file of random bytes into a ModelKit (one uncompressed layer), starts Debian's ``docker-registry`` on
127.0.0.1 (``tests/support/registry.py``; or uses ``--registry``, an anonymous plain-HTTP registry), then measures in
the same run, each tool a child process whose wall time and peak RSS (through GNU time, else ``wait4``) are recorded:

* ``pymodelkit push`` to a fresh repository and ``pymodelkit pull`` into a fresh store (the issue's limit: peak RSS
  under 150 MB for each);
* ``curl``: POST, then a monolithic ``curl -T`` PUT of the same layer blob; and a ``curl -o`` download of it (no
  digest check);
* ``skopeo copy --preserve-digests oci:<our storage> docker://…`` (our ``storage/`` is an OCI layout; skopeo 1.9
  takes no ``@digest`` there, but the layout's only manifest needs no reference) and ``skopeo copy docker://… oci:…``.

A sweep then pushes a ModelKit of 4 layers of 256 MiB with each ``--concurrency`` and ``--chunk-size`` (plus one
monolithic PUT per layer), and pulls it with each concurrency. Figures are best-of-N MB/s (1 MB = 10^6 bytes) over
the child's whole life, start-up included; runs are interleaved. Everything lives in one temp dir, removed at the
end. Exit status 1 when a peak RSS is over the limit.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

import pymodelkit  # noqa: E402
from pymodelkit.oci.digest import Digest  # noqa: E402
from pymodelkit.oci.reference import parse_reference  # noqa: E402
from tests.support.registry import parse_registry_address, registry_server, wait_ready  # noqa: E402

RSS_LIMIT_MB = 150
MIB = 1 << 20
_WRITE_CHUNK = 4 * MIB
_CLI = "import sys; from pymodelkit.cli.main import main; sys.exit(main())"
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
TIME_BINARY = "/usr/bin/time"  # GNU time (Debian package `time`)


@dataclass(frozen=True)
class Run:
    """One child process: wall seconds from spawn to exit, and its peak resident set size."""

    seconds: float
    rss_mb: float


@dataclass(frozen=True)
class Figure:
    """Best-of-N of one measurement over ``size`` bytes."""

    label: str
    size: int
    runs: tuple[Run, ...]

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda run: run.seconds)

    @property
    def mb_s(self) -> float:
        return self.size / 1e6 / self.best.seconds

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median, of the run times: how noisy the figure is."""
        times = [run.seconds for run in self.runs]
        return (max(times) - min(times)) / statistics.median(times) if len(times) > 1 else 0.0

    @property
    def rss_mb(self) -> float:
        return max(run.rss_mb for run in self.runs)


class Bench:
    """The registry, the work directory and a clean environment for the children."""

    def __init__(self, work: Path, host: str, url: str) -> None:
        self.work = work
        self.host = host
        self.url = url
        self._serial = 0
        (work / "tmp").mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in _PROXY_VARIABLES and not k.startswith(("PYMODELKIT_", "KITOPS_", "REGISTRY_"))}
        self.env["TMPDIR"] = str(work / "tmp")
        # containers/image keeps a blob-info cache (where it saw each blob) and mounts a blob from a repository named
        # there instead of uploading it; as root the cache is /var/lib/containers/cache. Running skopeo as "rootless"
        # puts it under XDG_DATA_HOME, which is fresh for each child (see run()).
        self.env["_CONTAINERS_ROOTLESS_UID"] = str(os.getuid() or 65534)

    def fresh(self, name: str) -> str:
        """A repository name not used before in this run."""
        self._serial += 1
        return f"bench/{name}-{os.getpid()}-{self._serial}"

    def fresh_dir(self, name: str) -> Path:
        self._serial += 1
        return self.work / f"{name}-{self._serial}"

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[Run, str]:
        """Run a child to completion; its wall time, peak RSS and output. Raises on a non-zero exit.

        A child's ``ru_maxrss`` starts at its parent's resident size (Linux keeps the larger of the pre-exec and the
        new image's peak), so the child is started by GNU time, whose own few MB are the floor, when it is installed.
        """
        log, rss_file = self.work / "child.log", self.work / "child.rss"
        launcher = [TIME_BINARY, "-o", str(rss_file), "-f", "%M"] if Path(TIME_BINARY).is_file() else []
        # A fresh HOME and XDG dirs each time: no credentials, no blob-info cache.
        home = self.fresh_dir("home")
        (home / ".docker").mkdir(parents=True)
        env = dict(env if env is not None else self.env, HOME=str(home), DOCKER_CONFIG=str(home / ".docker"),
                   XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
                   XDG_CACHE_HOME=str(home / "cache"), XDG_RUNTIME_DIR=str(home / "run"))
        with log.open("w+b") as out:
            start = time.perf_counter()
            proc = subprocess.Popen([*launcher, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=self.work)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            output = out.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {output[-2000:]}")
        shutil.rmtree(home)
        rss_kib = int(rss_file.read_text().split()[-1]) if launcher else usage.ru_maxrss
        return Run(seconds, rss_kib / 1024), output

    def pymodelkit(self, home: Path, *args: str) -> Run:
        env = dict(self.env, KITOPS_HOME=str(home))
        return self.run([sys.executable, "-c", _CLI, "-q", *args], env=env)[0]


# ----- the measurements ---------------------------------------------------------------------------------------------


def push_ours(bench: Bench, home: Path, source: str, *, concurrency: int | None = None,
              chunk_bytes: int | None = None) -> tuple[Run, str]:
    destination = f"{bench.host}/{bench.fresh('ours')}:v1"
    options = ["--plain-http"]
    if concurrency is not None:
        options += ["--concurrency", str(concurrency)]
    if chunk_bytes is not None:
        options += ["--chunk-size", str(chunk_bytes)]
    return bench.pymodelkit(home, "push", *options, source, destination), destination


def pull_ours(bench: Bench, reference: str, expected: Digest, *, concurrency: int | None = None) -> Run:
    home = bench.fresh_dir("pulled")
    options = ["--plain-http"] + (["--concurrency", str(concurrency)] if concurrency is not None else [])
    run = bench.pymodelkit(home, "pull", *options, reference)
    descriptor, _ = pymodelkit.LocalStore(home).read_manifest(parse_reference(reference)[0])
    if descriptor.digest != expected:
        raise RuntimeError(f"pulled {descriptor.digest}, expected {expected}")
    shutil.rmtree(home)
    return run


def push_curl(bench: Bench, blob: Path, digest: Digest) -> Run:
    repository = bench.fresh("curl")
    post, headers = bench.run(["curl", "-sS", "-f", "--noproxy", "*", "-X", "POST", "-o", "/dev/null", "-D", "-",
                               f"{bench.url}/v2/{repository}/blobs/uploads/"])
    location = next(line.split(":", 1)[1].strip() for line in headers.splitlines()
                    if line.lower().startswith("location:"))
    location = str(httpx.URL(bench.url).join(location))
    url = f"{location}{'&' if '?' in location else '?'}digest={digest}"
    put, _ = bench.run(["curl", "-sS", "-f", "--noproxy", "*", "-H", "Content-Type: application/octet-stream",
                        "-H", "Expect:", "-T", str(blob), "-o", "/dev/null", url])
    _check_blob(bench, repository, digest, blob.stat().st_size)
    return Run(post.seconds + put.seconds, max(post.rss_mb, put.rss_mb))


def pull_curl(bench: Bench, repository: str, digest: Digest, size: int) -> Run:
    target = bench.fresh_dir("curl-blob")
    run, _ = bench.run(["curl", "-sS", "-f", "-L", "--noproxy", "*", "-o", str(target),
                        f"{bench.url}/v2/{repository}/blobs/{digest}"])
    if target.stat().st_size != size:
        raise RuntimeError(f"curl fetched {target.stat().st_size} bytes, expected {size}")
    target.unlink()
    return run


def push_skopeo(bench: Bench, storage: Path, manifest_digest: Digest) -> tuple[Run, str]:
    index = json.loads((storage / "index.json").read_text())
    if len(index["manifests"]) != 1:  # `oci:DIR` without a reference needs exactly one manifest in the index
        raise RuntimeError(f"{storage}/index.json lists {len(index['manifests'])} manifests, expected 1")
    reference = f"{bench.host}/{bench.fresh('skopeo')}:v1"
    run, _ = bench.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                        f"oci:{storage}", f"docker://{reference}"])
    with httpx.Client(trust_env=False) as client:
        response = client.head(f"{bench.url}/v2/{reference.split('/', 1)[1].replace(':', '/manifests/')}",
                               headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    if response.headers.get("docker-content-digest") != str(manifest_digest):
        raise RuntimeError(f"skopeo pushed {response.headers.get('docker-content-digest')}, not {manifest_digest}")
    return run, reference


def pull_skopeo(bench: Bench, reference: str) -> Run:
    layout = bench.fresh_dir("skopeo-layout")
    run, _ = bench.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}",
                        f"oci:{layout}:v1"])
    shutil.rmtree(layout)
    return run


def _check_blob(bench: Bench, repository: str, digest: Digest, size: int) -> None:
    with httpx.Client(trust_env=False) as client:
        response = client.head(f"{bench.url}/v2/{repository}/blobs/{digest}")
    if response.status_code != 200 or response.headers.get("content-length") != str(size):
        raise RuntimeError(f"blob {digest} not in {repository} after upload ({response.status_code})")


# ----- set-up and reporting -------------------------------------------------------------------------------------


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        written = 0
        while written < size:
            count = min(_WRITE_CHUNK, size - written)
            handle.write(os.urandom(count))
            written += count


def pack_kit(work: Path, name: str, sizes: Sequence[int]) -> tuple[Path, str, pymodelkit.PackResult]:
    """Pack files of random bytes, the first as the model and the others as datasets; a store of its own."""
    context = work / f"{name}-src"
    context.mkdir()
    kitfile = ["manifestVersion: 1.0.0", "model:", "  path: part0.bin"]
    if len(sizes) > 1:
        kitfile.append("datasets:")
    for number, size in enumerate(sizes):
        write_random(context / f"part{number}.bin", size)
        if number:
            kitfile += [f"  - name: part{number}", f"    path: part{number}.bin"]
    (context / "Kitfile").write_text("\n".join(kitfile) + "\n")
    home = work / f"{name}-home"
    source = f"bench/{name}:v1"
    packed = pymodelkit.pack(context, tag=source, store=pymodelkit.LocalStore(home))
    shutil.rmtree(context)
    return home, source, packed


Task = tuple[str, int, Callable[[], Run]]


def round_robin(tasks: Sequence[Task], repeat: int) -> list[Figure]:
    """Run each task ``repeat`` times, interleaved (one of each per round, so a slow spell hits all alike)."""
    runs: list[list[Run]] = [[] for _ in tasks]
    for _ in range(repeat):
        for (_, _, once), done in zip(tasks, runs, strict=True):
            done.append(once())
    return [Figure(label, size, tuple(done)) for (label, size, _), done in zip(tasks, runs, strict=True)]


def report(figure: Figure) -> None:
    print(f"  {figure.label:<34} {figure.mb_s:8.1f} MB/s   peak RSS {figure.rss_mb:6.1f} MB   "
          f"spread {figure.spread:4.0%}", flush=True)


@contextlib.contextmanager
def a_registry(work: Path, address: str | None) -> Iterator[tuple[str, str]]:
    if address is not None:
        host, url = parse_registry_address(address)
        wait_ready(url)
        yield host, url
        return
    with registry_server(work / "registry") as server:
        yield server.host, server.url


def missing(tool: str) -> bool:
    if shutil.which(tool) is None:
        print(f"  ({tool} not found: its figures are skipped)")
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0, help="size of the single-layer ModelKit")
    parser.add_argument("--registry", default=None, help="HOST:PORT of an anonymous plain-HTTP registry to use")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the best is reported)")
    parser.add_argument("--sweep-repeat", type=int, default=1, help="runs of each sweep cell (3 to choose defaults)")
    parser.add_argument("--concurrency", default="1,2,4,8", help="sweep: concurrencies")
    parser.add_argument("--chunk-mib", default="16,32,64,128", help="sweep: chunk sizes in MiB")
    parser.add_argument("--no-sweep", action="store_true", help="skip the concurrency/chunk-size sweep")
    parser.add_argument("--sweep-only", action="store_true", help="run only the sweep")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the work directory (default: $TMPDIR)")
    args = parser.parse_args()
    size = int(args.size_gib * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="pymodelkit-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        with a_registry(work, args.registry) as (host, url):
            bench = Bench(work, host, url)
            print("load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
            ok = args.sweep_only or single_layer(bench, size, args.repeat)
            if not args.no_sweep:
                sweep(bench, [int(c) for c in args.concurrency.split(",")],
                      [int(c) * MIB for c in args.chunk_mib.split(",")], args.sweep_repeat)
            print("\nload average at end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0 if ok else 1


def single_layer(bench: Bench, size: int, repeat: int) -> bool:
    home, source, packed = pack_kit(bench.work, "single", [size])
    layer = (packed.manifest.layers or ())[0]
    blob = pymodelkit.LocalStore(home).blob_path(layer.digest)
    print(f"ModelKit of one {size / (1 << 30):.2f} GiB layer, registry {bench.host}, {os.cpu_count()} CPUs, "
          f"best of {repeat} (spread: (slowest - fastest) / median)")
    if not Path(TIME_BINARY).is_file():
        print(f"  ({TIME_BINARY} not found: peak RSS figures include this script's own RSS as a floor)")
    pushed: list[str] = []

    def ours_push() -> Run:
        run, destination = push_ours(bench, home, source)
        pushed.append(destination)
        return run

    def pushed_repository() -> str:
        return parse_reference(pushed[-1])[0].repository

    storage = home / "storage"
    ups: list[Task] = [("pymodelkit push", size, ours_push)]
    downs: list[Task] = [("pymodelkit pull", size, lambda: pull_ours(bench, pushed[-1], packed.digest))]
    if not missing("curl"):
        ups.append(("curl POST + PUT -T", size, lambda: push_curl(bench, blob, layer.digest)))
        downs.append(("curl -o (no digest check)", size,
                      lambda: pull_curl(bench, pushed_repository(), layer.digest, layer.size)))
    if not missing("skopeo"):
        ups.append(("skopeo copy oci: -> docker://", size, lambda: push_skopeo(bench, storage, packed.digest)[0]))
        downs.append(("skopeo copy docker:// -> oci:", size, lambda: pull_skopeo(bench, pushed[-1])))
    figures = round_robin([*ups, *downs], repeat)
    for figure in figures:
        report(figure)
    startup = min(bench.pymodelkit(bench.work / "empty-home", "version").seconds for _ in range(repeat))
    print(f"  (pymodelkit start-up, `pymodelkit version`: {startup:.2f} s of each of its runs above)")
    ours_up, peers_up = figures[0], figures[1 : len(ups)]
    ours_down, peers_down = figures[len(ups)], figures[len(ups) + 1 :]
    print("ratios (pymodelkit MB/s / peer MB/s; > 1: we are faster)")
    for ours, peers in ((ours_up, peers_up), (ours_down, peers_down)):
        for peer in peers:
            print(f"  {ours.label} vs {peer.label:<30} {ours.mb_s / peer.mb_s:5.2f}x")
    within = ours_up.rss_mb < RSS_LIMIT_MB and ours_down.rss_mb < RSS_LIMIT_MB
    verdict = "OK" if within else "OVER"
    print(f"peak RSS push {ours_up.rss_mb:.1f} MB, pull {ours_down.rss_mb:.1f} MB (limit {RSS_LIMIT_MB} MB: {verdict})")
    shutil.rmtree(home)
    return within


def sweep(bench: Bench, concurrencies: Sequence[int], chunks: Sequence[int], repeat: int) -> None:
    layer_bytes, layers = 256 * MIB, 4
    home, source, packed = pack_kit(bench.work, "sweep", [layer_bytes] * layers)
    total = layer_bytes * layers
    columns = [*chunks, 2 * layer_bytes]  # the last: chunk size over the layer size, i.e. one PUT per layer
    pushed: list[str] = []

    def push_once(concurrency: int, chunk: int) -> Run:
        run, destination = push_ours(bench, home, source, concurrency=concurrency, chunk_bytes=chunk)
        pushed.append(destination)
        return run

    cells = [(c, chunk) for c in concurrencies for chunk in columns]
    tasks: list[Task] = [(f"{c}/{chunk}", total, functools.partial(push_once, c, chunk)) for c, chunk in cells]
    print(f"\nsweep: push of {layers} x {layer_bytes // MIB} MiB layers, MB/s (best of {repeat}, interleaved); "
          f"'PUT' = one monolithic PUT per layer")
    figures = dict(zip(cells, round_robin(tasks, repeat), strict=True))
    print("  concurrency " + "".join(f"{_column(c, layer_bytes):>10}" for c in columns) + "   peak RSS  spread")
    for concurrency in concurrencies:
        row = [figures[(concurrency, chunk)] for chunk in columns]
        print(f"  {concurrency:>11} " + "".join(f"{f.mb_s:10.1f}" for f in row)
              + f"   {max(f.rss_mb for f in row):5.1f} MB  {max(f.spread for f in row):4.0%}")
    chunked = {cell: figure.mb_s for cell, figure in figures.items() if cell[1] < layer_bytes}
    best = max(chunked, key=lambda cell: chunked[cell])
    print(f"  best chunked: concurrency {best[0]}, chunk {best[1] // MIB} MiB: {chunked[best]:.1f} MB/s")
    for label, keep in (("by concurrency", 0), ("by chunk size", 1)):
        means: dict[int, list[float]] = {}
        for cell, value in chunked.items():
            means.setdefault(cell[keep], []).append(value)
        shown = ", ".join(f"{_name(key, keep)} {statistics.mean(v):.0f}" for key, v in sorted(means.items()))
        print(f"  mean MB/s {label}: {shown}")
    reference = pushed[-1]
    pulls: list[Task] = [(f"pymodelkit pull, concurrency {c}", total,
                          functools.partial(pull_ours, bench, reference, packed.digest, concurrency=c))
                         for c in concurrencies]
    print(f"\nsweep: pull of {layers} x {layer_bytes // MIB} MiB layers (best of {repeat}, interleaved)")
    for figure in round_robin(pulls, repeat):
        report(figure)
    shutil.rmtree(home)


def _name(key: int, kind: int) -> str:
    return f"{key // MIB} MiB" if kind else f"c={key}"


def _column(chunk: int, layer_bytes: int) -> str:
    return "PUT" if chunk >= layer_bytes else f"{chunk // MIB} MiB"


if __name__ == "__main__":
    sys.exit(main())
