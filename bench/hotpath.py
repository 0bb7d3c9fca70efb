"""`python -m bench.hotpath`: the hot path of two builds side by side in one run.

Side A is the code of a git ref (default `main`, from a temporary worktree) or this checkout
with other settings; side B is this checkout. Both serve the same store from the same
virtualenv, with the access log on as `make run` does, and their runs alternate (A, B, A, B,
...) so the machine's changing load falls on both alike. Per run: 1,000 sequential one-window
`/predict` requests per side, in ten blocks that take turns between the sides, each block on
one keep-alive connection (as the peer comparison sends them); then, side after side,
`wrk -t1 -c32` on `/predict` and on `/models/{name}/predict`, with the server's CPU per
request. `--cpus` pins both servers to those cores (`taskset`; wrk then runs on the others when
there are any).

    python -m bench.hotpath                               # main against this checkout
    python -m bench.hotpath --ref HEAD~1                  # the last commit's change
    python -m bench.hotpath --ref . --a-env INFERENCE_THREAD=false --cpus 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import load
from bench.compare import Measured, PeerPlan, sequential
from bench.models import checkout
from bench.run import BackendResult, git_commit, log, machine, store_label
from bench.server import REPO_ROOT, Server, free_port, uvicorn_command
from model_store import ModelStore

SIDES = ("a", "b")
SEQUENTIAL_BLOCKS = 10  # each run's sequential requests, in blocks that take turns side by side


def sequential_plan(requests: int) -> PeerPlan:
    """The peer comparison's sequential plan for `requests` per side and run."""
    return PeerPlan(sequential_requests=requests, sequential_blocks=SEQUENTIAL_BLOCKS)


@dataclass(frozen=True)
class Side:
    """One server under comparison: its code, its extra settings, its name in the report."""

    label: str
    root: Path
    env: dict[str, str]


def parse_env(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` arguments as a dict (SystemExit naming a malformed one)."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench.hotpath: {pair!r} is not KEY=VALUE")
        env[key] = value
    return env


@contextmanager
def code_of(ref: str) -> Iterator[Path]:
    """This checkout for `.`, else a temporary worktree of `ref`."""
    if ref == ".":
        yield REPO_ROOT
        return
    with checkout(ref) as folder:
        yield folder


def start(stack: ExitStack, side: Side, args: argparse.Namespace, scratch: Path) -> Server:
    """A server of `side`'s code serving every model of the store, `args.name` the default."""
    port = free_port()
    command = uvicorn_command(port)
    if args.cpus:
        command = ["taskset", "-c", args.cpus, *command]
    settings = {
        **os.environ,
        "MODEL_STORE_DIR": str(args.store),
        "MODELS": "*",
        "DEFAULT_MODEL": args.name,
        "PREDICTOR_BACKEND": "onnx",
        "MODEL_POLL_SECONDS": "0",
        **side.env,
    }
    log_path = scratch / f"{side.label}.log"
    server = Server(command, port=port, env=settings, log_path=log_path, cwd=side.root)
    stack.enter_context(server)
    return server


def wrk_command_prefix(args: argparse.Namespace) -> list[str]:
    """taskset for wrk: the cores the servers do not use, when there are any."""
    if not args.cpus:
        return []
    pinned = {int(cpu) for cpu in args.cpus.split(",")}
    rest = sorted(set(os.sched_getaffinity(0)) - pinned)
    return ["taskset", "-c", ",".join(map(str, rest))] if rest else []


def wrk(
    server: Server, path: str, script: Path, args: argparse.Namespace
) -> tuple[load.WrkResult, float]:
    """One wrk run of `path` and the server's CPU milliseconds per request answered."""
    before = server.cpu_seconds()
    prefix = wrk_command_prefix(args)
    command = [
        *prefix,
        load.ensure_wrk(),
        "-t1",
        "-c32",
        f"-d{args.seconds}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{server.port}{path}",
    ]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=args.seconds + 60
    ).stdout
    result = load.parse_wrk(output)
    cpu_ms = (server.cpu_seconds() - before) * 1e3 / max(result.requests, 1)
    return result, cpu_ms


def measure(
    server: Server, body: bytes, script: Path, args: argparse.Namespace, result: BackendResult
) -> None:
    """One run of the wrk figures on `server`, added to `result`."""
    for key, path in (("default", "/predict"), ("named", f"/models/{args.name}/predict")):
        run, cpu_ms = wrk(server, path, script, args)
        result.add(f"{key}_rps", run.requests_per_s)
        result.add(f"{key}_p50_ms", run.p50_ms)
        result.add(f"{key}_p99_ms", run.p99_ms)
        result.add(f"{key}_errors", float(run.errors))
        result.add(f"{key}_cpu_ms", cpu_ms)
    result.add("rss_mb", server.rss_mib())


def run(sides: list[Side], args: argparse.Namespace, scratch: Path) -> dict[str, BackendResult]:
    window = ModelStore(args.store).load(args.name).manifest.context.closes
    body = json.dumps({"closes": window}).encode()
    script = load.write_wrk_script(scratch, body)
    results = {side.label: BackendResult() for side in sides}
    with ExitStack() as stack:
        servers = [start(stack, side, args, scratch) for side in sides]
        for server in servers:
            load.timed_posts(server.port, "/predict", body, load.JSON_HEADERS, 200)
        for index in range(args.runs):
            legs = [
                (server, "/predict", Measured(side.label, routes={"/predict": results[side.label]}))
                for side, server in zip(sides, servers, strict=True)
            ]
            sequential(legs, body, sequential_plan(args.requests), index)
            for side, server in zip(sides, servers, strict=True):
                measure(server, body, script, args, results[side.label])
            log(
                f"run {index + 1}/{args.runs}: "
                + ", ".join(
                    f"{side.label} {results[side.label].runs['default_rps'][-1]:.0f} req/s"
                    for side in sides
                )
            )
    return results


ROWS = (
    ("`/predict` wrk c32 (req/s)", "default_rps", 0),
    ("`/predict` wrk c32 p50 (ms)", "default_p50_ms", 2),
    ("`/predict` wrk c32 p99 (ms)", "default_p99_ms", 2),
    ("`/predict` server CPU per request (ms)", "default_cpu_ms", 3),
    ("`/models/{name}/predict` wrk c32 (req/s)", "named_rps", 0),
    ("`/models/{name}/predict` wrk c32 p99 (ms)", "named_p99_ms", 2),
    ("`/models/{name}/predict` server CPU per request (ms)", "named_cpu_ms", 3),
    ("sequential `/predict` p50 (ms)", "seq_p50_ms", 3),
    ("sequential `/predict` p99 (ms)", "seq_p99_ms", 3),
    ("wrk errors (both routes)", "errors", 0),
    ("RSS after the run (MB)", "rss_mb", 1),
)


def report(sides: list[Side], results: dict[str, BackendResult], args: argparse.Namespace) -> str:
    a, b = (results[side.label] for side in sides)
    for result in (a, b):
        for default, named in zip(
            result.runs["default_errors"], result.runs["named_errors"], strict=True
        ):
            result.add("errors", default + named)
    info = machine()
    lines = [
        "# Hot path: two builds side by side",
        "",
        "Written by `python -m bench.hotpath` (bench/hotpath.py); do not edit by hand, rerun it.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; commit {git_commit()}",
        f"- machine: {info['cpu']}, {info['memory']} RAM; {info['os']}",
        f"- versions: {info['versions']}",
        f"- store `{store_label(args.store)}`, every model served, `{args.name}` the default",
        f"- servers on cores: {args.cpus or 'any'}; machine load (1-minute average) "
        f"{args.loads[0]:.1f} at the start, {args.loads[1]:.1f} at the end",
        f"- method: {args.runs} runs, each of {args.requests} sequential requests per side in "
        f"{SEQUENTIAL_BLOCKS} blocks taking turns between the sides, then `wrk -t1 -c32 "
        f"-d{args.seconds}s` on each route, side after side; medians of the runs",
        *(f"- {side.label}: {describe(side)}" for side in sides),
        "",
        f"| figure | {sides[0].label} | {sides[1].label} | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, digits in ROWS:
        left, right = a.median(key), b.median(key)
        ratio = f"{right / left:.2f}" if left else ""
        lines.append(f"| {label} | {left:,.{digits}f} | {right:,.{digits}f} | {ratio} |")
    lines += [
        "",
        "All runs:",
        "",
        "```json",
        json.dumps({label: result.runs for label, result in results.items()}, indent=1),
        "```",
    ]
    return "\n".join(lines) + "\n"


def describe(side: Side) -> str:
    if side.root == REPO_ROOT:
        code = "this checkout"
    else:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=side.root, capture_output=True, text=True
        ).stdout.strip()
        code = f"the code of `{side.label}` ({commit})"
    settings = " ".join(f"{key}={value}" for key, value in side.env.items())
    return code + (f", {settings}" if settings else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models", help="model store")
    parser.add_argument("--name", default="fb-lstm", help="the default model")
    parser.add_argument("--ref", default="main", help="side A's code: a git ref, or . (this one)")
    parser.add_argument("--a-env", action="append", default=[], help="KEY=VALUE for side A")
    parser.add_argument("--b-env", action="append", default=[], help="KEY=VALUE for side B")
    parser.add_argument("--cpus", default="", help="taskset core list for both servers")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per run")
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    args.store = args.store.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if load.wrk_missing("bench.hotpath"):
        return 2
    started = os.getloadavg()[0]
    with code_of(args.ref) as root, tempfile.TemporaryDirectory(prefix="hotpath-") as folder:
        a_label = args.ref if args.ref != "." else "A"
        sides = [
            Side(a_label, root, parse_env(args.a_env)),
            Side("this checkout" if args.ref != "." else "B", REPO_ROOT, parse_env(args.b_env)),
        ]
        results = run(sides, args, Path(folder))
        args.loads = (started, os.getloadavg()[0])
        text = report(sides, results, args)
    if args.output:
        args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
