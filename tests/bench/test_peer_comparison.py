"""The peer comparison of `make bench` on real servers: the peers that run in the project's venv
answer exactly as our service does, and a tiny real run writes a results file whose ratios and
verdicts are those of the numbers it measured. No timing is asserted.

KServe runs in its own venv, which `make test` does not install; the lock it is installed from
is checked here against the serving lock instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bench import compare
from bench.peers.constant import ANSWER
from bench.server import REPO_ROOT
from model_store import ModelStore, parse_price_csv, prediction_windows

pytestmark = pytest.mark.slow

DEMO_STORE = REPO_ROOT / "models"
NAME = "fb-lstm"


@pytest.fixture(scope="module")
def january(shared_data: Path) -> list[list[float]]:
    """The 21 January 2020 windows of 40 closes, from the FB files."""
    train = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes()).values
    test = parse_price_csv((shared_data / "FB_test_data.csv").read_bytes()).values
    window = ModelStore(DEMO_STORE).load(NAME).window
    windows = prediction_windows(np.concatenate([train[-window:], test]), window)[: len(test)]
    return [[float(close) for close in row] for row in windows]


def served(january: list[list[float]]) -> compare.Served:
    version = str(ModelStore(DEMO_STORE).load(NAME).version)
    body = json.dumps({"closes": january[0]}).encode()
    return compare.Served(DEMO_STORE, NAME, version, body, january)


def answers(base_url: str, route: str, windows: list[list[float]]) -> list[object]:
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        replies = [client.post(route, json={"closes": window}) for window in windows]
    assert all(reply.status_code == 200 for reply in replies), replies[0].text
    return [reply.json() for reply in replies]


def test_the_plain_fastapi_peer_answers_our_predict_to_the_last_digit(
    january: list[list[float]], tmp_path: Path
) -> None:
    target = served(january)
    with compare.our_server(target, tmp_path / "ours.log") as ours:
        by_default = answers(ours.base_url, "/predict", january)
        by_name = answers(ours.base_url, f"/models/{NAME}/predict", january)
    peer = compare.PEERS["fastapi"]
    with compare.peer_server(peer, target, tmp_path / "peer.log") as theirs:
        from_peer = answers(theirs.base_url, peer.route, january)
    assert by_name == by_default
    assert from_peer == by_default
    # A real interval from the committed bundle, not an empty answer that would match anything.
    first = by_default[0]
    assert isinstance(first, dict)
    assert first["lower"] < first["next_close"] < first["upper"]
    assert first["model"] == {"name": NAME, "version": int(target.version)}


@pytest.mark.parametrize("key", ["constant", "floor_model"])
def test_the_constant_floors_never_read_the_body(
    key: str, january: list[list[float]], tmp_path: Path
) -> None:
    peer = compare.PEERS[key]
    with compare.peer_server(peer, served(january), tmp_path / f"{key}.log") as floor:
        reply = httpx.post(
            f"{floor.base_url}{peer.route}",
            content=b"not json at all",
            headers={"Content-Type": "text/plain"},
        )
    assert reply.status_code == 200
    assert reply.json() == ANSWER


def test_answers_that_differ_are_reported(january: list[list[float]]) -> None:
    answer = {"next_close": 210.0, "lower": 200.0, "upper": 220.0, "model": {"version": 3}}
    ours = compare.Measured("ours", answers={"/predict": [answer], "/models/x/predict": [answer]})
    theirs = compare.Measured("peer", answers={"/predict": [{**answer, "next_close": 210.5}]})
    floor = compare.Measured("floor", answers={"/predict": [{"next_close": 0.0}]})
    problems = compare.answers_agree(
        [
            compare.Sitting(compare.PEERS["fastapi"], ours, theirs),
            compare.Sitting(compare.PEERS["constant"], ours, floor),
        ]
    )
    assert len(problems) == 1
    assert "January window 0" in problems[0]
    assert "210.5" in problems[0]


def runs_of(text: str) -> list[dict[str, dict[str, dict[str, list[float]]]]]:
    """The JSON block of every run at the end of a results file."""
    block = re.search(r"```json\n(.*?)\n```", text, flags=re.DOTALL)
    assert block is not None, text
    runs: list[dict[str, dict[str, dict[str, list[float]]]]] = json.loads(block.group(1))
    return runs


def target_row(text: str, what: str) -> list[str]:
    """The cells of the targets table's row that starts with `what`."""
    for line in text.splitlines():
        if line.startswith(f"| {what}"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no target row {what!r} in:\n{text}")


def test_a_tiny_run_writes_its_measured_ratios_and_verdicts(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "bench", "--quick", "--peers", "fastapi,constant,floor_model"]
    completed = subprocess.run(
        [*command, "--store", str(DEMO_STORE), "--name", NAME, "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    text = output.read_text()
    assert re.search(r"^- commit: [0-9a-f]{7}", text, flags=re.MULTILINE)
    assert re.search(r"^- machine load .*: [\d.]+ at the start, [\d.]+ at the end", text, re.M)

    runs = {sitting["peer"]: sitting for sitting in runs_of(text)}
    assert list(runs) == ["fastapi", "constant", "floor_model"]
    floor = runs["constant"]
    for route in ("/predict", f"/models/{NAME}/predict"):
        check_model_share(text, route, floor, runs["floor_model"])
        ours = floor["ours"][route]
        throughput = np.median(ours["wrk_rps"]) / np.median(floor["theirs"]["/predict"]["wrk_rps"])
        row = target_row(text, f"req/s c32, ours / the constant floor's, `{route}`")
        assert row[1] == f"{throughput:.2f}x"
        assert row[3] == ("met" if throughput >= 0.6 else "MISSED")
        latency = np.median(ours["seq_p50_ms"]) / np.median(
            floor["theirs"]["/predict"]["seq_p50_ms"]
        )
        row = target_row(text, f"sequential p50, ours / the constant floor's, `{route}`")
        assert row[1] == f"{latency:.2f}x"
        assert row[3] == ("met" if latency <= 1.3 else "MISSED")
        assert target_row(text, f"req/s c32, ours / KServe's, `{route}`")[1:] == [
            "not measured",
            ">= 2.0x",
            "not measured",
        ]
    errors = sum(
        sum(result.get("wrk_errors", []))
        for sitting in runs.values()
        for side in ("ours", "theirs")
        for key, result in sitting[side].items()
        if key.startswith("/")
    )
    assert target_row(text, "wrk errors")[1] == f"{errors:.0f}"
    assert target_row(text, "answers equal ours")[1:] == ["yes", "all", "met"]
    rss = max(float(np.median(sitting["ours"]["server"]["rss_mb"])) for sitting in runs.values())
    assert target_row(text, "our RSS after warm-up")[1] == f"{rss:.1f}"


def check_model_share(text: str, route: str, floor: Any, floor_model: Any) -> None:
    """The model's-own-time row of `route`: each ratio from its own sitting, and their quotient."""

    def seq_ratio(sitting: Any) -> float:
        ours = np.median(sitting["ours"][route]["seq_p50_ms"])
        return float(ours / np.median(sitting["theirs"]["/predict"]["seq_p50_ms"]))

    against_floor, against_model = seq_ratio(floor), seq_ratio(floor_model)
    assert target_row(text, f"`{route}`")[1:] == [
        f"{against_floor:.2f}x",
        f"{against_model:.2f}x",
        f"{against_floor / against_model:.2f}x",
    ]


def pins(lock: str) -> dict[str, str]:
    text = (REPO_ROOT / "requirements" / lock).read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, flags=re.MULTILINE))


def test_kserve_runs_the_same_onnx_runtime_and_numpy_as_our_service() -> None:
    """KServe's venv is built from its own lock; the comparison is only fair with the same
    runtime and array library as ours."""
    kserve, serve = pins("peer-kserve.txt"), pins("serve.txt")
    assert kserve["kserve"] == "0.21.0"
    for package in ("onnxruntime", "numpy"):
        assert kserve[package] == serve[package], package
