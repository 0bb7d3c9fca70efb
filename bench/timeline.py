"""`python -m bench.timeline`: where one sequential `/predict` request spends its time in the
server, step by step, beside the constant floor's.

Both servers run `make run`'s protocol and settings (ours: every model of the store, the access
log on; the floor: bench/peers/constant.py under plain uvicorn, as the peer comparison runs it),
in a process of their own that wraps a few of the service's functions to note when each step
ends. Their sequential requests go in blocks that take turns, as in the peer comparison. The
report gives each step's median time after the one before it, over every request, and the
client's median round trip; the wrappers themselves add a microsecond or so per step.

    python -m bench.timeline                 # writes bench/TIMELINE.md
    python -m bench.timeline serve APP PORT MARKS   # (internal) one instrumented server
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import load
from bench.compare import rotated
from bench.run import git_commit, machine, store_label
from bench.server import HOST, REPO_ROOT, Server, free_port
from model_store import LATEST, ModelStore

BLOCKS = 10
# Each step, named by what has just been done; the first is when the request's bytes arrive.
OUR_STEPS = (
    "request bytes read",
    "head parsed",
    "app entered",
    "body read",
    "body validated",
    "windows encoded",
    "ONNX Runtime run",
    "answer built (outputs decoded, intervals)",
    "JSON encoded",
    "response head written",
    "response body written",
    "work after the answer done",
)
FLOOR_STEPS = (
    "request bytes read",
    "head parsed",
    "app entered",
    "response head written",
    "response body written",
    "work after the answer done",
)
# The last step of a response on the wire; what follows is the server's work after it.
ANSWERED = "response body written"
APPS = {"ours": "app.main:app", "floor": "bench.peers.constant:app"}
DEFAULT_MODEL = "fb-lstm"  # what `make run` serves at /predict


class Marks:
    """The end time of each step of each request, in the order of OUR_STEPS or FLOOR_STEPS."""

    def __init__(self, steps: tuple[str, ...]):
        self.index = {step: i for i, step in enumerate(steps)}
        self.requests: list[list[float]] = []

    def begin(self) -> None:
        self.requests.append([float("nan")] * len(self.index))
        self.note("request bytes read")

    def note(self, step: str) -> None:
        if self.requests and step in self.index:
            self.requests[-1][self.index[step]] = time.perf_counter()

    def note_after_answer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note `work after the answer done` for this request once the loop has run the rest of the
        request's task and every callback queued before this one: the work left after its
        answer."""
        if not self.requests:
            return
        request, step = self.requests[-1], self.index["work after the answer done"]

        def note() -> None:
            request[step] = time.perf_counter()

        loop.call_soon(note)


def after(marks: Marks, step: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, noting `step` when it returns (an async one when its coroutine does)."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def noted_async(*args: Any, **kwargs: Any) -> Any:
            result = await function(*args, **kwargs)
            marks.note(step)
            return result

        return noted_async

    @functools.wraps(function)
    def noted(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        marks.note(step)
        return result

    return noted


def instrument(marks: Marks, ours: bool) -> None:
    """Wrap the functions whose ends are the steps (uvicorn's, and with `ours` the service's)."""
    from uvicorn.protocols.http import httptools_impl

    protocol, cycle = httptools_impl.HttpToolsProtocol, httptools_impl.RequestResponseCycle
    received = protocol.data_received

    def data_received(self: Any, data: bytes) -> None:
        marks.begin()
        received(self, data)

    protocol.data_received = data_received
    protocol.on_headers_complete = after(marks, "head parsed", protocol.on_headers_complete)
    sent = cycle.send

    async def send(self: Any, message: Any) -> None:
        await sent(self, message)
        if message["type"] == "http.response.start":
            marks.note("response head written")
            return
        marks.note(ANSWERED)
        marks.note_after_answer(asyncio.get_running_loop())

    cycle.send = send
    if ours:
        _instrument_service(marks)


def _instrument_service(marks: Marks) -> None:
    from types import SimpleNamespace

    import orjson

    from app import hot
    from app.body_limit import BodyReader
    from app.predictor import OnnxRuntime, Predictor

    BodyReader.read = after(marks, "body read", BodyReader.read)
    hot.PredictRequest = SimpleNamespace(
        model_validate_json=after(marks, "body validated", hot.PredictRequest.model_validate_json)
    )
    Predictor._encode = after(marks, "windows encoded", Predictor._encode)
    OnnxRuntime.run = after(marks, "ONNX Runtime run", OnnxRuntime.run)
    hot.answer = after(marks, "answer built (outputs decoded, intervals)", hot.answer)
    hot.orjson = SimpleNamespace(dumps=after(marks, "JSON encoded", orjson.dumps))


def serve(app_path: str, port: int, marks_path: Path) -> int:
    """Run one instrumented server until it is stopped, then write its marks."""
    import uvicorn

    ours = app_path == APPS["ours"]
    marks = Marks(OUR_STEPS if ours else FLOOR_STEPS)
    instrument(marks, ours)
    options: dict[str, Any] = {"host": HOST, "port": port}
    if ours:
        from app.http_protocol import BoundedHttpToolsProtocol

        options["http"] = BoundedHttpToolsProtocol
    module, _, name = app_path.partition(":")
    app = getattr(__import__(module, fromlist=[name]), name)

    async def entered(scope: Any, receive: Any, send: Any) -> None:
        marks.note("app entered")
        await app(scope, receive, send)

    # uvicorn re-raises the stopping signal once shut down: handled here, so the marks get written.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(entered, **options)
    marks_path.write_text(json.dumps(marks.requests))
    return 0


def started(stack: ExitStack, key: str, scratch: Path) -> tuple[Server, Path]:
    port = free_port()
    marks = scratch / f"{key}.json"
    command = [sys.executable, "-m", "bench.timeline", "serve", APPS[key], str(port), str(marks)]
    env = {**os.environ, "MODELS": "*", "MODEL_POLL_SECONDS": "0"}
    ready = "/readyz" if key == "ours" else "/openapi.json"
    log = scratch / f"{key}.log"
    server = stack.enter_context(
        Server(command, port=port, env=env, log_path=log, ready_path=ready)
    )
    return server, marks


def measure(requests: int, warmup: int) -> dict[str, Any]:
    """Each server's step times (medians, microseconds) and its client round trip."""
    body = _body()
    client: dict[str, list[np.ndarray]] = {key: [] for key in APPS}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        servers = {key: started(stack, key, Path(scratch)) for key in APPS}
        for server, _ in servers.values():
            load.timed_posts(server.port, "/predict", body, load.JSON_HEADERS, warmup)
        for block in range(BLOCKS):
            for key in rotated(list(APPS), block):
                server = servers[key][0]
                client[key].append(
                    load.timed_posts(
                        server.port, "/predict", body, load.JSON_HEADERS, requests // BLOCKS
                    )
                )
        for server, _ in servers.values():
            server.stop()
        marks = {key: json.loads(path.read_text()) for key, (_, path) in servers.items()}
    steps = {"ours": OUR_STEPS, "floor": FLOOR_STEPS}
    return {
        key: {
            "client_p50_us": float(np.median(np.concatenate(client[key])) * 1e6),
            # The last requests are the timed ones (readiness polls and warm-up came first).
            "steps_us": step_medians(marks[key][-(requests // BLOCKS) * BLOCKS :], steps[key]),
        }
        for key in APPS
    }


def _body() -> bytes:
    """One window of the demo bundle's own last closes."""
    bundle = ModelStore(REPO_ROOT / "models").load(DEFAULT_MODEL, LATEST)
    return json.dumps({"closes": bundle.context_closes[-bundle.window :].tolist()}).encode()


def step_medians(requests: list[list[float]], steps: tuple[str, ...]) -> dict[str, float]:
    """Per step, the median over complete requests of its time after the step before it; and
    `total`, the median from the request's bytes to its body written."""
    times = np.array([r for r in requests if not np.isnan(r).any()])
    medians = {
        step: float(np.median(times[:, i] - times[:, i - 1]) * 1e6)
        for i, step in enumerate(steps)
        if i > 0
    }
    answered = steps.index(ANSWERED)
    medians["total"] = float(np.median(times[:, answered] - times[:, 0]) * 1e6)
    medians["requests"] = float(len(times))
    return medians


def rows(found: dict[str, Any]) -> Iterator[str]:
    ours, floor = found["ours"]["steps_us"], found["floor"]["steps_us"]
    for step in OUR_STEPS[1:]:
        theirs = f"{floor[step]:.1f}" if step in floor else ""
        yield f"| {step} | {ours[step]:.1f} | {theirs} |"
    yield f"| **in the server: request bytes to response body written** | **{ours['total']:.1f}** | **{floor['total']:.1f}** |"
    yield (
        f"| **at the client: one round trip** | **{found['ours']['client_p50_us']:.1f}** | "
        f"**{found['floor']['client_p50_us']:.1f}** |"
    )


def report(found: dict[str, Any], requests: int, loads: tuple[float, float]) -> str:
    info = machine()
    lines = [
        "# Timeline: one sequential `/predict` request in the server",
        "",
        "Written by `python -m bench.timeline` (bench/timeline.py); do not edit by hand, rerun it.",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {git_commit()}",
        f"- machine: {info['cpu']}, {info['memory']} RAM; {info['os']}",
        f"- store: {store_label(REPO_ROOT / 'models')}",
        f"- machine load (1-minute average): {loads[0]:.1f} at the start, {loads[1]:.1f} at the end",
        f"- method: {requests} sequential requests per server on one keep-alive connection per "
        f"block, {BLOCKS} blocks taking turns between the two servers; each step's median "
        "time after the step before it, in microseconds (medians do not add up to the total)",
        "",
        "| step (time after the one before) | ours (µs) | constant floor (µs) |",
        "| --- | ---: | ---: |",
        *rows(found),
        "",
        "For the floor, `app entered` -> `response head written` is FastAPI's routing, its "
        "endpoint and its JSON response; the access log line is written before the head in the "
        "floor (uvicorn's way) and after the body in ours. `work after the answer done` is the "
        "rest of the request's task (metrics, uvicorn's end of the request, the keep-alive "
        "timer) and the callbacks queued before it ran (our access log line); it ends when the "
        "loop next runs queued callbacks, which uvloop does after polling for I/O, so when the "
        "next request has already arrived its reading and parsing are in it too.",
        "",
        "```json",
        json.dumps(found, indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        app_path, port, marks = argv[1:4]
        return serve(app_path, int(port), Path(marks))
    parser = argparse.ArgumentParser(prog="python -m bench.timeline", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests per server")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "TIMELINE.md")
    args = parser.parse_args(argv)
    start_load = os.getloadavg()[0]
    found = measure(args.requests, args.warmup)
    text = report(found, args.requests, (start_load, os.getloadavg()[0]))
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
