"""`python -m bench.timeline`: a short real run of both instrumented servers writes every step of
each, and each server's own time is part of its client's round trip. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from bench import timeline


def test_a_short_run_times_every_step_of_both_servers(tmp_path: Path) -> None:
    output = tmp_path / "TIMELINE.md"

    assert timeline.main(["--requests", "100", "--warmup", "20", "--output", str(output)]) == 0

    text = output.read_text()
    found = json.loads(text[text.index("```json") + 7 : text.rindex("```")])
    for key, steps in (("ours", timeline.OUR_STEPS), ("floor", timeline.FLOOR_STEPS)):
        measured = found[key]["steps_us"]
        assert measured["requests"] == 100
        assert set(measured) == {*steps[1:], "total", "requests"}
        assert all(measured[step] > 0 for step in steps[1:])
        assert measured["total"] < found[key]["client_p50_us"]
    assert "| ONNX Runtime run |" in text
