"""`python -m bench.models`: the many-models service against the code of another git ref (default
`main`), side by side in one run, plus memory with one and two models and the Open Inference
Protocol's infer path.

Both servers run from the same virtualenv on the same store; the ref's code comes from a
temporary `git worktree`. Their runs alternate (ref, ours, ref, ours, ...) so the machine's
changing load falls on both alike, and every figure is the median of its runs. Writes
bench/MODELS.md with the machine, date, commit and load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import load
from bench.run import BackendResult, git_commit, log, machine, store_label
from bench.server import REPO_ROOT, Server, free_port, uvicorn_command
from model_store import ModelStore

TOLERANCE = 0.10  # the default model's /predict may be at most 10 % slower than the ref's


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A detached worktree of `ref`, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bench-ref-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(folder), ref],
        cwd=REPO_ROOT,
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)], cwd=REPO_ROOT, check=False
        )


def infer_body(window: list[float]) -> bytes:
    """An Open Inference Protocol request of one window, JSON tensor data."""
    tensor = {"name": "closes", "shape": [1, len(window)], "datatype": "FP64", "data": window}
    return json.dumps({"inputs": [tensor]}).encode()


def measure_predict(
    server: Server, body: bytes, script: Path, args: argparse.Namespace
) -> dict[str, float]:
    """Sequential p50 and wrk throughput/p50 of POST /predict with one window."""
    seconds = load.timed_posts(server.port, "/predict", body, load.JSON_HEADERS, args.requests)
    wrk = load.run_wrk(
        server.port, "/predict", script, connections=32, duration_s=args.seconds, threads=1
    )
    return {
        "seq_p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "wrk_rps": wrk.requests_per_s,
        "wrk_p50_ms": wrk.p50_ms,
        "wrk_errors": float(wrk.errors),
    }


def start(
    stack: ExitStack,
    label: str,
    scratch: Path,
    args: argparse.Namespace,
    root: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
) -> Server:
    """A server of the code in `root` serving the store's latest `args.name`, `env` added."""
    port = free_port()
    settings = {
        **os.environ,
        "MODEL_STORE_DIR": str(args.store),
        "MODEL_NAME": args.name,
        "MODEL_VERSION": "latest",
        "PREDICTOR_BACKEND": "onnx",
        "MODEL_POLL_SECONDS": "0",
        **(env or {}),
    }
    server = Server(
        uvicorn_command(port), port=port, env=settings, log_path=scratch / f"{label}.log", cwd=root
    )
    stack.enter_context(server)
    return server


def run(args: argparse.Namespace, scratch: Path) -> dict[str, BackendResult]:
    bundle = ModelStore(args.store).load(args.name)
    window = bundle.manifest.context.closes
    predict_body = json.dumps({"closes": window}).encode()
    predict_script = load.write_wrk_script(scratch, predict_body)
    infer_script = load.write_wrk_script(scratch, infer_body(window), "post_infer.lua")
    results = {key: BackendResult() for key in ("ref", "ours", "ours_two", "infer")}
    with checkout(args.ref) as ref_root, ExitStack() as stack:
        ref = start(stack, "ref", scratch, args, root=ref_root)
        ours = start(stack, "ours", scratch, args, env={"DEFAULT_MODEL": args.name})
        two = start(
            stack, "ours-two", scratch, args, env={"MODELS": "*", "DEFAULT_MODEL": args.name}
        )
        for server in (ref, ours, two):
            load.timed_posts(server.port, "/predict", predict_body, load.JSON_HEADERS, 200)
        load.timed_posts(
            ours.port, f"/v2/models/{args.name}/infer", infer_body(window), load.JSON_HEADERS, 200
        )
        results["ref"].add("rss_mb", ref.rss_mib())
        results["ours"].add("rss_mb", ours.rss_mib())
        results["ours_two"].add("rss_mb", two.rss_mib())
        results["ours_two"].add("models", float(len(json.loads(_get(two, "/models"))["models"])))
        for run_index in range(args.runs):
            for key, server in (("ref", ref), ("ours", ours)):
                for figure, value in measure_predict(
                    server, predict_body, predict_script, args
                ).items():
                    results[key].add(figure, value)
            seconds = load.timed_posts(
                ours.port,
                f"/v2/models/{args.name}/infer",
                infer_body(window),
                load.JSON_HEADERS,
                args.requests,
            )
            wrk = load.run_wrk(
                ours.port, f"/v2/models/{args.name}/infer", infer_script,
                connections=32, duration_s=args.seconds, threads=1,
            )  # fmt: skip
            results["infer"].add("seq_p50_ms", float(np.percentile(seconds, 50) * 1e3))
            results["infer"].add("wrk_rps", wrk.requests_per_s)
            results["infer"].add("wrk_p50_ms", wrk.p50_ms)
            results["infer"].add("wrk_errors", float(wrk.errors))
            log(
                f"run {run_index + 1}/{args.runs}: ref {results['ref'].runs['wrk_rps'][-1]:.0f} "
                f"req/s, ours {results['ours'].runs['wrk_rps'][-1]:.0f} req/s, infer "
                f"{wrk.requests_per_s:.0f} req/s"
            )
        results["ours_two"].add("rss_after_mb", two.rss_mib())
    return results


def _get(server: Server, path: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def report(
    args: argparse.Namespace,
    results: dict[str, BackendResult],
    loads: tuple[float, float],
    commit: str,
) -> tuple[str, bool]:
    ref, ours, two, infer = (results[k] for k in ("ref", "ours", "ours_two", "infer"))
    rps_ratio = ours.median("wrk_rps") / ref.median("wrk_rps")
    p50_ratio = ours.median("seq_p50_ms") / ref.median("seq_p50_ms")
    wrk_p50_ratio = ours.median("wrk_p50_ms") / ref.median("wrk_p50_ms")
    within = rps_ratio >= 1 - TOLERANCE and p50_ratio <= 1 + TOLERANCE
    info = machine()
    rows = [
        ("throughput, wrk c32 (req/s)", "wrk_rps", 0, f"{rps_ratio:.3f}"),
        ("sequential p50 (ms)", "seq_p50_ms", 3, f"{p50_ratio:.3f}"),
        ("wrk latency p50 (ms)", "wrk_p50_ms", 2, f"{wrk_p50_ratio:.3f}"),
        ("wrk errors", "wrk_errors", 0, ""),
        (
            "RSS after warm-up (MB)",
            "rss_mb",
            1,
            f"{ours.median('rss_mb') / ref.median('rss_mb'):.3f}",
        ),
    ]
    lines = [
        "# Many models: the default model's /predict against another ref, memory, OIP infer",
        "",
        "Written by `make bench-models` (bench/models.py, also part of `make bench`); do not edit "
        "by hand, rerun it.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit}; compared with `{args.ref}` ({args.ref_commit})",
        f"- machine: {info['cpu']}, {info['memory']} RAM; {info['os']}",
        f"- versions: {info['versions']}",
        f"- default model: `{args.name}` (latest) from the store `{args.store_label}`",
        f"- machine load (1-minute load average, other work included): {loads[0]:.1f} at the "
        f"start, {loads[1]:.1f} at the end",
        f"- method: {args.runs} alternating runs per server of {args.requests} sequential "
        f"requests and `wrk -t1 -c32 -d{args.seconds}s`; medians",
        "",
        "## Default model, `POST /predict` with one window",
        "",
        f"| figure | `{args.ref}` | this commit | ratio (this / ref) |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, digits, ratio in rows:
        lines.append(
            f"| {label} | {ref.median(key):,.{digits}f} | {ours.median(key):,.{digits}f} | {ratio} |"
        )
    lines += [
        "",
        f"Within 10 % (throughput ratio >= 0.90 and sequential p50 ratio <= 1.10): "
        f"{'yes' if within else 'NO'}.",
        "",
        "## Memory: one model against every model of the store",
        "",
        "| served | RSS after warm-up (MB) |",
        "| --- | --- |",
        f"| one model (`{args.name}`) | {ours.median('rss_mb'):.1f} |",
        f"| `MODELS=*` ({two.median('models'):.0f} models) | {two.median('rss_mb'):.1f} |",
        "",
        f"Each further model (one loaded version) costs about "
        f"{(two.median('rss_mb') - ours.median('rss_mb')) / max(two.median('models') - 1, 1):.1f} MB here.",
        "",
        "## Open Inference Protocol: `POST /v2/models/{name}/infer`, one window, JSON tensor",
        "",
        "| figure | infer | /predict (same server) |",
        "| --- | --- | --- |",
        f"| throughput, wrk c32 (req/s) | {infer.median('wrk_rps'):,.0f} | {ours.median('wrk_rps'):,.0f} |",
        f"| sequential p50 (ms) | {infer.median('seq_p50_ms'):.3f} | {ours.median('seq_p50_ms'):.3f} |",
        f"| wrk latency p50 (ms) | {infer.median('wrk_p50_ms'):.2f} | {ours.median('wrk_p50_ms'):.2f} |",
        f"| wrk errors | {infer.median('wrk_errors'):.0f} | {ours.median('wrk_errors'):.0f} |",
        "",
        "Infer requests are not batched across requests (each is a tensor of N windows already).",
        "",
        "All runs:",
        "",
        "```json",
        json.dumps({key: result.runs for key, result in results.items()}, indent=1),
        "```",
    ]
    return "\n".join(lines) + "\n", within


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models", help="model store")
    parser.add_argument("--name", default="fb-lstm", help="the default model")
    parser.add_argument("--ref", default="main", help="git ref whose code is compared")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per server")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per run")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("MODELS.md"), help="results file"
    )
    args = parser.parse_args(argv)
    args.store_label = store_label(args.store)
    args.store = args.store.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if load.wrk_missing("bench"):
        return 2
    commit = git_commit()
    args.ref_commit = subprocess.run(
        ["git", "rev-parse", "--short", args.ref], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    started = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-models-") as folder:
        results = run(args, Path(folder))
    text, within = report(args, results, (started, os.getloadavg()[0]), commit)
    args.output.write_text(text)
    print(text)
    print(f"wrote {args.output}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
