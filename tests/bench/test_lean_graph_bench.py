"""`python -m bench.lean_graph` on the tiny bundle: a short real run converts its Keras model
again and writes one row per graph, the lean ones with fewer nodes than tf2onnx's and outputs
within the parity tolerance. No timing is asserted."""

from __future__ import annotations

import re
from pathlib import Path

from bench import lean_graph

ROW = re.compile(r"^\| (?P<graph>[^|]+) \| (?P<nodes>\d+) \| (?P<diff>[\d.e+-]+) \|")


def test_a_short_run_writes_a_row_per_graph(tiny_store: Path, tmp_path: Path) -> None:
    output = tmp_path / "LEAN_GRAPH.md"
    argv = ["--store", str(tiny_store), "--name", "tiny", "--rounds", "1", "--calls", "20"]

    assert lean_graph.main([*argv, "--output", str(output)]) == 0

    rows = [match for line in output.read_text().splitlines() if (match := ROW.match(line))]
    assert rows[0]["graph"].startswith("raw")
    raw_nodes = int(rows[0]["nodes"])
    assert len(rows) == 4 and all(int(row["nodes"]) < raw_nodes for row in rows[1:])
    assert all(float(row["diff"]) <= 1e-6 for row in rows)
