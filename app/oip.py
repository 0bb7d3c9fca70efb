"""The Open Inference Protocol (KServe V2) REST tensors: JSON data and the binary-data extension.

A request is JSON, or (binary extension) a JSON header of `Inference-Header-Content-Length`
bytes followed by the raw little-endian tensors named in it by `parameters.binary_data_size`.
Outputs come back the same way the client asked: JSON `data`, or raw bytes after the header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER_LENGTH = "inference-header-content-length"
INPUT_NAME = "closes"
OUTPUT_NAMES = ("next_close", "lower", "upper")
INPUT_TYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
OUTPUT_TYPE = "FP64"


class ProtocolError(ValueError):
    """A request that breaks the protocol or our model's signature (a 400 in the V2 shape)."""


@dataclass(frozen=True)
class InferRequest:
    """The parsed request: the windows of closes and how to answer."""

    id: str | None
    windows: np.ndarray  # (n, window) float64
    level: int | None
    outputs: tuple[str, ...] | None  # None: every output the model has
    binary_outputs: frozenset[str]


def _header_and_binary(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    if header_length is None:
        size = len(body)
    elif header_length.isdigit() and int(header_length) <= len(body):
        size = int(header_length)
    else:
        raise ProtocolError(f"Inference-Header-Content-Length {header_length[:20]!r} is invalid")
    try:
        return json.loads(body[:size]), body[size:]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"request header is not valid JSON: {exc}") from None


def _tensor(spec: Mapping[str, Any], binary: bytes, window: int) -> np.ndarray:
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if name != INPUT_NAME:
        raise ProtocolError(f"unexpected input {name!r}: the model takes one input {INPUT_NAME!r}")
    dtype = INPUT_TYPES.get(str(datatype))
    if dtype is None:
        raise ProtocolError(f"input {name}: datatype {datatype!r} is not FP32 or FP64")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        and shape[1] == window
    ):
        raise ProtocolError(f"input {name}: shape {shape!r} is not [N, {window}]")
    count = shape[0] * shape[1]
    if "data" in spec:
        try:
            values = np.asarray(spec["data"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"input {name}: data is not a list of numbers ({exc})") from None
    else:
        if len(binary) != count * dtype.itemsize:
            raise ProtocolError(
                f"input {name}: {len(binary)} bytes of binary data for shape {shape} {datatype}"
            )
        values = np.frombuffer(binary, dtype=dtype).astype(np.float64)
    if len(values) != count:
        raise ProtocolError(f"input {name}: {len(values)} values for shape {shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        bad = int(np.flatnonzero(~(np.isfinite(values) & (values > 0)))[0])
        raise ProtocolError(
            f"input {name}: value [{bad // window}, {bad % window}] is not a finite positive close"
        )
    return values.reshape(shape[0], window)


def parse_infer_request(body: bytes, header_length: str | None, window: int) -> InferRequest:
    """The windows and answer options of an infer request; ProtocolError naming what is wrong."""
    header, binary = _header_and_binary(body, header_length)
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise ProtocolError("request must be an object with a list of 'inputs'")
    if len(header["inputs"]) != 1 or not isinstance(header["inputs"][0], dict):
        raise ProtocolError(f"the model takes exactly one input, {INPUT_NAME!r}")
    spec = header["inputs"][0]
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None and (not isinstance(size, int) or size != len(binary)):
        raise ProtocolError(f"input {INPUT_NAME}: binary_data_size {size!r} != {len(binary)} bytes")
    windows = _tensor(spec, binary, window)
    parameters = header.get("parameters") or {}
    level = parameters.get("level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        raise ProtocolError(f"parameter level must be a whole percent, got {level!r}")
    requested = header.get("outputs")
    all_binary = parameters.get("binary_data_output") is True
    outputs: tuple[str, ...] | None = None
    if requested is None:
        binary_outputs = frozenset(OUTPUT_NAMES if all_binary else ())
    else:
        if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
            raise ProtocolError("'outputs' must be a list of objects")
        outputs = tuple(str(o.get("name")) for o in requested)
        if unknown := [o for o in outputs if o not in OUTPUT_NAMES]:
            raise ProtocolError(
                f"unknown output {unknown[0]!r} (outputs: {', '.join(OUTPUT_NAMES)})"
            )
        binary_outputs = frozenset(
            str(o.get("name"))
            for o in requested
            if (o.get("parameters") or {}).get("binary_data", all_binary) is True
        )
    request_id = header.get("id")
    return InferRequest(
        None if request_id is None else str(request_id), windows, level, outputs, binary_outputs
    )


def infer_response(
    request: InferRequest, name: str, version: int, tensors: Mapping[str, np.ndarray | None]
) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary tensors, its JSON header's length."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    wanted = request.outputs or [o for o in OUTPUT_NAMES if tensors[o] is not None]
    for output in wanted:
        values = tensors[output]
        if values is None:  # a bundle without intervals has no bounds
            raise ProtocolError(f"model {name} v{version} has no intervals: no output {output!r}")
        tensor: dict[str, Any] = {"name": output, "datatype": OUTPUT_TYPE, "shape": [len(values)]}
        if output in request.binary_outputs:
            raw = np.asarray(values, dtype="<f8").tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = np.asarray(values, dtype=np.float64).tolist()
        outputs.append(tensor)
    document: dict[str, Any] = {
        "model_name": name,
        "model_version": str(version),
        "outputs": outputs,
    }
    if request.id is not None:
        document["id"] = request.id
    header = json.dumps(document).encode()
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
