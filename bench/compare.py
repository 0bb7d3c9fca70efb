"""The peer comparison of `make bench`: our server against other servers of the same model.

Every peer (bench/peers) serves the same bundle's `model.onnx` with the same encoding, intervals
and ONNX Runtime options. Each round runs a fresh server of ours beside a fresh peer and loads
one at a time: their sequential requests in blocks that take turns, then a wrk run on each. So
each ratio compares servers measured under the same machine load, seconds apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bench import load
from bench.peers.model import NAME_ENV, STORE_ENV, VERSION_ENV
from bench.record import BackendResult, log
from bench.server import HOST, REPO_ROOT, Server, app_server, free_port

PEER_VENVS = REPO_ROOT / ".venv-peers"  # one venv per heavy peer, `make peer-<venv>`


@dataclass(frozen=True)
class Peer:
    """A server to compare with: how to start it, where it is ready, where it predicts."""

    key: str
    label: str
    route: str  # `{name}` is the model's name
    ready_path: str  # likewise
    argv: tuple[str, ...]  # after the interpreter; `{port}` and `{name}` are filled in
    venv: str | None = None  # its own venv in PEER_VENVS, or None for the project's
    same_answers: bool = True  # False for the constant, which answers no question

    def python(self, venvs: Path) -> Path:
        """The interpreter that runs this peer."""
        return Path(sys.executable) if self.venv is None else venvs / self.venv / "bin" / "python"

    def shown_command(self) -> str:
        """The command line as the results file shows it, without this machine's paths."""
        python = "python" if self.venv is None else f"{PEER_VENVS.name}/{self.venv}/bin/python"
        return " ".join([python, *self.argv])


def _uvicorn(app: str) -> tuple[str, ...]:
    return ("-m", "uvicorn", app, "--host", HOST, "--port", "{port}")


PEERS = {
    peer.key: peer
    for peer in (
        Peer(
            "fastapi",
            "plain FastAPI app, model inline",
            "/predict",
            "/openapi.json",
            _uvicorn("bench.peers.fastapi_inline:app"),
        ),
        Peer(
            "constant",
            "FastAPI endpoint returning a constant",
            "/predict",
            "/openapi.json",
            _uvicorn("bench.peers.constant:app"),
            same_answers=False,
        ),
        Peer(
            "floor_model",
            "the constant floor plus one model call",
            "/predict",
            "/openapi.json",
            _uvicorn("bench.peers.constant_model:app"),
            same_answers=False,
        ),
        Peer(
            "kserve",
            "KServe ModelServer",
            "/v1/models/{name}:predict",
            "/v1/models/{name}",
            ("-m", "bench.peers.kserve_server", "--http_port", "{port}", "--model_name", "{name}"),
            venv="kserve",
        ),
    )
}
OUR_ROUTES = ("/predict", "/models/{name}/predict")
RSS_LIMIT_MB = 110.0  # our server after warm-up, serving the whole demo store


@dataclass(frozen=True)
class PeerPlan:
    """How many rounds (a fresh server each: cold start, RSS, a sequential run and a wrk run per
    route) and how long each measurement is, for our server and every peer alike."""

    rounds: int = 3
    sequential_requests: int = 2000  # per route, in blocks that take turns with the other routes
    sequential_blocks: int = 10
    wrk_seconds: int = 20
    wrk_connections: int = 32
    warmup_requests: int = 200


QUICK_PEERS = PeerPlan(
    rounds=1, sequential_requests=200, sequential_blocks=2, wrk_seconds=2, warmup_requests=20
)


@dataclass(frozen=True)
class Served:
    """The bundle every server serves and the request bodies built from the FB CSVs."""

    store: Path
    name: str
    version: str
    body: bytes  # {"closes": one window}
    windows: list[list[float]]  # the January windows whose answers must agree


@dataclass
class Measured:
    """One server's figures: `server` (cold start, RSS), one result per route, and its answers
    to the January windows per route."""

    label: str
    server: BackendResult = field(default_factory=BackendResult)
    routes: dict[str, BackendResult] = field(default_factory=dict)
    answers: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Sitting:
    """A peer measured right after a fresh run of our own server."""

    peer: Peer
    ours: Measured
    theirs: Measured


def our_server(served: Served, log_path: Path) -> Server:
    """Our service as `make run` starts it (every model of the store, the access log on), the
    bundle's model the default, never polling the store."""
    settings = {
        "MODEL_STORE_DIR": str(served.store),
        "MODELS": "*",
        "MODEL_NAME": served.name,
        "MODEL_VERSION": served.version,
        "PREDICTOR_BACKEND": "onnx",
        "MODEL_POLL_SECONDS": "0",
    }
    return app_server(settings, log_path, poll_s=0.002)


def peer_server(peer: Peer, served: Served, log_path: Path, venvs: Path = PEER_VENVS) -> Server:
    """`peer` on a free port with its defaults, serving `served`."""
    port = free_port()
    argv = [arg.format(port=port, name=served.name) for arg in peer.argv]
    command = [str(peer.python(venvs)), *argv]
    env = {
        **os.environ,
        STORE_ENV: str(served.store),
        NAME_ENV: served.name,
        VERSION_ENV: served.version,
    }
    return Server(
        command,
        port=port,
        env=env,
        log_path=log_path,
        ready_path=peer.ready_path.format(name=served.name),
        poll_s=0.002,
    )


def rotated(items: list[Any], shift: int) -> list[Any]:
    """`items` starting at index `shift` (modulo their number), so no item is always first."""
    shift %= len(items)
    return items[shift:] + items[:shift]


@contextmanager
def warmed(
    start: Callable[[], Server], served: Served, plan: PeerPlan, into: Measured
) -> Iterator[Server]:
    """A fresh server: its cold start, the same warm-up on each of its routes, its RSS."""
    with start() as server:
        into.server.add("cold_start_s", server.cold_start_s)
        for route in into.routes:
            load.timed_posts(
                server.port, route, served.body, load.JSON_HEADERS, plan.warmup_requests
            )
        into.server.add("rss_mb", server.rss_mib())
        yield server


def measure_round(
    starts: list[tuple[Callable[[], Server], Measured]],
    served: Served,
    plan: PeerPlan,
    scratch: Path,
    round_index: int = 0,
) -> None:
    """One round of fresh servers, started (and warmed up) one after the other: the sequential
    requests of every route of every server in interleaved blocks, then one wrk run per route,
    server after server, and (the first time) every route's answers to the January windows.
    Only one server has load at any time, and each round starts with the next route and the
    next server, so none is always measured first."""
    with ExitStack() as stack:
        servers = [
            (stack.enter_context(warmed(start, served, plan, into)), into) for start, into in starts
        ]
        legs = [(server, route, into) for server, into in servers for route in into.routes]
        sequential(legs, served.body, plan, round_index)
        script = load.write_wrk_script(scratch, served.body)
        for server, into in rotated(servers, round_index):
            for route in rotated(list(into.routes), round_index):
                wrk(server, route, script, plan, into.routes[route])
            into.server.add("peak_rss_mb", server.rss_mib())
        for server, into in servers:
            for route in into.routes:
                into.answers.setdefault(route, answers(server, route, served.windows))


def summary(measured: Measured) -> str:
    """One progress line of a server's medians."""
    routes = ", ".join(
        f"{route} {result.median('wrk_rps'):,.0f} req/s, p50 {result.median('seq_p50_ms'):.3f} ms"
        for route, result in measured.routes.items()
    )
    return f"{measured.label}: {routes}; RSS {measured.server.median('rss_mb'):.0f} MB"


def sequential(
    legs: list[tuple[Server, str, Measured]], body: bytes, plan: PeerPlan, shift: int
) -> None:
    """`plan.sequential_requests` one-at-a-time requests per leg (a server and one of its
    routes), sent in `plan.sequential_blocks` blocks that take turns leg by leg, so a change in
    the machine's speed during the round falls on every leg alike."""
    per_block = plan.sequential_requests // plan.sequential_blocks
    seconds: list[list[np.ndarray]] = [[] for _ in legs]
    for block in range(plan.sequential_blocks):
        for index in rotated(list(range(len(legs))), shift + block):
            server, route, _ = legs[index]
            seconds[index].append(
                load.timed_posts(server.port, route, body, load.JSON_HEADERS, per_block)
            )
    for (_, route, into), timed in zip(legs, seconds, strict=True):
        every = np.concatenate(timed)
        into.routes[route].add("seq_p50_ms", np.percentile(every, 50) * 1e3)
        into.routes[route].add("seq_p99_ms", np.percentile(every, 99) * 1e3)


def wrk(server: Server, route: str, script: Path, plan: PeerPlan, into: BackendResult) -> None:
    cpu_before = server.cpu_seconds()
    result = load.run_wrk(
        server.port,
        route,
        script,
        connections=plan.wrk_connections,
        duration_s=plan.wrk_seconds,
        threads=1,
    )
    into.add_wrk(result, server.cpu_seconds() - cpu_before)


def answers(server: Server, route: str, windows: list[list[float]]) -> list[Any]:
    """The decoded answer to each window, one single-window request each."""
    client = load.Client(server.port)
    try:
        return [client.post_json(route, {"closes": window}) for window in windows]
    finally:
        client.close()


def compare_peers(
    peers: list[Peer], served: Served, plan: PeerPlan, scratch: Path, venvs: Path
) -> list[Sitting]:
    """For each peer, rounds of a fresh server of ours and a fresh peer, each measured beside
    the other (never both under load), so the machine's changing load falls on both alike."""
    sittings = []
    for peer in peers:
        ours = Measured(
            f"ours (with {peer.key})",
            routes={route.format(name=served.name): BackendResult() for route in OUR_ROUTES},
        )
        theirs = Measured(peer.label, routes={peer.route.format(name=served.name): BackendResult()})
        for index in range(plan.rounds):
            ours_start = partial(our_server, served, scratch / "ours.log")
            peer_start = partial(peer_server, peer, served, scratch / f"{peer.key}.log", venvs)
            measure_round([(ours_start, ours), (peer_start, theirs)], served, plan, scratch, index)
        log(summary(ours))
        log(summary(theirs))
        sittings.append(Sitting(peer, ours, theirs))
    return sittings


def answers_agree(sittings: list[Sitting]) -> list[str]:
    """Every disagreement: a peer's answer to a January window that is not ours on /predict to
    the last digit, or our per-model route's answer that is not our /predict's."""
    problems = []
    for sitting in sittings:
        ours = sitting.ours.answers
        default, *others = ours
        problems += [
            f"ours: {route} differs from {default}"
            for route in others
            if ours[route] != ours[default]
        ]
        if not sitting.peer.same_answers:
            continue
        theirs = next(iter(sitting.theirs.answers.values()))
        problems += [
            f"{sitting.peer.label}, January window {index}: {their} != ours {our}"
            for index, (our, their) in enumerate(zip(ours[default], theirs, strict=True))
            if our != their
        ]
    return problems


@dataclass(frozen=True)
class Target:
    """One line of the targets table: what is compared, the measured value, the verdict."""

    what: str
    measured: str
    target: str
    met: bool | None  # None: not measured in this run


def ratio(ours: BackendResult, theirs: BackendResult, figure: str) -> float:
    return ours.median(figure) / theirs.median(figure)


def targets(
    sittings: list[Sitting], problems: list[str], name: str, rss_limit_mb: float = RSS_LIMIT_MB
) -> list[Target]:
    """Issue targets: req/s c32 at least 2x KServe's and 0.6x the constant's, sequential p50 at
    most 1.3x the constant's, on both our routes; zero errors; our RSS; equal answers."""
    by_peer = {sitting.peer.key: sitting for sitting in sittings}
    found: list[Target] = []
    for peer, figure, sign, limit, verb in (
        ("kserve", "wrk_rps", ">=", 2.0, "req/s c32, ours / KServe's"),
        ("constant", "wrk_rps", ">=", 0.6, "req/s c32, ours / the constant floor's"),
        ("constant", "seq_p50_ms", "<=", 1.3, "sequential p50, ours / the constant floor's"),
    ):
        for template in OUR_ROUTES:
            route = template.format(name=name)
            what = f"{verb}, `{route}`"
            sitting = by_peer.get(peer)
            if sitting is None:
                found.append(Target(what, "not measured", f"{sign} {limit}x", None))
                continue
            ours = sitting.ours.routes[route]
            value = ratio(ours, peer_figures(sitting), figure)
            met = value >= limit if sign == ">=" else value <= limit
            found.append(Target(what, f"{value:.2f}x", f"{sign} {limit}x", met))
    errors = sum(
        sum(result.runs.get("wrk_errors", []))
        for sitting in sittings
        for measured in (sitting.ours, sitting.theirs)
        for result in measured.routes.values()
    )
    found.append(Target("wrk errors, every server and route", f"{errors:.0f}", "0", errors == 0))
    rss = max(sitting.ours.server.median("rss_mb") for sitting in sittings)
    found.append(
        Target(
            "our RSS after warm-up, whole store served (MB)",
            f"{rss:.1f}",
            f"<= {rss_limit_mb:g}",
            rss <= rss_limit_mb,
        )
    )
    found.append(
        Target(
            "answers equal ours to the last digit",
            "yes" if not problems else f"{len(problems)} differ",
            "all",
            not problems,
        )
    )
    return found


def _cell(value: float, digits: int) -> str:
    return "n/a" if np.isnan(value) else f"{value:,.{digits}f}"


FIGURE_COLUMNS = (
    ("wrk_rps", "req/s c32", 0),
    ("wrk_p50_ms", "wrk p50 (ms)", 2),
    ("wrk_p99_ms", "wrk p99 (ms)", 2),
    ("seq_p50_ms", "sequential p50 (ms)", 3),
    ("seq_p99_ms", "sequential p99 (ms)", 3),
    ("cpu_per_request_ms", "CPU per request (ms)", 3),
)


def figures_table(sittings: list[Sitting]) -> list[str]:
    """One row per server and route, in the order they ran."""
    header = ["server", "route", *(label for _, label, _ in FIGURE_COLUMNS)]
    header += ["errors", "RSS (MB)", "cold start (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for sitting in sittings:
        for measured in (sitting.ours, sitting.theirs):
            for route, result in measured.routes.items():
                cells = [measured.label, f"`{route}`"]
                cells += [_cell(result.median(key), digits) for key, _, digits in FIGURE_COLUMNS]
                cells += [
                    _cell(sum(result.runs.get("wrk_errors", [])), 0),
                    _cell(measured.server.median("rss_mb"), 1),
                    _cell(measured.server.median("cold_start_s"), 2),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratios_table(sittings: list[Sitting], name: str) -> list[str]:
    """Ours / the peer it alternated with, for each of our routes."""
    routes = [route.format(name=name) for route in OUR_ROUTES]
    per_route = ("wrk_rps", "seq_p50_ms", "cpu_per_request_ms")
    labels = {
        "wrk_rps": "req/s c32",
        "seq_p50_ms": "sequential p50",
        "cpu_per_request_ms": "CPU per request",
    }
    header = [
        "peer",
        *(f"{labels[f]} `{r}`" for f in per_route for r in routes),
        "RSS",
        "cold start",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for sitting in sittings:
        theirs = peer_figures(sitting)
        cells = [sitting.peer.label]
        for figure in per_route:
            cells += [f"{ratio(sitting.ours.routes[r], theirs, figure):.2f}x" for r in routes]
        for figure in ("rss_mb", "cold_start_s"):
            cells.append(f"{ratio(sitting.ours.server, sitting.theirs.server, figure):.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def model_share(sittings: list[Sitting], name: str) -> list[str]:
    """Sequential p50 against the floor and against the floor plus one model call, per route,
    and the model call's own share of the floor it implies (each ratio from its own sitting,
    so a change of machine speed between the sittings cancels); empty unless both peers ran."""
    by_peer = {sitting.peer.key: sitting for sitting in sittings}
    if "constant" not in by_peer or "floor_model" not in by_peer:
        return []
    lines = [
        "### The model's own time",
        "",
        "The floor plus one model call is the constant floor that also runs the ONNX Runtime "
        "session once per request: against the floor, it shows what the model's call alone "
        "adds to a sequential request; ours against it, whether our whole request (body, "
        "validation, encoding, the call, intervals, metrics, without FastAPI's routing) costs "
        "more or less than FastAPI's endpoint with only the call added.",
        "",
        "| route | ours / the floor | ours / the floor plus the model | the floor plus the model "
        "/ the floor |",
        "| --- | ---: | ---: | ---: |",
    ]
    for template in OUR_ROUTES:
        route = template.format(name=name)
        against = [
            ratio(by_peer[key].ours.routes[route], peer_figures(by_peer[key]), "seq_p50_ms")
            for key in ("constant", "floor_model")
        ]
        lines.append(
            f"| `{route}` | {against[0]:.2f}x | {against[1]:.2f}x | {against[0] / against[1]:.2f}x |"
        )
    return [*lines, ""]


def peer_figures(sitting: Sitting) -> BackendResult:
    """The peer's one route's figures."""
    return next(iter(sitting.theirs.routes.values()))


def targets_table(found: list[Target]) -> list[str]:
    lines = ["| target | measured | limit | verdict |", "| --- | --- | --- | --- |"]
    verdicts = {True: "met", False: "MISSED", None: "not measured"}
    lines += [f"| {t.what} | {t.measured} | {t.target} | {verdicts[t.met]} |" for t in found]
    return lines


def peer_versions(peers: list[Peer], venvs: Path) -> str:
    """What the servers ran on: this venv's FastAPI, uvicorn and ONNX Runtime, and each peer
    venv's packages of the same names plus the peer's own."""
    script = (
        "import sys; from importlib.metadata import version; "
        "print(', '.join(p + ' ' + version(p) for p in sys.argv[1:]))"
    )
    packages = ["fastapi", "uvicorn", "onnxruntime"]
    found = [f"this venv: {', '.join(f'{p} {metadata.version(p)}' for p in packages)}"]
    for peer in peers:
        if peer.venv is not None:
            completed = subprocess.run(
                [str(peer.python(venvs)), "-c", script, peer.venv, *packages],
                capture_output=True,
                text=True,
                check=True,
            )
            found.append(f"{peer.label}'s venv: {completed.stdout.strip()}")
    return "; ".join(found)


def section(
    sittings: list[Sitting],
    problems: list[str],
    found: list[Target],
    plan: PeerPlan,
    name: str,
    versions: str,
) -> list[str]:
    """The peer comparison's part of bench/RESULTS.md."""
    lines = [
        "## Peers: the same model behind other servers, one worker each",
        "",
        "Each peer ran in rounds beside a fresh server of ours (`make run`'s command, every "
        "model of the store loaded), one server under load at a time.",
        "",
        *figures_table(sittings),
        "",
        "Ratios, ours / the peer we alternated with (above 1 is better for req/s, below 1 for "
        "the rest). CPU per request is the server's CPU time over its wrk runs per request "
        "answered: on a busy machine it moves less than req/s, and 1 / CPU per request is the "
        "throughput a core could give.",
        "",
        *ratios_table(sittings, name),
        "",
        "### Targets",
        "",
        *targets_table(found),
        "",
        *model_share(sittings, name),
    ]
    if problems:
        lines += ["Answers that differ:", "", *(f"- {problem}" for problem in problems), ""]
    peers = "; ".join(
        f"{s.peer.label}: `{s.peer.shown_command()}`, `POST {s.peer.route.format(name=name)}`"
        for s in sittings
    )
    lines += [
        "### How the peers were measured",
        "",
        f"- the peers: {peers}. Each serves the bundle's `model.onnx` with model_store's "
        "encoding and intervals and app/predictor.py's ONNX Runtime session options (one "
        "intra-op thread), and answers with our single-window `/predict` body (the constant "
        "floors answer a constant of its size and never read the body, the floor plus the "
        "model running the session on a window encoded at start-up); otherwise every "
        "server runs with its own defaults (access log on; KServe with its per-request latency "
        "log, and without its gRPC server, which is not measured).",
        f"- versions: {versions}.",
        '- every server gets the same request bytes, `{"closes": [40 closes]}`; KServe on its '
        "own v1 route, which hands the decoded JSON to the model's `predict`.",
        f"- {plan.rounds} round(s) per peer. Each round starts a fresh server of ours, then a "
        "fresh peer (cold start: from just before the spawn to the first 200 of the server's "
        f"readiness route, polled every 2 ms; RSS after {plan.warmup_requests} warm-up requests "
        f"on each route), then sends {plan.sequential_requests} sequential requests per route "
        f"in {plan.sequential_blocks} blocks, each on one keep-alive connection, the blocks "
        "taking turns between every route of both servers (p50 and p99 over each route's "
        f"requests), then `wrk -t1 -c{plan.wrk_connections} -d{plan.wrk_seconds}s` on each "
        "route, one server after the other. Only one server has load at a time, and each round "
        "starts with the next route and the next server. Every figure is the median of its "
        "rounds; errors (socket errors + non-2xx) are summed over them.",
        "- answers: every server answers the January 2020 windows, one request each; a peer's "
        "answers must equal our `/predict`'s exactly, and so must our per-model route's.",
        "",
        "All runs (every value, before taking the median):",
        "",
        "```json",
        json.dumps([sitting_runs(sitting) for sitting in sittings], indent=1),
        "```",
        "",
    ]
    return lines


def sitting_runs(sitting: Sitting) -> dict[str, Any]:
    """Every value of one sitting, for the results file."""

    def runs(measured: Measured) -> dict[str, Any]:
        routes = {route: result.runs for route, result in measured.routes.items()}
        return {"label": measured.label, "server": measured.server.runs, **routes}

    return {"peer": sitting.peer.key, "ours": runs(sitting.ours), "theirs": runs(sitting.theirs)}
