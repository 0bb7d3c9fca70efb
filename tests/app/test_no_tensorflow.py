"""The default (onnx) serving process never imports TensorFlow, Keras or tf2onnx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.app.support import REPO_ROOT

# Runs in a fresh interpreter: this test process has TensorFlow loaded by the training fixtures.
SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from app.main import app
with TestClient(app) as client:
    ready = client.get("/readyz").status_code
    predict = client.post("/predict", json={"closes": [150.0] * 40}).status_code
    with open(sys.argv[1], "rb") as csv:
        forecast = client.post(
            "/forecast?horizon=3", content=csv.read(), headers={"content-type": "text/csv"}
        ).status_code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
print(json.dumps({"ready": ready, "predict": predict, "forecast": forecast, "heavy": heavy}))
"""


def test_serving_with_the_default_backend_never_imports_tensorflow(
    tiny_store: Path, shared_data: Path
) -> None:
    env = {**os.environ, "MODEL_STORE_DIR": str(tiny_store), "MODEL_NAME": "tiny"}
    env.pop("PREDICTOR_BACKEND", None)
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(shared_data / "FB_test_data.csv")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"ready": 200, "predict": 200, "forecast": 200, "heavy": []}
