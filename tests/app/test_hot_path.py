"""The hot path (app/hot.py) answers exactly what the FastAPI routes answer.

A `+json` content type is read as JSON by the routes but is not one the hot path takes, so each
request is sent both ways to the same app and the two answers compared byte for byte.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.hot import level_of, route_of

WINDOW = [round(150.0 + 0.37 * i, 2) for i in range(40)]
HOT = {"content-type": "application/json"}
ROUTE = {"content-type": "application/vnd.test+json"}

CASES = {
    "one window": ("/predict", {"closes": WINDOW}),
    "one window, level 80": ("/predict?level=80", {"closes": WINDOW}),
    "a batch": ("/predict", {"windows": [WINDOW, [c * 1.01 for c in WINDOW]]}),
    "an empty batch": ("/predict", {"windows": []}),
    "the named model": ("/models/tiny/predict", {"closes": WINDOW}),
    "a named batch": ("/models/tiny/predict?level=95", {"windows": [WINDOW]}),
    "an unknown model": ("/models/nope/predict", {"closes": WINDOW}),
    "a short window": ("/predict", {"closes": WINDOW[:39]}),
    "a short window in a batch": ("/predict", {"windows": [WINDOW, WINDOW[:3]]}),
    "a NaN": ("/predict", {"closes": [*WINDOW[:39], float("nan")]}),
    "a string close": ("/predict", {"closes": [*WINDOW[:39], "1.0"]}),
    "both keys": ("/predict", {"closes": WINDOW, "windows": [WINDOW]}),
    "an unknown key": ("/models/tiny/predict", {"closes": WINDOW, "x": 1}),
    "a level out of range": ("/predict?level=100", {"closes": WINDOW}),
    "a level that is no number": ("/predict?level=high", {"closes": WINDOW}),
    "a zero-padded level": ("/predict?level=080", {"closes": WINDOW}),
    "another query": ("/predict?level=80&x=1", {"closes": WINDOW}),
}


@pytest.mark.parametrize(("path", "payload"), CASES.values(), ids=CASES.keys())
def test_the_hot_path_answers_what_the_route_answers(
    client: TestClient, path: str, payload: object
) -> None:
    body = json.dumps(payload).encode()
    hot = client.post(path, content=body, headers=HOT)
    route = client.post(path, content=body, headers=ROUTE)
    assert hot.status_code == route.status_code, hot.text
    assert hot.content == route.content
    assert hot.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert hot.headers["content-length"] == route.headers["content-length"]


@pytest.mark.parametrize(
    "body", [b"", b'{"closes": [1, 2,', b"\xef\xbb\xbf" + json.dumps({"closes": WINDOW}).encode()]
)
def test_bodies_the_fast_parser_refuses_get_the_routes_answer(
    client: TestClient, body: bytes
) -> None:
    hot = client.post("/predict", content=body, headers=HOT)
    route = client.post("/predict", content=body, headers=ROUTE)
    assert (hot.status_code, hot.content) == (route.status_code, route.content)


def test_only_post_to_the_two_routes_is_hot() -> None:
    def scope(method: str, path: str, root_path: str = "") -> dict[str, object]:
        return {"method": method, "path": path, "root_path": root_path}

    assert route_of(scope("POST", "/predict")) == ("/predict", None)
    assert route_of(scope("POST", "/models/fb-lstm/predict")) == (
        "/models/{name}/predict",
        "fb-lstm",
    )
    for method, path in [
        ("GET", "/predict"),
        ("POST", "/predict/"),
        ("POST", "/models//predict"),
        ("POST", "/models/predict"),
        ("POST", "/models/a/b/predict"),
        ("POST", "/models/fb-lstm/versions/3/predict"),
        ("POST", f"/models/{'x' * 65}/predict"),
    ]:
        assert route_of(scope(method, path)) is None, (method, path)
    assert route_of(scope("POST", "/predict", root_path="/api")) is None


def test_only_a_plain_level_query_is_read_on_the_hot_path() -> None:
    assert level_of(b"") == 95
    assert level_of(b"level=80") == 80
    for query in (b"level=080", b"level=", b"level=1000", b"level=100", b"x=1", b"level=8&x=1"):
        assert level_of(query) is None, query
