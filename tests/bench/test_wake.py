"""`python -m bench.wake` on the tiny bundle: a short real run writes its table, one row per
work with the three ways and the ratio of the numbers it measured. No timing is asserted."""

from __future__ import annotations

import re
from pathlib import Path

from bench import wake

ROW = re.compile(
    r"^\| (?P<work>[^|]+) \| (?P<hot>[\d.]+) \| (?P<slept>[\d.]+) \| [\d.]+ \| (?P<ratio>[\d.]+) \|$"
)


def test_a_short_run_writes_the_table_of_what_it_measured(tiny_store: Path, tmp_path: Path) -> None:
    output = tmp_path / "WAKE.md"

    assert (
        wake.main(
            [
                "--store",
                str(tiny_store),
                "--name",
                "tiny",
                "--rounds",
                "100",
                "--output",
                str(output),
            ]
        )
        == 0
    )

    rows = [match for line in output.read_text().splitlines() if (match := ROW.match(line))]
    assert [row["work"] for row in rows] == ["one `/predict` answer", "the ONNX Runtime call alone"]
    for row in rows:
        hot, slept, ratio = float(row["hot"]), float(row["slept"]), float(row["ratio"])
        assert hot > 0 and abs(ratio - slept / hot) <= 0.01 + 0.01 * ratio
    assert "`tiny` v1" in output.read_text()
