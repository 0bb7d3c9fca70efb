"""The floor plus the model: the constant floor's endpoint (bench/peers/constant.py), body not
read, that also makes the one ONNX Runtime call a prediction needs, on a window encoded at
start-up, and returns the constant.

`uvicorn bench.peers.constant_model:app`; the bundle comes from PEER_STORE_DIR and friends. Its
round trip is the floor's plus the model's own time: against the floor it shows what the call
alone adds to a sequential request on FastAPI's endpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import FastAPI

from bench.peers.constant import ANSWER
from bench.peers.model import PeerModel

model = PeerModel.from_env()
# One window of equal closes, encoded once (the model's time does not depend on the values):
# the endpoint runs only the session.
ENCODED = model.encoding.encode(np.ones((1, model.window)))
app = FastAPI()


@app.post("/predict")
async def predict() -> dict[str, Any]:
    model.session.run(None, {model.input: ENCODED})
    return ANSWER
