"""The side-by-side benchmark commands on real servers, each in a short real run: they measure,
write their results file with a row per figure and both sides, and exit as documented. No
timing is asserted (the numbers of a two-second run mean nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import hotpath, models
from bench.server import REPO_ROOT

pytestmark = pytest.mark.slow

SHORT = ["--runs", "1", "--seconds", "1", "--requests", "20"]
FIGURE = re.compile(r"^\| (?P<figure>[^|]+) \| (?P<a>[\d,.]+) \| (?P<b>[\d,.]+) \|")


def figures(text: str) -> dict[str, tuple[float, float]]:
    """Each table row's figure and its two sides' numbers."""
    rows = (FIGURE.match(line) for line in text.splitlines())
    return {
        row["figure"]: (float(row["a"].replace(",", "")), float(row["b"].replace(",", "")))
        for row in rows
        if row
    }


def test_bench_models_compares_a_ref_with_this_checkout(tmp_path: Path) -> None:
    output = tmp_path / "MODELS.md"

    code = models.main(
        ["--store", str(REPO_ROOT / "models"), "--ref", "HEAD", *SHORT, "--output", str(output)]
    )

    measured = figures(output.read_text())
    assert code in (0, 1)  # 1: this checkout more than 10 % slower, which a short run may show
    assert (
        measured["throughput, wrk c32 (req/s)"][0] > 0 < measured["throughput, wrk c32 (req/s)"][1]
    )
    assert measured["wrk errors"] == (0.0, 0.0)
    assert all(value > 0 for value in measured["RSS after warm-up (MB)"])


def test_bench_hotpath_compares_two_settings_of_this_checkout(tmp_path: Path) -> None:
    output = tmp_path / "HOTPATH.md"
    argv = ["--ref", ".", "--b-env", "ACCESS_LOG=false", *SHORT, "--output", str(output)]

    assert hotpath.main(argv) == 0

    text = output.read_text()
    measured = figures(text)
    assert "ACCESS_LOG=false" in text
    assert measured["wrk errors (both routes)"] == (0.0, 0.0)
    assert all(value > 0 for value in measured["sequential `/predict` p50 (ms)"])
