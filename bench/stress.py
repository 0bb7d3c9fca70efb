"""`make stress`: the resource bounds under abuse, on one real worker, recorded in bench/STRESS.md.

1. One 15 MB CSV to /forecast alone: time and peak resident memory (the reference answer).
2. The burst: 16 clients upload that CSV back to back for a minute (honouring `Retry-After` on a
   503) while wrk drives /predict with 32 connections and /livez is probed every 50 ms. Every
   answer must be a 200 identical to the reference or the documented 503 `overloaded` with
   `Retry-After`; peak memory, /predict and /livez p99 are recorded, then memory 10 s after.
3. 3,000 connections send a partial request head and stop; a normal request meanwhile must
   succeed, and the head deadline must close every one of them.

The CSV is generated (a random walk, Yahoo's columns and number format), never read from disk.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np

from bench import load
from bench.run import bundle_server
from bench.server import HOST, REPO_ROOT, Server
from bench.soak import BODY, RssSampler, commit

TARGETS = {
    "peak_rss_mb": 400.0,
    "livez_p99_ms": 100.0,
    "predict_p99_ms": 50.0,
    "rss_back_within_mb": 30.0,
    "lone_seconds": 3.0,
    "lone_peak_mb": 250.0,
}
WINDOW = 40


def synthetic_csv(target_bytes: int, seed: int = 0) -> bytes:
    """A Yahoo Finance-shaped daily CSV of a random walk, at least `target_bytes` long."""
    row_bytes = 72  # "YYYY-MM-DD" + five prices with six decimals + an 8-digit volume
    rows = target_bytes // row_bytes + 1
    rng = np.random.default_rng(seed)
    days = np.busday_offset("1000-01-01", np.arange(rows), roll="forward")
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, rows)))
    lines = [
        f"{day},{c:.6f},{c * 1.01:.6f},{c * 0.99:.6f},{c:.6f},{c:.6f},{10_000_000 + i}\n"
        for i, (day, c) in enumerate(zip(days, closes, strict=True))
    ]
    return ("Date,Open,High,Low,Close,Adj Close,Volume\n" + "".join(lines)).encode()


def post_csv(client: httpx.Client, data: bytes) -> httpx.Response:
    return client.post("/forecast", content=data, headers={"Content-Type": "text/csv"})


def check_reference(server: Server, data: bytes, answer: httpx.Response) -> None:
    """The lone answer is right: one point per row after the first window, each actual the
    CSV's close, predictions equal to /predict's on the same windows."""
    if answer.status_code != 200:
        raise SystemExit(f"the lone /forecast failed: {answer.status_code} {answer.text[:300]}")
    points = answer.json()["points"]
    closes = np.array([float(line.split(b",")[4]) for line in data.splitlines()[1:]])
    if len(points) != len(closes) - WINDOW or points[-1]["actual"] != closes[-1]:
        raise SystemExit("the lone /forecast answer does not match its CSV")
    for index in (0, len(points) // 2, len(points) - 1):
        window = closes[index : index + WINDOW].tolist()
        single = httpx.post(server.base_url + "/predict", json={"closes": window}).json()
        if abs(single["next_close"] - points[index]["predicted"]) > 1e-6 * single["next_close"]:
            raise SystemExit(f"point {index} differs from /predict on its window")


@dataclass
class Burst:
    """What the uploaders and the /livez prober saw."""

    statuses: Counter[str] = field(default_factory=Counter)
    wrong: int = 0
    livez_ms: list[float] = field(default_factory=list)
    livez_failures: int = 0
    upload_seconds: list[float] = field(default_factory=list)
    cpu: CpuMeter | None = None


class CpuMeter:
    """CPU seconds used over a span by the server and by the load generators (wrk, the prober
    and this process' uploaders), which share the machine's cores with it."""

    def __init__(self, server: Server):
        self.server = server
        self.wall = self.server_cpu = self.clients_cpu = 0.0

    @staticmethod
    def _clients() -> float:
        own, children = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def __enter__(self) -> CpuMeter:
        self._started = (time.perf_counter(), self.server.cpu_seconds(), self._clients())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, server, clients = self._started
        self.wall = time.perf_counter() - wall
        self.server_cpu = self.server.cpu_seconds() - server
        self.clients_cpu = self._clients() - clients

    def summary(self) -> str:
        cores = os.cpu_count() or 1
        return (
            f"server {self.server_cpu / self.wall:.2f} cores, load generators "
            f"{self.clients_cpu / self.wall:.2f} cores, of {cores}"
        )


def upload_loop(server: Server, data: bytes, reference: bytes, until: float, burst: Burst) -> None:
    with httpx.Client(base_url=server.base_url, timeout=300) as client:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                answer = post_csv(client, data)
            except httpx.HTTPError as exc:
                burst.statuses[f"transport error {type(exc).__name__}"] += 1
                continue
            code = (
                answer.json().get("error", {}).get("code", "") if answer.status_code != 200 else ""
            )
            if answer.status_code == 200:
                burst.upload_seconds.append(time.perf_counter() - started)
                burst.wrong += answer.content != reference
                burst.statuses["200"] += 1
            elif (
                answer.status_code == 503
                and code == "overloaded"
                and "retry-after" in answer.headers
            ):
                burst.statuses["503 overloaded"] += 1
                time.sleep(float(answer.headers["retry-after"]))
            else:
                burst.statuses[f"{answer.status_code} {code}"] += 1


def livez_probe(base_url: str, stop: EventType, latencies: Connection) -> None:
    """GET /livez every 50 ms until `stop`; sends the list of (milliseconds, ok) when done.

    It runs in a process of its own: in a thread beside the 16 uploaders it would wait for
    their GIL and measure the benchmark, not the server."""
    samples: list[tuple[float, bool]] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while not stop.wait(0.05):
            started = time.perf_counter()
            try:
                ok = client.get("/livez").status_code == 200
            except httpx.HTTPError:
                ok = False
            samples.append(((time.perf_counter() - started) * 1000, ok))
    latencies.send(samples)


class LivezProber:
    """The /livez probe process, started and stopped as a context manager."""

    def __init__(self, server: Server, burst: Burst):
        context = multiprocessing.get_context("spawn")
        self.burst = burst
        self._stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=livez_probe, args=(server.base_url, self._stop, send), daemon=True
        )

    def __enter__(self) -> LivezProber:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        samples = self._receive.recv()
        self._process.join()
        self.burst.livez_ms = [ms for ms, _ in samples]
        self.burst.livez_failures = sum(not ok for _, ok in samples)


def run_burst(
    server: Server, data: bytes, reference: bytes, folder: Path, seconds: int, uploaders: int
) -> tuple[Burst, load.WrkResult, list[float]]:
    """wrk -c32 on /predict and the /livez prober for `seconds`, with `uploaders` clients
    uploading `data` meanwhile (none: the baseline of the same run)."""
    burst = Burst()
    script = load.write_wrk_script(folder, BODY)
    wrk_result: list[load.WrkResult] = []
    wrk = threading.Thread(
        target=lambda: wrk_result.append(
            load.run_wrk(
                server.port, "/predict", script, connections=32, duration_s=seconds, threads=2
            )
        )
    )
    until = time.monotonic() + seconds
    clients = [
        threading.Thread(target=upload_loop, args=(server, data, reference, until, burst))
        for _ in range(uploaders)
    ]
    with (
        RssSampler(server, interval_s=0.05) as sampler,
        CpuMeter(server) as cpu,
        LivezProber(server, burst),
    ):
        for thread in (wrk, *clients):
            thread.start()
        for thread in (wrk, *clients):
            thread.join()
    burst.cpu = cpu
    return burst, wrk_result[0], sampler.samples


def slow_headers(
    server: Server, connections: int, deadline_s: float
) -> tuple[int, int, bool, float]:
    """(connections opened, closed by the server, a normal request succeeded meanwhile, seconds
    until the last was closed)."""
    selector = selectors.DefaultSelector()
    opened = 0
    for _ in range(connections):
        sock = socket.create_connection((HOST, server.port))
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: stress\r\nX-Slow: ")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        opened += 1
    started = time.monotonic()
    normal_ok = httpx.get(server.base_url + "/livez", timeout=30).status_code == 200
    closed = 0
    while closed < opened and time.monotonic() - started < deadline_s + 30:
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except ConnectionError:
                chunk = b""
            if not chunk:
                selector.unregister(sock)
                sock.close()
                closed += 1
    elapsed = time.monotonic() - started
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return opened, closed, normal_ok, elapsed


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--name", default="fb-lstm")
    parser.add_argument("--csv-mb", type=float, default=15.0)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--baseline-seconds", type=int, default=15)
    parser.add_argument("--uploaders", type=int, default=16)
    parser.add_argument("--slow-connections", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "STRESS.md")
    args = parser.parse_args()

    data = synthetic_csv(int(args.csv_mb * 1e6))
    rows = data.count(b"\n") - 1
    load_before = os.getloadavg()
    with TemporaryDirectory(prefix="stress-") as scratch:
        folder = Path(scratch)
        server = bundle_server("onnx", args.store, args.name, "latest", folder / "server.log")
        with server:
            idle_rss = server.rss_mib()
            print(f"lone 15 MB CSV ({len(data) / 1e6:.1f} MB)", flush=True)
            with RssSampler(server, interval_s=0.02) as lone_sampler:
                started = time.perf_counter()
                lone = httpx.post(
                    server.base_url + "/forecast", content=data,
                    headers={"Content-Type": "text/csv"}, timeout=600,
                )  # fmt: skip
                lone_seconds = time.perf_counter() - started
            check_reference(server, data, lone)
            lone_peak = max(lone_sampler.samples, default=idle_rss)
            print("baseline: wrk -c32 and /livez alone", flush=True)
            calm, calm_wrk, _ = run_burst(
                server, data, lone.content, folder, args.baseline_seconds, 0
            )
            time.sleep(2)
            start_rss = server.rss_mib()
            print(f"burst: {args.uploaders} uploaders for {args.seconds} s + wrk -c32", flush=True)
            burst, wrk, samples = run_burst(
                server, data, lone.content, folder, args.seconds, args.uploaders
            )
            load_burst = os.getloadavg()
            time.sleep(10)
            after_rss = server.rss_mib()
            print(f"slow heads: {args.slow_connections} connections", flush=True)
            opened, closed, normal_ok, close_seconds = slow_headers(
                server, args.slow_connections, deadline_s=10.0
            )
            alive = server.process is not None and server.process.poll() is None
            log_tail = server.log_tail(200)

    peak = max(samples, default=start_rss)
    unexpected = sum(
        n for status, n in burst.statuses.items() if status not in ("200", "503 overloaded")
    )
    checks = [
        ("Lone 15 MB CSV: time", f"{lone_seconds:.2f} s", f"<= {TARGETS['lone_seconds']:.0f} s",
         lone_seconds <= TARGETS["lone_seconds"]),
        ("Lone 15 MB CSV: peak RSS", f"{lone_peak:.0f} MB (idle {idle_rss:.0f} MB)",
         f"<= {TARGETS['lone_peak_mb']:.0f} MB", lone_peak <= TARGETS["lone_peak_mb"]),
        ("Burst: peak RSS", f"{peak:.0f} MB (start {start_rss:.0f} MB)",
         f"<= {TARGETS['peak_rss_mb']:.0f} MB", peak <= TARGETS["peak_rss_mb"]),
        ("Burst: answers other than 200 / 503 overloaded", str(unexpected), "0", unexpected == 0),
        ("Burst: accepted answers differing from the reference", str(burst.wrong), "0",
         burst.wrong == 0),
        ("Burst: /predict p99 (wrk -c32)", f"{wrk.p99_ms:.1f} ms ({wrk.requests} requests, "
         f"{wrk.errors} errors)", f"<= {TARGETS['predict_p99_ms']:.0f} ms",
         wrk.p99_ms <= TARGETS["predict_p99_ms"] and wrk.errors == 0),
        ("Burst: /livez p99 (every 50 ms)", f"{percentile(burst.livez_ms, 99):.1f} ms "
         f"({len(burst.livez_ms)} probes, {burst.livez_failures} failed)",
         f"<= {TARGETS['livez_p99_ms']:.0f} ms",
         percentile(burst.livez_ms, 99) <= TARGETS["livez_p99_ms"] and burst.livez_failures == 0),
        ("RSS 10 s after the burst", f"{after_rss:.0f} MB ({after_rss - start_rss:+.0f} MB)",
         f"within {TARGETS['rss_back_within_mb']:.0f} MB of the start",
         abs(after_rss - start_rss) <= TARGETS["rss_back_within_mb"]),
        ("Slow request heads closed by the deadline", f"{closed} of {opened} in {close_seconds:.1f} s",
         "all", closed == opened),
        ("Normal request during the slow heads", "200" if normal_ok else "failed", "200", normal_ok),
        ("Server alive, no traceback in its log", str(alive and "Traceback" not in log_tail), "True",
         alive and "Traceback" not in log_tail),
    ]  # fmt: skip
    uploads = burst.upload_seconds
    calm_livez = percentile(calm.livez_ms, 99)
    lines = [
        "# Stress: bounded resources under abuse (one worker, default settings)",
        "",
        f"`make stress` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}, {machine()}.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; "
        f"at the end of the burst: {', '.join(f'{x:.1f}' for x in load_burst)} "
        "(the machine is shared: timings are noisy).",
        f"Bundle `{args.name}` (latest) from `{args.store.name}/`; a generated "
        f"{len(data) / 1e6:.1f} MB CSV of {rows} rows; {args.uploaders} uploaders "
        f"for {args.seconds} s honouring Retry-After, wrk -c32 on /predict throughout.",
        "",
        "| check | measured | target | |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {value} | {target} | {'pass' if ok else 'FAIL'} |" for name, value, target, ok in checks),
        "",
        "Burst answers: " + ", ".join(f"{status}: {n}" for status, n in sorted(burst.statuses.items())) + ".",
        f"Accepted uploads took {percentile(uploads, 50):.1f} s median, "
        f"{max(uploads, default=float('nan')):.1f} s at most (queueing included).",
        "",
        f"Side by side, the same server without uploads ({args.baseline_seconds} s, same run): "
        f"/predict p99 {calm_wrk.p99_ms:.1f} ms ({calm_wrk.requests_per_s:.0f} req/s), /livez "
        f"p99 {calm_livez:.1f} ms. Under the burst: /predict p99 x"
        f"{wrk.p99_ms / calm_wrk.p99_ms:.1f}, {wrk.requests_per_s:.0f} req/s; /livez p99 x"
        f"{percentile(burst.livez_ms, 99) / calm_livez:.1f}.",
        "",
        "CPU used, from the server's and the load generators' own counters (the load generators "
        "are wrk, the /livez probe process and the uploaders; they share the cores with the "
        f"server): without uploads {calm.cpu.summary() if calm.cpu else 'n/a'}; during the burst "
        f"{burst.cpu.summary() if burst.cpu else 'n/a'}.",
        "",
    ]  # fmt: skip
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
