"""`python -m bench.lean_graph`: tf2onnx's raw graph of a bundle's Keras model against the lean
graphs `training.lean_graph` makes of it, in ONNX Runtime as the server runs it.

The bundle's `model.keras` is converted again (the store is only read), then made lean three
ways: the simplifying passes only, with the parallel LSTMs fused behind a Split, and every pass
(the default export). Per graph: node count, largest difference from the raw graph's outputs,
and the median `session.run` of one window paced by a 0.3 ms sleep (one request at a time),
of one window back to back, and of 32 windows. The graphs take turns, round by round (each
round starting with the next graph), so the machine's changing load falls on each alike.
Writes bench/LEAN_GRAPH.md (`make bench-lean-graph`).

    python -m bench.lean_graph --store models --name fb-lstm --version 3
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from app.predictor import session_options
from bench.record import log
from bench.run import git_commit, machine, store_label
from model_store import ModelStore

PACING_SECONDS = 0.0003
RESULTS = Path(__file__).with_name("LEAN_GRAPH.md")
FIGURES = ("paced", "hot", "batch32")


@dataclass
class Variant:
    """One graph under comparison and its timings in microseconds, every round's median."""

    label: str
    nodes: int
    session: ort.InferenceSession
    max_abs_diff: float = 0.0
    rounds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, figure: str) -> float:
        return float(np.median(self.rounds[figure]))

    def ratio_to(self, other: Variant, figure: str) -> float:
        """The median over rounds of this graph's time over `other`'s in the same round."""
        return float(np.median(np.divide(self.rounds[figure], other.rounds[figure])))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.lean_graph", description=__doc__)
    parser.add_argument("--store", type=Path, default=Path("models"))
    parser.add_argument("--name", default="fb-lstm")
    parser.add_argument("--version", default="latest")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="calls per figure and round")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def graphs(keras_path: Path, window: int) -> dict[str, onnx.ModelProto]:
    """The raw graph and the three lean ones, as ONNX models."""
    import keras

    from training import lean_graph
    from training.export import convert_to_onnx

    raw = convert_to_onnx(keras.saving.load_model(keras_path, safe_mode=True), window)
    simplifying = (
        lean_graph.drop_zero_initial_states,
        lean_graph.last_step_from_y_h,
        lean_graph.cancel_transpose_pairs,
    )
    split = functools.partial(lean_graph.fuse_parallel_lstms, stack_dense=False)
    return {
        "raw (tf2onnx)": raw,
        "simplified (a, b, d)": lean_graph.lean_model(raw, simplifying),
        "fused, Split (a-d)": lean_graph.lean_model(raw, (*simplifying, split)),
        "lean (a-d, stacked Dense)": lean_graph.lean_model(raw),
    }


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A session with the server's options."""
    return ort.InferenceSession(
        model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )


def windows(encode: Callable[[np.ndarray], np.ndarray], window: int, count: int) -> np.ndarray:
    """Encoded windows of seeded geometric random walks (2 % daily volatility)."""
    rng = np.random.default_rng(0)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (count, window)), axis=1))
    return np.asarray(encode(closes), np.float32).reshape(count, window, 1)


def median_call(
    graph_session: ort.InferenceSession, batch: np.ndarray, calls: int, pause: float
) -> float:
    """The median wall time of a call on `batch` in microseconds, sleeping `pause` seconds
    before each."""
    feed = {"window": batch}
    times = []
    for _ in range(calls):
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        graph_session.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def measure(variants: list[Variant], inputs: np.ndarray, rounds: int, calls: int) -> None:
    one, batch = inputs[:1], inputs[:32]
    for round_index in range(rounds):
        shift = round_index % len(variants)  # no graph always runs first, after the same one
        for variant in variants[shift:] + variants[:shift]:
            figures = {
                "paced": median_call(variant.session, one, calls, PACING_SECONDS),
                "hot": median_call(variant.session, one, calls, 0.0),
                "batch32": median_call(variant.session, batch, calls // 4, 0.0),
            }
            for figure, value in figures.items():
                variant.rounds.setdefault(figure, []).append(value)
        log(f"round {round_index + 1}/{rounds} done")


def report(variants: list[Variant], label: str, args: argparse.Namespace) -> str:
    raw = variants[0]
    lines = [
        "# Lean ONNX graph: tf2onnx's raw graph against the lean ones",
        "",
        "Generated by `python -m bench.lean_graph` "
        f"(`--store {store_label(args.store)} --name {args.name}`): {label}'s `model.keras` "
        "converted again. Median `session.run` in microseconds over "
        f"{args.rounds} alternating rounds (each the median of {args.calls} calls; 32 windows: "
        f"{args.calls // 4}); in brackets the median over rounds of the time over the raw graph's "
        "in the same round. One window paced: a "
        f"{PACING_SECONDS * 1e3:g} ms sleep before each call, as one request at a time.",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}",
        *(f"- {key}: {value}" for key, value in machine().items()),
        "",
        "| graph | nodes | max abs diff from raw | 1 window paced | 1 window hot | 32 windows |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in variants:
        cells = [
            f"{variant.median(figure):.1f} ({variant.ratio_to(raw, figure):.2f}x)"
            for figure in FIGURES
        ]
        lines.append(
            f"| {variant.label} | {variant.nodes} | {variant.max_abs_diff:.3g} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = ModelStore(args.store).verify(args.name, args.version)
    inputs = windows(bundle.encoding.encode, bundle.window, 500)
    variants = []
    for label, model in graphs(bundle.file("model.keras"), bundle.window).items():
        variants.append(Variant(label, len(model.graph.node), session(model)))
    raw_outputs = variants[0].session.run(None, {"window": inputs})[0]
    for variant in variants:
        outputs = variant.session.run(None, {"window": inputs})[0]
        variant.max_abs_diff = float(np.max(np.abs(outputs - raw_outputs)))
    measure(variants, inputs, args.rounds, args.calls)
    text = report(variants, bundle.label, args)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
