"""`make bench`: our server against its peers (bench/compare.py), and with --keras the default
(ONNX Runtime) backend against the Keras backend, side by side.

Real servers run as subprocesses on 127.0.0.1, never two under load at the same time (they would
share the two cores). Every figure is the median of several runs; the run counts are
printed and written into bench/RESULTS.md with the machine, date, commit and load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil

from bench import compare, load
from bench.record import BackendResult, log
from bench.server import REPO_ROOT, Server, app_server
from model_store import (
    ModelStore,
    SeriesError,
    parse_price_csv,
    prediction_windows,
    sliding_windows,
)

DEFAULT_DATA = Path(
    os.environ.get("SHARED_DATA_DIR", REPO_ROOT / ".." / "shared" / "data")
).resolve()
BACKENDS = ("onnx", "keras")
PARITY_TOLERANCE = 1e-3  # dollars, between the two backends on the January windows


@dataclass(frozen=True)
class Plan:
    """How many runs of each measurement; the Keras side gets fewer sequential requests because
    each takes ~100 ms, but the same 20 s of wrk."""

    cold_starts: int = 3
    sequential_runs: int = 3
    sequential_requests: dict[str, int] = field(
        default_factory=lambda: {"onnx": 2000, "keras": 100}
    )
    wrk_runs: dict[str, int] = field(default_factory=lambda: {"onnx": 3, "keras": 1})
    wrk_seconds: int = 20
    wrk_connections: int = 32
    wrk_threads: int = 1
    timed_requests: dict[str, int] = field(default_factory=lambda: {"onnx": 15, "keras": 5})
    inprocess_calls: dict[str, int] = field(default_factory=lambda: {"onnx": 5000, "keras": 100})
    warmup_requests: int = 200


QUICK = Plan(
    cold_starts=1,
    sequential_runs=1,
    sequential_requests={"onnx": 300, "keras": 20},
    wrk_runs={"onnx": 1, "keras": 1},
    wrk_seconds=3,
    timed_requests={"onnx": 3, "keras": 2},
    inprocess_calls={"onnx": 500, "keras": 20},
    warmup_requests=20,
)


@dataclass(frozen=True)
class Workload:
    """The request bodies, all built from the real FB CSVs."""

    single: bytes  # {"closes": last `window` training closes}
    batch: bytes  # {"windows": 1,000 training windows}
    batch_size: int
    forecast_csv: bytes  # the whole FB training CSV
    forecast_rows: int
    january_windows: list[list[float]]  # the 21 test-month windows (tail of training + test)


def build_workload(data_dir: Path, window: int, batch_size: int = 1000) -> Workload:
    """Request bodies from FB_training_data.csv and FB_test_data.csv."""
    train_csv = (data_dir / "FB_training_data.csv").read_bytes()
    train = parse_price_csv(train_csv).values
    test = parse_price_csv((data_dir / "FB_test_data.csv").read_bytes()).values
    windows, _ = sliding_windows(train, window)
    if len(windows) < batch_size:
        raise SystemExit(f"FB_training_data.csv gives only {len(windows)} windows of {window}")
    january = prediction_windows(np.concatenate([train[-window:], test]), window)[: len(test)]
    return Workload(
        single=json.dumps({"closes": train[-window:].tolist()}).encode(),
        batch=json.dumps({"windows": windows[:batch_size].tolist()}).encode(),
        batch_size=batch_size,
        forecast_csv=train_csv,
        forecast_rows=len(train),
        january_windows=january.tolist(),
    )


def bundle_server(
    backend: str, store: Path, name: str, version: str, log_path: Path, workers: int = 1
) -> Server:
    """The server under measurement: `backend` serving `name` `version` from `store`, never
    polling the store, access log on as deployed."""
    settings = {
        "MODEL_STORE_DIR": str(store),
        "MODEL_NAME": name,
        "MODEL_VERSION": version,
        "PREDICTOR_BACKEND": backend,
        "MODEL_POLL_SECONDS": "0",
        # The Keras backend would otherwise print its oneDNN/CPU banners into the log.
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    options = ["--workers", str(workers)] if workers > 1 else []
    # Short polls: the cold start being measured is about a second, so 2 ms of slack is fine.
    return app_server(settings, log_path, *options, poll_s=0.002)


def predict_wrk(server: Server, script: Path, plan: Plan) -> load.WrkResult:
    """One wrk run of POST /predict at the plan's concurrency, length and threads."""
    return load.run_wrk(
        server.port,
        "/predict",
        script,
        connections=plan.wrk_connections,
        duration_s=plan.wrk_seconds,
        threads=plan.wrk_threads,
    )


def measure_wrk(server: Server, script: Path, plan: Plan, result: BackendResult) -> load.WrkResult:
    """One wrk run of /predict at the plan's concurrency, recorded into `result` with the
    server's CPU per request over the run."""
    cpu_before = server.cpu_seconds()
    wrk = predict_wrk(server, script, plan)
    result.add_wrk(wrk, server.cpu_seconds() - cpu_before)
    return wrk


def measure_backend(
    backend: str, args: argparse.Namespace, plan: Plan, work: Workload, scratch: Path
) -> BackendResult:
    """Cold starts, then on the last server: warm-up, RSS, sequential latency, batch, forecast,
    wrk, and the January windows for the parity check."""
    result = BackendResult()
    log_path = scratch / f"{backend}.log"
    for _ in range(plan.cold_starts - 1):
        with bundle_server(backend, args.store, args.name, args.version, log_path) as server:
            result.add("cold_start_s", server.cold_start_s)
    with bundle_server(backend, args.store, args.name, args.version, log_path) as server:
        result.add("cold_start_s", server.cold_start_s)
        log(f"{backend}: cold start {result.runs['cold_start_s']} s")

        load.timed_posts(
            server.port, "/predict", work.single, load.JSON_HEADERS, plan.warmup_requests
        )
        result.add("rss_mb", server.rss_mib())

        count = plan.sequential_requests[backend]
        for _ in range(plan.sequential_runs):
            seconds = load.timed_posts(
                server.port, "/predict", work.single, load.JSON_HEADERS, count
            )
            result.add("seq_p50_ms", np.percentile(seconds, 50) * 1e3)
            result.add("seq_p99_ms", np.percentile(seconds, 99) * 1e3)
        log(f"{backend}: sequential p50 {result.runs['seq_p50_ms']} ms ({count} requests/run)")

        for figure, path, body, headers in (
            ("batch_ms", "/predict", work.batch, load.JSON_HEADERS),
            ("forecast_ms", "/forecast", work.forecast_csv, load.CSV_HEADERS),
        ):
            load.timed_posts(server.port, path, body, headers, 1)  # first-call allocations
            for seconds in load.timed_posts(
                server.port, path, body, headers, plan.timed_requests[backend]
            ):
                result.add(figure, seconds * 1e3)
        log(
            f"{backend}: batch {result.median('batch_ms'):.1f} ms, "
            f"forecast {result.median('forecast_ms'):.1f} ms"
        )

        script = load.write_wrk_script(scratch, work.single)
        for _ in range(plan.wrk_runs[backend]):
            wrk = measure_wrk(server, script, plan, result)
            log(f"{backend}: wrk {wrk.requests_per_s:.0f} req/s, {wrk.errors} errors")
        result.add("peak_rss_mb", server.rss_mib())

        client = load.Client(server.port)
        try:
            answer = client.post_json("/predict", {"windows": work.january_windows})
        finally:
            client.close()
        result.january = [float(v) for v in answer["predictions"]]

    inprocess = measure_inprocess(backend, args, plan.inprocess_calls[backend])
    result.add("inproc_p50_ms", inprocess["p50_ms"])
    result.add("inproc_p99_ms", inprocess["p99_ms"])
    log(f"{backend}: in-process predictor p50 {inprocess['p50_ms']:.3f} ms")
    return result


def measure_inprocess(backend: str, args: argparse.Namespace, calls: int) -> dict[str, float]:
    """Predictor latency on one window in a fresh interpreter (see bench/inprocess.py)."""
    command = [
        sys.executable,
        "-m",
        "bench.inprocess",
        backend,
        str(args.store),
        args.name,
        args.version,
        str(calls),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if completed.returncode != 0:
        raise RuntimeError(f"in-process {backend} measurement failed:\n{completed.stderr[-2000:]}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def measure_workers(
    args: argparse.Namespace, plan: Plan, work: Workload, scratch: Path, workers: int
) -> BackendResult:
    """Throughput of the default backend with several uvicorn workers (one wrk run)."""
    result = BackendResult()
    log_path = scratch / f"onnx-workers{workers}.log"
    with bundle_server("onnx", args.store, args.name, args.version, log_path, workers) as server:
        result.add("cold_start_s", server.cold_start_s)
        # Enough warm-up connections that every worker has answered a few requests.
        script = load.write_wrk_script(scratch, work.single)
        load.run_wrk(server.port, "/predict", script, connections=8, duration_s=1, threads=1)
        result.add("rss_mb", server.rss_mib())
        wrk = measure_wrk(server, script, plan, result)
        log(f"onnx x{workers} workers: wrk {wrk.requests_per_s:.0f} req/s, {wrk.errors} errors")
    return result


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    lower_is_better: bool
    target: float | None = None  # for the default backend, one worker
    digits: int = 1


FIGURES = (
    Figure("cold_start_s", "cold start to /readyz 200", "s", True, 1.0, 2),
    Figure("rss_mb", "RSS after warm-up", "MB", True, 120.0),
    Figure("seq_p50_ms", "sequential /predict p50", "ms", True, 1.0, 3),
    Figure("seq_p99_ms", "sequential /predict p99", "ms", True, None, 3),
    Figure("wrk_rps", "throughput, wrk c32 20 s", "req/s", False, 2500.0, 0),
    Figure("wrk_errors", "wrk errors", "", True, 0.0, 0),
    Figure("wrk_p50_ms", "wrk latency p50", "ms", True, None, 2),
    Figure("wrk_p99_ms", "wrk latency p99", "ms", True, None, 2),
    Figure("cpu_per_request_ms", "server CPU per request under wrk", "ms", True, None, 3),
    Figure("batch_ms", "1,000-window batch /predict", "ms", True, 100.0),
    Figure("forecast_ms", "/forecast of 1,258-row CSV", "ms", True, 150.0),
    Figure("inproc_p50_ms", "in-process predictor, 1 window, p50", "ms", True, None, 3),
    Figure("inproc_p99_ms", "in-process predictor, 1 window, p99", "ms", True, None, 3),
    Figure("peak_rss_mb", "RSS after the whole run", "MB", True),
)
RATIO_TARGETS = {"seq_p50_ms": 100.0, "wrk_rps": 200.0}


def _format(value: float, digits: int) -> str:
    if np.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def table_rows(results: dict[str, BackendResult]) -> list[list[str]]:
    """Figure, default, keras, ratio, target and verdict for every figure."""
    onnx, keras = results["onnx"], results["keras"]
    rows = []
    for figure in FIGURES:
        ours, theirs = onnx.median(figure.key), keras.median(figure.key)
        ratio = float("nan")
        if figure.key != "wrk_errors" and ours > 0 and theirs > 0:
            ratio = theirs / ours if figure.lower_is_better else ours / theirs
        targets, verdicts = [], []
        if figure.target is not None:
            sign = "<=" if figure.lower_is_better else ">="
            targets.append(f"{sign} {figure.target:,g}")
            met = ours <= figure.target if figure.lower_is_better else ours >= figure.target
            verdicts.append("met" if met else "MISSED")
        if figure.key in RATIO_TARGETS:
            targets.append(f"ratio >= {RATIO_TARGETS[figure.key]:.0f}x")
            verdicts.append("met" if ratio >= RATIO_TARGETS[figure.key] else "MISSED")
        rows.append(
            [
                f"{figure.label} ({figure.unit})" if figure.unit else figure.label,
                _format(ours, figure.digits),
                _format(theirs, figure.digits),
                "" if np.isnan(ratio) else f"{ratio:,.1f}x",
                ", ".join(targets),
                ", ".join(verdicts),
            ]
        )
    return rows


HEADER = ["figure", "onnx (default)", "keras", "ratio", "target", "verdict"]


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(HEADER, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """CPU, cores, memory, OS and the versions of what is being measured."""
    model = "unknown"
    # The CPU's model name is only in /proc/cpuinfo (psutil and platform do not report it).
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = []
    for package in ("onnxruntime", "tensorflow-cpu", "keras", "fastapi", "uvicorn", "numpy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": f"{model}, {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))})",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "versions": ", ".join(versions),
    }


def git_commit() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", *argv], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "app", "model_store")
    return commit + (" (app/ or model_store/ modified)" if dirty else "")


def parity(results: dict[str, BackendResult]) -> float:
    onnx = np.array(results["onnx"].january)
    keras = np.array(results["keras"].january)
    if onnx.shape != keras.shape or onnx.size == 0:
        raise RuntimeError("the backends returned different numbers of January predictions")
    return float(np.max(np.abs(onnx - keras)))


def header_lines(
    args: argparse.Namespace, commit: str, load_averages: tuple[float, float]
) -> list[str]:
    """The results file's title, date, commit, machine, versions, bundle and load."""
    info = machine()
    return [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py); do not edit by hand, rerun it.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit}",
        f"- machine: {info['cpu']}, {info['memory']} RAM; {info['os']}",
        f"- versions: {info['versions']}",
        f"- bundle: `{args.name}` version `{args.version}` from the store `{args.store_label}`",
        f"- machine load (1-minute load average, other work included): {load_averages[0]:.1f} "
        f"at the start, {load_averages[1]:.1f} at the end",
        "",
    ]


KERAS_METHOD = "### Method of the Keras comparison"


def keras_lines(
    *,
    args: argparse.Namespace,
    plan: Plan,
    work: Workload,
    results: dict[str, BackendResult],
    workers: BackendResult | None,
    max_diff: float,
) -> list[str]:
    """The Keras comparison's part of bench/RESULTS.md: the table, the worker scaling, the method."""
    rows = table_rows(results)
    onnx = results["onnx"]
    lines = [
        "## Default (ONNX Runtime) backend against the Keras backend, one uvicorn worker each",
        "",
        render_markdown(rows),
        "",
        f"Parity: both backends answer the {len(work.january_windows)} January 2020 windows with "
        f"a max abs difference of {max_diff:.2e} dollars (limit {PARITY_TOLERANCE:g}).",
        "",
        "Ratios are keras / default for times and memory, default / keras for throughput.",
        "",
        "The keras backend serves each request with one `model.predict` call (the tutorial's "
        "way), one request at a time in a worker thread; the default backend batches "
        "concurrent single-window requests into one ONNX Runtime call (app/batching.py).",
        "",
        KERAS_METHOD,
        "",
        "Each backend runs as a real `uvicorn app.main:app` subprocess on 127.0.0.1, one backend "
        "after the other (never both at once). Every figure is the median of its runs:",
        "",
        f"- cold start: {plan.cold_starts} spawns per backend, from just before the spawn to the "
        "first `/readyz` 200 (polled every 2 ms).",
        f"- RSS: `VmRSS` of the server process after {plan.warmup_requests} warm-up `/predict` "
        "requests; the last row is the same after everything else.",
        f"- sequential: {plan.sequential_runs} runs of "
        f"{plan.sequential_requests['onnx']} (default) / {plan.sequential_requests['keras']} "
        "(keras) `/predict` requests with 40 closes, one after the other on one keep-alive "
        "connection (a plain socket sending ready-made request bytes, so the client adds "
        "almost nothing); p50 and p99 per run.",
        f"- throughput: `wrk -t{plan.wrk_threads} -c{plan.wrk_connections} "
        f"-d{plan.wrk_seconds}s --timeout 30s`, {plan.wrk_runs['onnx']} run(s) for the default "
        f"backend and {plan.wrk_runs['keras']} for keras; errors = socket errors + non-2xx. wrk "
        "shares the two cores with the server.",
        f"- batch: `/predict` with {work.batch_size:,} windows; /forecast: the "
        f"{work.forecast_rows:,}-row FB training CSV as a `text/csv` body; "
        f"{plan.timed_requests['onnx']} (default) / {plan.timed_requests['keras']} (keras) "
        "requests after one untimed one.",
        f"- in-process: the app's predictor on one window, {plan.inprocess_calls['onnx']} / "
        f"{plan.inprocess_calls['keras']} calls in a fresh interpreter, no HTTP; the difference "
        "to the sequential p50 is the HTTP and JSON overhead "
        f"({onnx.median('seq_p50_ms') - onnx.median('inproc_p50_ms'):.3f} ms for the default "
        "backend).",
        "",
        "All runs (every value, before taking the median):",
        "",
        "```json",
        json.dumps({backend: result.runs for backend, result in results.items()}, indent=1),
        "```",
    ]
    if workers is not None:
        one = onnx.median("wrk_rps")
        many = workers.median("wrk_rps")
        lines[lines.index(KERAS_METHOD) : lines.index(KERAS_METHOD)] = [
            f"### Both cores: `uvicorn --workers {args.workers}` (default backend)",
            "",
            "| workers | throughput (req/s) | wrk p99 (ms) | errors | server CPU per request (ms) "
            "| RSS, all processes (MB) |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| 1 | {one:,.0f} | {onnx.median('wrk_p99_ms'):.2f} | "
            f"{onnx.median('wrk_errors'):.0f} | {onnx.median('cpu_per_request_ms'):.3f} | "
            f"{onnx.median('rss_mb'):.0f} |",
            f"| {args.workers} | {many:,.0f} | {workers.median('wrk_p99_ms'):.2f} | "
            f"{workers.median('wrk_errors'):.0f} | {workers.median('cpu_per_request_ms'):.3f} | "
            f"{workers.median('rss_mb'):.0f} |",
            "",
            f"Scaling: {many / one:.2f}x with {args.workers} workers (one wrk run, same settings). "
            f"wrk runs on the same {os.cpu_count()} cores, so this is what the cores left to the "
            "server allow; with the load generated elsewhere, the capacity is about "
            "workers / (CPU per request): "
            f"{args.workers / workers.median('cpu_per_request_ms') * 1e3:,.0f} req/s.",
            "",
        ]
    return lines


def write_results(path: Path, sections: list[list[str]]) -> str:
    """bench/RESULTS.md from its sections, in order."""
    text = "\n".join(line for section in sections for line in section) + "\n"
    path.write_text(text)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models", help="model store")
    parser.add_argument("--name", default="fb-lstm", help="model name in the store")
    parser.add_argument("--version", default="latest", help="bundle version (latest or N)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the FB CSVs")
    parser.add_argument(
        "--peers",
        type=peer_list,
        default=list(compare.PEERS.values()),
        help=f"comma-separated peers to compare with (default: {','.join(compare.PEERS)})",
    )
    parser.add_argument(
        "--peer-venvs",
        type=Path,
        default=compare.PEER_VENVS,
        help="folder of the peers' own venvs (make peer-kserve)",
    )
    parser.add_argument(
        "--keras",
        action="store_true",
        help="also the default backend against PREDICTOR_BACKEND=keras, and --workers",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="with --keras, also measure this many uvicorn workers (0 = skip)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few short runs, a smoke test (no RESULTS.md unless --output)",
    )
    parser.add_argument("--output", type=Path, default=None, help="results file (bench/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.output is None and not args.quick:
        args.output = Path(__file__).with_name("RESULTS.md")
    args.store_label = store_label(args.store)
    args.store = args.store.resolve()
    return args


def peer_list(text: str) -> list[compare.Peer]:
    """The peers named in `text`, comma-separated, in the order given."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in compare.PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer {unknown[0]!r} (known: {', '.join(compare.PEERS)})"
        )
    return [compare.PEERS[key] for key in keys]


def store_label(store: Path) -> str:
    """How results files name `store`: relative to the repo, never this machine's absolute path."""
    try:
        return str(store.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return store.name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else Plan()
    try:
        bundle = ModelStore(args.store).load(args.name, args.version)
    except Exception as exc:
        print(f"bench: cannot load the bundle: {exc}", file=sys.stderr)
        return 2
    args.version = str(bundle.version)
    if load.wrk_missing("bench"):
        return 2
    try:
        work = build_workload(args.data, bundle.window)
    except (OSError, SeriesError) as exc:
        print(f"bench: cannot read the FB CSVs in {args.data}: {exc}", file=sys.stderr)
        return 2
    log(f"bundle {args.name} v{args.version}; data from {args.data}")

    for peer in args.peers:
        if not peer.python(args.peer_venvs).exists():
            print(
                f"bench: no venv for {peer.key} in {args.peer_venvs}: run `make peer-{peer.venv}`",
                file=sys.stderr,
            )
            return 2
    served = compare.Served(args.store, args.name, args.version, work.single, work.january_windows)

    load_at_start = os.getloadavg()[0]
    commit = git_commit()  # before the run: what was measured, whatever lands meanwhile
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        scratch = Path(folder)
        peer_plan = compare.QUICK_PEERS if args.quick else compare.PeerPlan()
        sittings = compare.compare_peers(args.peers, served, peer_plan, scratch, args.peer_venvs)
        keras = measure_keras(args, plan, work, scratch) if args.keras else None

    problems = compare.answers_agree(sittings)
    found = compare.targets(sittings, problems, args.name)
    versions = compare.peer_versions(args.peers, args.peer_venvs)
    peer_lines = compare.section(sittings, problems, found, peer_plan, args.name, versions)
    print("\n" + "\n".join(compare.targets_table(found)))
    sections = [header_lines(args, commit, (load_at_start, os.getloadavg()[0])), peer_lines]
    failed = bool(problems)
    if keras is not None:
        results, workers = keras
        max_diff = parity(results)
        print("\n" + render_text(table_rows(results)))
        verdict = "ok" if max_diff <= PARITY_TOLERANCE else "FAILED"
        print(f"parity on the January windows: max abs diff {max_diff:.2e} dollars ({verdict})")
        sections.append(
            keras_lines(
                args=args, plan=plan, work=work, results=results, workers=workers, max_diff=max_diff
            )
        )
        failed = failed or max_diff > PARITY_TOLERANCE
    if args.output is not None:
        write_results(args.output, sections)
        print(f"wrote {args.output}")
    return 1 if failed else 0


def measure_keras(
    args: argparse.Namespace, plan: Plan, work: Workload, scratch: Path
) -> tuple[dict[str, BackendResult], BackendResult | None]:
    """The default backend against the Keras backend, then (with --workers) several workers."""
    results = {backend: measure_backend(backend, args, plan, work, scratch) for backend in BACKENDS}
    workers = measure_workers(args, plan, work, scratch, args.workers) if args.workers > 1 else None
    return results, workers


if __name__ == "__main__":
    sys.exit(main())
