"""Several models from one store behind a real uvicorn server: each answers through its own
routes with its own bundle's numbers, the legacy routes answer for the default model, one model's
corrupt version or failed load never disturbs the others, a new folder goes live within a poll,
and pinning one model leaves the others following `latest`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from model_store import Bundle
from tests.app.support import Load, place_corrupt_version, republish, uvicorn_server, wait_for

pytestmark = pytest.mark.slow

TOKEN = "many-models-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Served:
    base: str
    store: Path
    client: httpx.Client

    def status(self, name: str) -> dict[str, object]:
        body: dict[str, object] = self.client.get(f"/models/{name}/status").json()
        return body

    def served(self, name: str) -> object:
        return self.status(name)["served"]


@pytest.fixture
def many(tiny_bundle: Bundle, tiny_minmax_bundle: Bundle, tmp_path: Path) -> Iterator[Served]:
    """`tiny` (relative, the default) and `minmax` (the tutorial kind) under MODELS=*, plus a
    `broken` model whose only version has a flipped byte in model.onnx."""
    store = tmp_path / "store"
    republish(tiny_bundle, store, "tiny")
    republish(tiny_minmax_bundle, store, "minmax")
    onnx = republish(tiny_bundle, store, "broken").path / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))  # before the server starts: nothing can read it half-written
    env = {
        "MODEL_STORE_DIR": str(store),
        "MODELS": "*",
        "DEFAULT_MODEL": "tiny",
        "MODEL_POLL_SECONDS": "0.2",
        "ADMIN_TOKEN": TOKEN,
    }
    with (
        uvicorn_server(env, tmp_path / "uvicorn.log") as (base, _),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield Served(base, store, client)


def _forecast(served: Served, path: str, csv: bytes) -> dict[str, object]:
    response = served.client.post(path, content=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_each_model_answers_its_own_routes_with_its_own_bundle(
    many: Served, tiny_bundle: Bundle, tiny_minmax_bundle: Bundle, shared_data: Path
) -> None:
    csv = (shared_data / "FB_test_data.csv").read_bytes()
    for name, bundle in (("tiny", tiny_bundle), ("minmax", tiny_minmax_bundle)):
        evaluation = bundle.manifest.evaluation
        assert evaluation is not None
        body = _forecast(many, f"/models/{name}/forecast", csv)
        assert body["model"] == {"name": name, "version": 1}
        predicted = [point["predicted"] for point in body["points"]]  # type: ignore[attr-defined]
        assert predicted == pytest.approx(evaluation["predicted"], rel=1e-6)
        window = bundle.manifest.context.closes
        answer = many.client.post(f"/models/{name}/predict", json={"closes": window}).json()
        assert answer["next_close"] == pytest.approx(evaluation["predicted"][0], rel=1e-6)
        metadata = many.client.get(f"/models/{name}").json()
        assert metadata["name"] == name and metadata["scaler"] == bundle.encoding.to_json()
    # The two bundles really differ, so the routes above could not both be one model.
    assert tiny_bundle.encoding.kind != tiny_minmax_bundle.encoding.kind


def test_the_legacy_routes_answer_for_the_default_model(many: Served, shared_data: Path) -> None:
    window = {"closes": [150.0 + i for i in range(40)]}
    legacy = many.client.post("/predict", json=window).json()
    assert legacy == many.client.post("/models/tiny/predict", json=window).json()
    assert legacy["model"] == {"name": "tiny", "version": 1}
    csv = (shared_data / "FB_test_data.csv").read_bytes()
    assert _forecast(many, "/forecast", csv) == _forecast(many, "/models/tiny/forecast", csv)
    legacy_model = many.client.get("/model").json()
    tiny_model = many.client.get("/models/tiny").json()
    assert legacy_model == tiny_model
    assert many.client.get("/readyz").json() == {
        "status": "ready",
        "model": {"name": "tiny", "version": 1},
    }


def test_a_model_that_fails_to_load_leaves_the_others_ready(many: Served) -> None:
    overview = many.client.get("/models").json()
    assert overview["default_model"] == "tiny"
    states = {model["name"]: model["state"] for model in overview["models"]}
    assert states == {"tiny": "serving", "broken": "not_ready", "minmax": "serving"}
    assert many.client.get("/models/broken/ready").status_code == 503
    refused = many.client.post("/models/broken/predict", json={"closes": [150.0] * 40})
    assert refused.status_code == 503
    assert "broken v1: sha256 mismatch for model.onnx" in refused.json()["error"]["message"]
    assert many.client.get("/models/minmax/ready").status_code == 200
    assert many.client.get("/readyz").status_code == 200
    unknown = many.client.post("/models/nobody/predict", json={"closes": [150.0] * 40})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "model_not_found",
        "message": "no model named 'nobody' is served (served: tiny, broken, minmax)",
        "detail": [],
    }


def test_a_corrupt_version_of_one_model_is_refused_while_all_keep_serving(
    many: Served, tiny_minmax_bundle: Bundle
) -> None:
    with (
        Load(many.base, path="/models/tiny/predict") as tiny_load,
        Load(many.base, path="/models/minmax/predict") as minmax_load,
        Load(many.base, clients=1) as legacy_load,
    ):
        wait_for(lambda: min(len(tiny_load.results), len(minmax_load.results)) >= 20)
        corrupt = place_corrupt_version(tiny_minmax_bundle, many.store, "minmax")
        wait_for(lambda: many.status("minmax")["last_load_error"] is not None)
        seen = len(minmax_load.results)
        wait_for(lambda: len(minmax_load.results) >= seen + 20)
    for load in (tiny_load, minmax_load, legacy_load):
        assert {status for status, _ in load.results} == {200}
    assert {version for _, version in minmax_load.results} == {1}
    status = many.status("minmax")
    assert status["served"] == 1 and status["last_load_error"]["version"] == corrupt  # type: ignore[index]
    assert many.served("tiny") == 1


def test_a_new_model_folder_goes_live_within_a_poll(many: Served, tiny_bundle: Bundle) -> None:
    assert many.client.get("/models/late/ready").status_code == 404
    republish(tiny_bundle, many.store, "late")
    wait_for(lambda: many.client.get("/models/late/ready").status_code == 200, seconds=10)
    names = [model["name"] for model in many.client.get("/models").json()["models"]]
    assert "late" in names
    answer = many.client.post("/models/late/predict", json={"closes": [150.0] * 40}).json()
    assert answer["model"] == {"name": "late", "version": 1}


def test_pinning_one_model_leaves_the_others_following_latest(
    many: Served, tiny_bundle: Bundle, tiny_minmax_bundle: Bundle
) -> None:
    republish(tiny_minmax_bundle, many.store, "minmax")
    wait_for(lambda: many.served("minmax") == 2)
    window = {"closes": tiny_minmax_bundle.manifest.context.closes}
    # The version served before stays loaded: a client can still target it.
    assert many.status("minmax")["loaded"] == [1, 2]
    old = many.client.post("/models/minmax/versions/1/predict", json=window)
    assert old.status_code == 200 and old.json()["model"] == {"name": "minmax", "version": 1}
    missing = many.client.post("/models/tiny/versions/7/predict", json=window)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "model tiny has no loaded version 7 (loaded: 1)"

    pinned = many.client.post("/admin/pin", json={"model": "minmax", "version": 1}, headers=BEARER)
    assert pinned.status_code == 200, pinned.text
    assert pinned.json() == {
        "changed": True,
        "served": {"name": "minmax", "version": 1},
        "pinned": 1,
    }
    republish(tiny_bundle, many.store, "tiny")
    republish(tiny_minmax_bundle, many.store, "minmax")
    wait_for(lambda: many.served("tiny") == 2)
    wait_for(lambda: 3 in [v["version"] for v in many.status("minmax")["versions"]])  # type: ignore[attr-defined]
    assert many.served("minmax") == 1 and many.status("minmax")["pinned"] == 1
    assert many.status("tiny")["pinned"] is None
    unknown = many.client.post("/admin/pin", json={"model": "nobody", "version": 1}, headers=BEARER)
    assert unknown.status_code == 404
