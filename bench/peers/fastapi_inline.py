"""A plain FastAPI app running the model inline: one request, one `session.run`, a pydantic
body, nothing else (no middleware, metrics, batching or error shape).

`uvicorn bench.peers.fastapi_inline:app`; the bundle comes from PEER_STORE_DIR and friends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from bench.peers.model import PeerModel

model = PeerModel.from_env()
app = FastAPI()


class PredictBody(BaseModel):
    closes: list[float]


@app.post("/predict")
async def predict(body: PredictBody) -> dict[str, Any]:
    return model.answer(body.closes)
