"""What a benchmark records: every run's value of every figure, and its progress lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bench.load import WrkResult


@dataclass
class BackendResult:
    """Every run's value of every figure for one server (medians are taken when reporting)."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    january: list[float] = field(default_factory=list)

    def add(self, figure: str, value: float) -> None:
        self.runs.setdefault(figure, []).append(float(value))

    def add_wrk(self, wrk: WrkResult, server_cpu_seconds: float) -> None:
        """One wrk run's figures, with the server's CPU per request over the run."""
        if wrk.requests:
            self.add("cpu_per_request_ms", server_cpu_seconds * 1e3 / wrk.requests)
        self.add("wrk_rps", wrk.requests_per_s)
        self.add("wrk_errors", wrk.errors)
        self.add("wrk_p50_ms", wrk.p50_ms)
        self.add("wrk_p99_ms", wrk.p99_ms)

    def median(self, figure: str) -> float:
        values = self.runs.get(figure)
        return float(np.median(values)) if values else float("nan")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
