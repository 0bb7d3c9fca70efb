"""What a benchmark records: every run's value of every figure, and its progress lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BackendResult:
    """Every run's value of every figure for one server (medians are taken when reporting)."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    january: list[float] = field(default_factory=list)

    def add(self, figure: str, value: float) -> None:
        self.runs.setdefault(figure, []).append(float(value))

    def median(self, figure: str) -> float:
        values = self.runs.get(figure)
        return float(np.median(values)) if values else float("nan")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
