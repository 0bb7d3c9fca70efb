"""The Open Inference Protocol (KServe V2) REST endpoints against a real uvicorn server on the
committed demo store, through the real `tritonclient[http]` client and through plain JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from model_store import ModelStore
from tests.app.support import REPO_ROOT, uvicorn_server

pytestmark = pytest.mark.slow

DEMO_STORE = REPO_ROOT / "models"
DEMO = "fb-lstm"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo store served with one more listed model, `ghost`, that has no folder yet."""
    log = tmp_path_factory.mktemp("oip") / "uvicorn.log"
    env = {"MODEL_STORE_DIR": str(DEMO_STORE), "MODELS": f"{DEMO},ghost", "DEFAULT_MODEL": DEMO}
    with uvicorn_server(env, log) as (url, _):
        yield url


@pytest.fixture(scope="module")
def window() -> list[float]:
    return ModelStore(DEMO_STORE).verify(DEMO).manifest.context.closes


def _client(base: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=base.removeprefix("http://"))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_tritonclient_gets_the_next_close_of_predict(
    base: str, window: list[float], binary: bool, datatype: str
) -> None:
    expected = httpx.post(f"{base}/predict", json={"closes": window}).json()
    closes = np.array(
        [window, window[::-1]], dtype=np.float32 if datatype == "FP32" else np.float64
    )
    tensor = triton.InferInput("closes", list(closes.shape), datatype)
    tensor.set_data_from_numpy(closes, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("next_close", "upper")]
    result = _client(base).infer(DEMO, [tensor], outputs=outputs)
    next_close = result.as_numpy("next_close")
    assert next_close.shape == (2,) and next_close.dtype == np.float64
    # float32 input rounds the closes; the model itself reads float32.
    tolerance = 1e-6 if datatype == "FP32" else 1e-12
    assert next_close[0] == pytest.approx(expected["next_close"], rel=tolerance)
    assert result.as_numpy("upper")[0] == pytest.approx(expected["upper"], rel=tolerance)
    assert result.as_numpy("lower") is None  # not asked for
    assert result.get_response()["model_version"] == str(expected["model"]["version"])


def test_tritonclient_without_outputs_gets_every_output_in_binary(
    base: str, window: list[float]
) -> None:
    expected = httpx.post(f"{base}/predict", json={"closes": window}, params={"level": 80}).json()
    tensor = triton.InferInput("closes", [1, 40], "FP64")
    tensor.set_data_from_numpy(np.array([window]))
    result = _client(base).infer(DEMO, [tensor], parameters={"level": 80})
    for name in ("next_close", "lower", "upper"):
        assert result.as_numpy(name)[0] == pytest.approx(expected[name], rel=1e-12)


def test_tritonclient_reads_metadata_and_readiness_per_model(base: str) -> None:
    client = _client(base)
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_model_metadata(DEMO)
    assert metadata["name"] == DEMO and metadata["versions"] == ["3"]
    assert metadata["inputs"] == [{"name": "closes", "datatype": "FP32", "shape": [-1, 40]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("next_close", "FP64", [-1]),
        ("lower", "FP64", [-1]),
        ("upper", "FP64", [-1]),
    ]
    assert client.is_model_ready(DEMO) and client.is_model_ready(DEMO, "3")
    assert not client.is_model_ready("ghost")  # listed in MODELS, no folder in the store
    assert not client.is_model_ready(DEMO, "1")  # in the store, never loaded
    assert not client.is_model_ready("nobody")
    with pytest.raises(InferenceServerException, match="no model named 'nobody' is served"):
        client.get_model_metadata("nobody")


def _infer(base: str, name: str, body: object, path: str = "infer") -> httpx.Response:
    return httpx.post(f"{base}/v2/models/{name}/{path}", content=json.dumps(body))


def test_plain_json_infer_and_the_v2_error_shape(base: str, window: list[float]) -> None:
    expected = httpx.post(f"{base}/predict", json={"windows": [window, window]}).json()
    tensor = {"name": "closes", "shape": [2, 40], "datatype": "FP64", "data": window + window}
    answer = _infer(base, DEMO, {"id": "req-1", "inputs": [tensor]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "req-1" and body["model_name"] == DEMO and body["model_version"] == "3"
    outputs = {output["name"]: output for output in body["outputs"]}
    assert outputs["next_close"] == {
        "name": "next_close",
        "datatype": "FP64",
        "shape": [2],
        "data": expected["predictions"],
    }
    assert outputs["lower"]["data"] == expected["lower"]
    versioned = _infer(base, DEMO, {"inputs": [tensor]}, "versions/3/infer")
    assert versioned.json()["outputs"] == body["outputs"]

    cases = [
        ({"inputs": [{**tensor, "shape": [2, 39]}]}, 400, "input closes: shape [2, 39] is not [N, 40]"),
        ({"inputs": [{**tensor, "datatype": "INT64"}]}, 400, "datatype 'INT64' is not FP32 or FP64"),
        ({"inputs": [{**tensor, "data": window}]}, 400, "input closes: 40 values for shape [2, 40]"),
        ({"inputs": [{**tensor, "name": "x"}]}, 400, "unexpected input 'x'"),
        ({"inputs": [tensor], "parameters": {"level": 30}}, 400, "level must be a whole percent"),
        ({"inputs": [tensor], "outputs": [{"name": "mean"}]}, 400, "unknown output 'mean'"),
        ({"inputs": []}, 400, "exactly one input"),
    ]  # fmt: skip
    for request, status, message in cases:
        refused = _infer(base, DEMO, request)
        assert refused.status_code == status, request
        assert set(refused.json()) == {"error"} and message in refused.json()["error"]
    negative = _infer(base, DEMO, {"inputs": [{**tensor, "data": [-1.0, *window[1:], *window]}]})
    assert negative.json() == {"error": "input closes: value [0, 0] is not a finite positive close"}
    assert _infer(base, "nobody", {"inputs": [tensor]}).status_code == 404
    not_ready = _infer(base, "ghost", {"inputs": [tensor]})
    assert not_ready.status_code == 503 and "ghost" in not_ready.json()["error"]
    not_loaded = _infer(base, DEMO, {"inputs": [tensor]}, "versions/1/infer")
    assert not_loaded.status_code == 404
    assert not_loaded.json() == {"error": "model fb-lstm has no loaded version 1 (loaded: 3)"}
    garbage = httpx.post(f"{base}/v2/models/{DEMO}/infer", content=b"{not json")
    assert garbage.status_code == 400 and "not valid JSON" in garbage.json()["error"]
    for path in (f"/v2/models/{DEMO}/versions/latest/ready", f"/v2/models/{'x' * 65}"):
        invalid = httpx.get(f"{base}{path}")
        assert invalid.status_code == 422 and set(invalid.json()) == {"error"}, path


def test_readiness_per_model_over_the_protocol(base: str) -> None:
    assert httpx.get(f"{base}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{base}/v2/models/{DEMO}/ready").json() == {"name": DEMO, "ready": True}
    ghost = httpx.get(f"{base}/v2/models/ghost/ready")
    assert ghost.status_code == 503 and ghost.json() == {"name": "ghost", "ready": False}
    assert httpx.get(f"{base}/readyz").status_code == 200  # the default model is served
    assert httpx.get(f"{base}/models/ghost/ready").status_code == 503


def test_metrics_count_infer_by_model(base: str, window: list[float]) -> None:
    tensor = {"name": "closes", "shape": [1, 40], "datatype": "FP64", "data": window}
    before = _count(base)
    assert _infer(base, DEMO, {"inputs": [tensor]}).status_code == 200
    assert _count(base) == before + 1


def _count(base: str) -> float:
    prefix = f'predictions_total{{endpoint="infer",model="{DEMO}",version="3"}} '
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0
