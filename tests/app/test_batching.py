"""Dynamic batching of single-window predictions (app/batching.py) over a real ONNX Runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.batching import MicroBatcher
from app.errors import InvalidInputError
from app.metrics import ServiceMetrics
from app.predictor import OnnxRuntime, Predictor
from app.service import PredictionService
from bench.server import app_server
from model_store import Bundle


class RecordingRuntime:
    """The real ONNX runtime, recording how many windows each model call received."""

    name = "onnx"
    inline = True

    def __init__(self, bundle: Bundle):
        self.runtime = OnnxRuntime(bundle)
        self.calls: list[int] = []

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.calls.append(len(inputs))
        return self.runtime.run(inputs)


def windows_of(bundle: Bundle, count: int) -> np.ndarray:
    """`count` distinct windows around the bundle's own context closes."""
    context = bundle.context_closes[-bundle.window :]
    return np.stack([context * (1.0 + 0.002 * i) for i in range(count)])


async def predict_concurrently(
    batcher: MicroBatcher, predictor: Predictor, windows: np.ndarray | list[np.ndarray]
) -> list[float | BaseException]:
    return await asyncio.gather(
        *(batcher.predict(predictor, window) for window in windows), return_exceptions=True
    )


def test_concurrent_windows_share_one_call_and_get_their_own_answers(tiny_bundle: Bundle) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    windows = windows_of(tiny_bundle, 40)
    expected = predictor.predict(windows)
    runtime.calls.clear()

    answers = asyncio.run(predict_concurrently(MicroBatcher(max_batch=64), predictor, windows))

    assert runtime.calls == [40]
    # float32 model arithmetic may differ in the last bits between batch shapes.
    np.testing.assert_allclose(np.array(answers, dtype=np.float64), expected, rtol=0, atol=1e-4)


def test_batches_never_exceed_max_batch(tiny_bundle: Bundle) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    windows = windows_of(tiny_bundle, 10)

    answers = asyncio.run(predict_concurrently(MicroBatcher(max_batch=4), predictor, windows))

    assert runtime.calls == [4, 4, 2]
    assert all(isinstance(answer, float) for answer in answers)


def test_a_lone_window_is_answered_without_waiting_for_company(tiny_bundle: Bundle) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    window = windows_of(tiny_bundle, 1)[0]

    async def one() -> float:
        return await asyncio.wait_for(MicroBatcher().predict(predictor, window), timeout=1.0)

    assert asyncio.run(one()) == pytest.approx(float(predictor.predict(window[None, :])[0]))
    assert runtime.calls[0] == 1


def service_of(batcher: MicroBatcher) -> PredictionService:
    return PredictionService(batcher, ServiceMetrics())


def test_a_window_alone_in_the_server_is_predicted_without_yielding_to_the_loop(
    tiny_bundle: Bundle,
) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    windows = windows_of(tiny_bundle, 1)
    metrics = ServiceMetrics()
    service = PredictionService(MicroBatcher(on_batch=metrics.batch_windows.observe), metrics)
    coroutine = service.predict_one(predictor, windows[0].tolist(), 80, "predict", alone=True)

    # Driven by hand, outside any event loop: a coroutine that awaited a loop turn could not
    # finish on its first step.
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)

    assert [finished.value.value.close] == predictor.predict(windows).tolist()
    assert runtime.calls[-2:] == [1, 1]  # its own call, then the reference
    sums = [s.value for s in metrics.batch_windows.collect()[0].samples if s.name.endswith("_sum")]
    assert sums == [1]  # one model call of one window in the batch-size histogram


def test_a_window_alone_in_the_server_joins_a_batch_already_forming(tiny_bundle: Bundle) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    windows = windows_of(tiny_bundle, 2)
    batcher = MicroBatcher()
    service = service_of(batcher)

    async def both() -> list[float]:
        first = asyncio.ensure_future(batcher.predict(predictor, windows[0]))
        await asyncio.sleep(0)  # the first window is pending: a batch is forming
        alone = await service.predict_one(predictor, windows[1].tolist(), 80, "predict", True)
        return [await first, alone.close]

    answers = asyncio.run(both())

    assert runtime.calls == [2]
    np.testing.assert_allclose(answers, predictor.predict(windows), rtol=0, atol=1e-4)


def test_a_window_alone_in_the_server_that_the_model_refuses_fails_with_its_message(
    tiny_bundle: Bundle,
) -> None:
    predictor = Predictor(tiny_bundle, OnnxRuntime(tiny_bundle))
    service = service_of(MicroBatcher())
    short = windows_of(tiny_bundle, 1)[0, :-1].tolist()

    with pytest.raises(InvalidInputError, match=f"each window must hold {tiny_bundle.window}"):
        asyncio.run(service.predict_one(predictor, short, 80, "predict", alone=True))


def test_a_failing_window_fails_only_its_own_request(tiny_bundle: Bundle) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    good = windows_of(tiny_bundle, 4)
    # The route checks lengths first; here a short window stands for any window the model
    # refuses, so the batch call fails and each window must be answered on its own.
    windows = [good[0], good[1], good[2][:-1], good[2], good[3]]

    answers = asyncio.run(predict_concurrently(MicroBatcher(), predictor, windows))

    assert isinstance(answers[2], InvalidInputError)
    assert answers[2].message.startswith(f"each window must hold {tiny_bundle.window} closes")
    others = np.array([answers[i] for i in (0, 1, 3, 4)], dtype=np.float64)
    np.testing.assert_allclose(others, predictor.predict(good), rtol=0, atol=1e-4)


def test_windows_of_two_served_versions_are_predicted_by_their_own_model(
    tiny_bundle: Bundle,
) -> None:
    """A hot swap mid-batch: each request keeps the predictor it started with."""
    old_runtime, new_runtime = RecordingRuntime(tiny_bundle), RecordingRuntime(tiny_bundle)
    old, new = Predictor(tiny_bundle, old_runtime), Predictor(tiny_bundle, new_runtime)
    windows = windows_of(tiny_bundle, 6)

    async def mixed() -> list[float]:
        batcher = MicroBatcher()
        return await asyncio.gather(
            *(batcher.predict(old if i % 2 else new, w) for i, w in enumerate(windows))
        )

    answers = asyncio.run(mixed())

    assert old_runtime.calls == [3] and new_runtime.calls == [3]
    np.testing.assert_allclose(answers, old.predict(windows), rtol=0, atol=1e-4)


def test_single_predict_over_http_matches_the_batch_endpoint(
    client: TestClient, tiny_bundle: Bundle
) -> None:
    """The batched single-window path answers what a batch request answers."""
    windows = windows_of(tiny_bundle, 3).tolist()

    batch = client.post("/predict", json={"windows": windows})
    singles = [client.post("/predict", json={"closes": window}) for window in windows]

    assert batch.status_code == 200 and all(r.status_code == 200 for r in singles)
    np.testing.assert_allclose(
        [r.json()["next_close"] for r in singles], batch.json()["predictions"], rtol=0, atol=1e-4
    )


@pytest.mark.slow
def test_concurrent_requests_to_a_real_server_share_model_calls(
    tiny_store: Path, tiny_bundle: Bundle, tmp_path: Path
) -> None:
    """Under uvicorn a request runs to the batcher without yielding, so only the batcher's own
    loop turn lets concurrent requests meet; the batch-size histogram shows whether they did."""
    env = {"MODEL_STORE_DIR": str(tiny_store), "MODEL_NAME": "tiny", "MODEL_POLL_SECONDS": "0"}
    windows = windows_of(tiny_bundle, 64).tolist()

    async def bursts(base: str) -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            statuses = []
            for _ in range(5):
                answers = await asyncio.gather(
                    *(client.post("/predict", json={"closes": w}) for w in windows)
                )
                statuses += [answer.status_code for answer in answers]
            return statuses

    with app_server(env, tmp_path / "uvicorn.log", "--log-level", "warning") as server:
        statuses = asyncio.run(bursts(server.base_url))
        families = text_string_to_metric_families(server.client.get("/metrics").text)
        samples = {s.name: s.value for f in families for s in f.samples if not s.labels}

    assert statuses == [200] * 320
    assert samples["predict_batch_windows_sum"] == 320
    assert samples["predict_batch_windows_count"] < 320  # some calls held several windows


def test_the_inference_thread_answers_each_window_and_keeps_batches_bounded(
    tiny_bundle: Bundle,
) -> None:
    runtime = RecordingRuntime(tiny_bundle)
    predictor = Predictor(tiny_bundle, runtime)
    good = windows_of(tiny_bundle, 10)
    expected = predictor.predict(good)
    runtime.calls.clear()
    batcher = MicroBatcher(max_batch=4, inference_thread=True)
    windows = [*good[:5], good[5][:-1], *good[5:]]  # one window the model refuses

    try:
        answers = asyncio.run(predict_concurrently(batcher, predictor, windows))
    finally:
        batcher.close()

    assert isinstance(answers[5], InvalidInputError)
    others = np.array(answers[:5] + answers[6:], dtype=np.float64)
    np.testing.assert_allclose(others, expected, rtol=0, atol=1e-4)
    assert max(runtime.calls) <= 4  # 11 windows, 4 at most per call
