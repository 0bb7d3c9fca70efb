"""`python -m bench.wake`: what one `/predict` answer costs the server right after its core was
idle, against the same work on a core that stayed busy.

One request at a time, the server's thread sleeps in the event loop between requests, and on a
virtual machine a core that went idle runs the next work slower (its caches and predictors are
cold). This bench times the service's own work for one window (validation from the raw bytes,
the prediction through `PredictionService` as a request alone in the server, the interval, the
JSON encoding) in process, in three ways taken in turn: back to back, after sleeping 0.3 ms
(as between sequential requests), and after spinning 0.3 ms without sleeping. The ONNX Runtime
call is also timed alone in the same three ways.

    python -m bench.wake                      # writes bench/WAKE.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from app.batching import MicroBatcher
from app.loader import BundleLoader
from app.metrics import ServiceMetrics
from app.predictor import Predictor
from app.routers.predict import answer
from app.schemas import PredictRequest
from app.service import PredictionService
from bench.run import git_commit, machine, store_label
from bench.server import REPO_ROOT
from model_store import LATEST, ModelStore

GAP_SECONDS = 0.0003  # about the time a sequential client takes between two requests
WAYS = ("back to back", "after sleeping", "after spinning")
BLOCK = 50  # calls in a row of one way: the first ones after a change of way are not counted apart


def wait(way: str) -> None:
    """The pause before one timed call."""
    if way == "after sleeping":
        time.sleep(GAP_SECONDS)
    elif way == "after spinning":
        end = time.perf_counter() + GAP_SECONDS
        while time.perf_counter() < end:
            pass


def bodies_of(predictor: Predictor, count: int) -> list[bytes]:
    """`count` distinct one-window bodies around the bundle's own last closes."""
    context = predictor.bundle.context_closes[-predictor.window :]
    return [
        json.dumps({"closes": (context * (1.0 + 0.001 * i)).tolist()}).encode()
        for i in range(count)
    ]


async def time_ways(call: Callable[[int], object], rounds: int) -> dict[str, list[float]]:
    """Seconds of `call(i)` per way, the ways taken in turn (BLOCK calls each) so the machine's
    changing load falls on all of them alike."""
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for block in range(rounds // BLOCK):
        for way in WAYS:
            for i in range(block * BLOCK, (block + 1) * BLOCK):
                wait(way)
                started = time.perf_counter()
                result = call(i)
                if asyncio.iscoroutine(result):
                    await result
                seconds[way].append(time.perf_counter() - started)
    return seconds


def measure(predictor: Predictor, rounds: int) -> dict[str, dict[str, list[float]]]:
    """The service's work for one window and the ONNX Runtime call alone, each in every way."""
    metrics = ServiceMetrics()
    service = PredictionService(MicroBatcher(on_batch=metrics.batch_windows.observe), metrics)
    bodies = bodies_of(predictor, 64)
    encoded = predictor.encoding.encode(np.array([json.loads(bodies[0])["closes"]]))

    async def one_answer(i: int) -> None:
        request = PredictRequest.model_validate_json(bodies[i % len(bodies)])
        orjson.dumps(await answer(request, predictor, service, 95, alone=True))

    async def both() -> dict[str, dict[str, list[float]]]:
        return {
            "one `/predict` answer": await time_ways(one_answer, rounds),
            "the ONNX Runtime call alone": await time_ways(
                lambda _: predictor.runtime.run(encoded), rounds
            ),
        }

    return asyncio.run(both())


def report(
    measured: dict[str, dict[str, list[float]]], label: str, rounds: int, loads: tuple[float, float]
) -> str:
    info = machine()
    lines = [
        "# One answer after an idle core",
        "",
        "Written by `python -m bench.wake` (bench/wake.py); do not edit by hand, rerun it.",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {git_commit()}",
        f"- machine: {info['cpu']}, {info['memory']} RAM; {info['os']}",
        f"- versions: {info['versions']}",
        f"- model: {label}",
        f"- machine load (1-minute average): {loads[0]:.1f} at the start, {loads[1]:.1f} at the end",
        f"- method: {rounds} calls per way in process, the ways in turn {BLOCK} calls at a time: "
        f"back to back, after sleeping {GAP_SECONDS * 1e3:.1f} ms, after spinning "
        f"{GAP_SECONDS * 1e3:.1f} ms; medians",
        "",
        "| work | back to back (us) | after sleeping (us) | after spinning (us) | sleeping / back to back |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for work, ways in measured.items():
        hot, slept, spun = (float(np.median(ways[way])) * 1e6 for way in WAYS)
        lines.append(f"| {work} | {hot:.1f} | {slept:.1f} | {spun:.1f} | {slept / hot:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wake", description=__doc__)
    parser.add_argument("--store", type=Path, default=REPO_ROOT / "models", help="model store")
    parser.add_argument("--name", default="fb-lstm", help="the model")
    parser.add_argument("--rounds", type=int, default=3000, help="calls per way")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "WAKE.md")
    args = parser.parse_args(argv)
    store = ModelStore(args.store)
    version = store.resolve(args.name, LATEST)
    predictor = BundleLoader(store, "onnx").load(args.name, version)
    started = os.getloadavg()[0]
    measured = measure(predictor, args.rounds)
    label = f"`{args.name}` v{version} from `{store_label(args.store)}`"
    text = report(measured, label, args.rounds, (started, os.getloadavg()[0]))
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
