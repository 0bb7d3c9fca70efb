"""`python -m bench.intervals`: the cost of adaptive bands. The bundle with fixed-width intervals
(fb-lstm v2) and the one with a scale head and adaptive bands (the latest) are served by real
uvicorn subprocesses, one after the other and alternating, and measured alike: sequential
/predict latency (p50) and wrk throughput at 32 connections. Reports the ratios and writes
bench/INTERVALS.md with the machine, date and commit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import load
from bench.run import DEFAULT_DATA, Plan, build_workload, git_commit, log, machine, predict_wrk
from bench.server import REPO_ROOT, Server, app_server, serve_env
from model_store import ModelStore

ROUNDS = 3  # alternating rounds per bundle
SEQUENTIAL_REQUESTS = 2000
TARGET = 0.10  # adaptive within 10 % of fixed-width


def measure(server: Server, body: bytes, script: Path, plan: Plan) -> tuple[float, float]:
    """Sequential /predict p50 (ms) and wrk c32 throughput (req/s) on one running server."""
    load.timed_posts(server.port, "/predict", body, load.JSON_HEADERS, plan.warmup_requests)
    seconds = load.timed_posts(
        server.port, "/predict", body, load.JSON_HEADERS, SEQUENTIAL_REQUESTS
    )
    wrk = predict_wrk(server, script, plan)
    return float(np.percentile(seconds, 50) * 1e3), wrk.requests_per_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intervals", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--name", default="fb-lstm")
    parser.add_argument("--fixed", default="2", help="version with fixed-width intervals")
    parser.add_argument("--adaptive", default="latest", help="version with adaptive bands")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("INTERVALS.md"))
    args = parser.parse_args(argv)
    store = ModelStore(args.store)
    versions = {
        "fixed": store.load(args.name, args.fixed).version,
        "adaptive": store.load(args.name, args.adaptive).version,
    }
    if load.wrk_missing("bench.intervals"):
        return 2
    work = build_workload(args.data, store.load(args.name, args.adaptive).window)
    plan = Plan()
    commit, load_at_start = git_commit(), os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in versions}
    with tempfile.TemporaryDirectory(prefix="bench-intervals-") as folder:
        scratch = Path(folder)
        script = load.write_wrk_script(scratch, work.single)
        for round_index in range(args.rounds):
            for kind, version in versions.items():
                env = serve_env(args.store.resolve(), args.name, version)
                with app_server(env, scratch / f"{kind}.log") as server:
                    runs[kind].append(measure(server, work.single, script, plan))
                p50, rps = runs[kind][-1]
                log(
                    f"round {round_index + 1} {kind} v{version}: p50 {p50:.3f} ms, {rps:,.0f} req/s"
                )
    p50 = {kind: float(np.median([r[0] for r in values])) for kind, values in runs.items()}
    rps = {kind: float(np.median([r[1] for r in values])) for kind, values in runs.items()}
    latency_ratio, throughput_ratio = p50["adaptive"] / p50["fixed"], rps["adaptive"] / rps["fixed"]
    met = latency_ratio <= 1 + TARGET and throughput_ratio >= 1 - TARGET
    lines = [
        "# Adaptive bands against fixed-width intervals (`python -m bench.intervals`)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} at commit {commit} on "
        f"{machine()['cpu']}, load average {load_at_start:.1f} at the "
        f"start. {args.name} v{versions['fixed']} (fixed width) and v{versions['adaptive']} "
        f"(scale head, adaptive bands), ONNX Runtime, one uvicorn worker each, {args.rounds} "
        f"alternating rounds, medians; sequential: {SEQUENTIAL_REQUESTS} single-window "
        f"/predict requests; wrk: {plan.wrk_seconds} s at {plan.wrk_connections} connections.",
        "",
        "| bundle | /predict p50 (ms) | wrk c32 (req/s) |",
        "| --- | --- | --- |",
        *(
            f"| {kind} (v{versions[kind]}) | {p50[kind]:.3f} | {rps[kind]:,.0f} |"
            for kind in versions
        ),
        f"| adaptive / fixed | {latency_ratio:.3f} | {throughput_ratio:.3f} |",
        "",
        f"Target: within {TARGET:.0%} of the fixed-width bundle on both: "
        f"{'met' if met else 'NOT met'}.",
        "",
    ]
    print("\n".join(lines))
    args.output.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
