"""`make soak`: ten minutes of sustained /predict load against a real server (zero errors, still
ready, resident memory flat within 10%), recorded in bench/SOAK.md.

The load is wrk with 32 keep-alive connections, run in one-minute rounds; between rounds the
server must answer /readyz 200. Resident memory (RSS) is sampled every second; the baseline
is taken after a warm-up round, so allocator pools and first-use caches are not counted as
growth. The test-sized version of this runs in `make test` (tests/reliability).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import load
from bench.run import bundle_server
from bench.server import REPO_ROOT, Server

RSS_TOLERANCE = 0.10
BODY = json.dumps({"closes": [round(190.0 + 0.37 * i, 2) for i in range(40)]}).encode()


class RssSampler:
    """Samples the server's resident memory every `interval_s` in a thread until stopped."""

    def __init__(self, server: Server, interval_s: float = 1.0):
        self.server = server
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.server.rss_mib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def readyz_status(server: Server) -> int:
    """Status of GET /readyz, 0 while nothing answers."""
    try:
        return server.client.get("/readyz", timeout=2.0).status_code
    except httpx.TransportError:
        return 0


def commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--name", default="fb-lstm")
    parser.add_argument("--minutes", type=int, default=10, help="sustained load after warm-up")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup-seconds", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "SOAK.md")
    args = parser.parse_args()

    rounds: list[tuple[int, load.WrkResult, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        folder = Path(scratch)
        script = load.write_wrk_script(folder, BODY)
        log_path = folder / "server.log"
        with bundle_server("onnx", args.store, args.name, "latest", log_path) as server:
            print(f"warm-up: {args.warmup_seconds} s of load", flush=True)
            warmup = load.run_wrk(
                server.port, "/predict", script, connections=args.connections,
                duration_s=args.warmup_seconds, threads=2,
            )  # fmt: skip
            baseline = server.rss_mib()
            with RssSampler(server) as sampler:
                for minute in range(1, args.minutes + 1):
                    result = load.run_wrk(
                        server.port, "/predict", script, connections=args.connections,
                        duration_s=60, threads=2,
                    )  # fmt: skip
                    ready = readyz_status(server)
                    rounds.append((minute, result, ready, server.rss_mib()))
                    print(
                        f"minute {minute}: {result.requests} requests, {result.errors} errors, "
                        f"p99 {result.p99_ms:.1f} ms, readyz {ready}, RSS {rounds[-1][3]:.1f} MB",
                        flush=True,
                    )
            alive = server.alive()
            log_tail = server.log_tail(200)

    requests = sum(result.requests for _, result, _, _ in rounds)
    errors = sum(result.errors for _, result, _, _ in rounds) + warmup.errors
    peak = max(sampler.samples, default=baseline)
    growth = (peak - baseline) / baseline
    passed = (
        errors == 0
        and all(ready == 200 for _, _, ready, _ in rounds)
        and growth <= RSS_TOLERANCE
        and alive
        and "Traceback" not in log_tail
    )
    lines = [
        "# Soak: sustained load on the default (ONNX Runtime) backend",
        "",
        f"`make soak` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        f"Bundle `{args.name}` from `{args.store.name}/`; wrk, {args.connections} connections, "
        f"POST /predict; warm-up {args.warmup_seconds} s ({warmup.requests} requests, "
        f"{warmup.errors} errors), then {args.minutes} one-minute rounds.",
        "",
        "| minute | requests | errors | requests/s | p50 ms | p99 ms | /readyz | RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {minute} | {r.requests} | {r.errors} | {r.requests_per_s:.0f} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {ready} | {rss:.1f} |"
            for minute, r, ready, rss in rounds
        ),
        "",
        f"Total: {requests} requests, {errors} errors. RSS after warm-up {baseline:.1f} MB, "
        f"peak {peak:.1f} MB over {len(sampler.samples)} one-second samples "
        f"({growth:+.1%}; limit +{RSS_TOLERANCE:.0%}). Server alive at the end: {alive}.",
        "",
        f"Result: **{'PASS' if passed else 'FAIL'}**",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
