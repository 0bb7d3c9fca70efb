"""The framework's floor: a FastAPI endpoint that returns a constant and never reads the body.

`uvicorn bench.peers.constant:app`. The answer has the keys and size of a real one, so the
response costs what ours does to send.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ANSWER: dict[str, Any] = {
    "next_close": 208.12345678901234,
    "lower": 199.12345678901234,
    "upper": 217.12345678901234,
    "scale": 4.123456789012345,
    "level": 95,
    "model": {"name": "fb-lstm", "version": 3},
}
app = FastAPI()


@app.post("/predict")
async def predict() -> dict[str, Any]:
    return ANSWER
