"""Static inspection of a bundle's `model.keras`, without importing TensorFlow.

A `.keras` file is a zip whose `config.json` names every class Keras will instantiate. A Lambda
layer carries marshalled Python bytecode that runs on load, so a bundle whose Keras file holds
one (or any class the trainer never builds, or anything from outside the `keras` package) is
refused, whichever backend serves it: the ONNX backend never loads the file, but the bundle is
one unit and an operator switching to PREDICTOR_BACKEND=keras must not be one step from running
untrusted code. The Keras backend additionally loads with `safe_mode=True`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from model_store.errors import IntegrityError
from model_store.manifest import KERAS_FILE

if TYPE_CHECKING:
    from model_store.store import Bundle

CONFIG_FILE = "config.json"
# What training/model.py and training/scale.py build (a functional graph, members averaged, the
# scale head beside them; Sequential for bundles from before the ensemble); anything else in a
# bundle did not come from our trainer.
ALLOWED_MODELS = frozenset({"Functional", "Sequential"})
ALLOWED_LAYERS = frozenset(
    {"InputLayer", "LSTM", "Dropout", "Dense", "Average", "Flatten", "Concatenate"}
)
# How a functional graph names the tensor a layer is called on (shape, dtype, producing layer).
GRAPH_EDGE = "__keras_tensor__"
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a real config is a few kB; bigger is a zip bomb


class UnsafeModelError(IntegrityError):
    """model.keras names a class that could run code on load or that the trainer never builds."""


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialized Keras object (a dict with `class_name`) in the config, depth first."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def _read_config(data: bytes, label: str) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo(CONFIG_FILE)
            if info.file_size > MAX_CONFIG_BYTES:
                raise UnsafeModelError(f"{label}: {KERAS_FILE} has an oversized {CONFIG_FILE}")
            config = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnsafeModelError(f"{label}: {KERAS_FILE} is not a Keras archive ({exc})") from None
    if not isinstance(config, dict):
        raise UnsafeModelError(f"{label}: {KERAS_FILE} {CONFIG_FILE} is not an object")
    return config


def check_keras_archive(data: bytes, label: str) -> None:
    """Raise UnsafeModelError unless `data` (a .keras file) is a Functional or Sequential model
    of the layer classes the trainer builds, every object coming from the `keras` package."""
    config = _read_config(data, label)
    for item in _objects(config):
        module, name = item.get("module"), item.get("class_name")
        if name == GRAPH_EDGE and set(item) == {"class_name", "config"}:
            continue  # a reference to another layer's output: data, looked up, never imported
        if name in ("Lambda", "__lambda__", "TFOpLambda") or not (
            isinstance(module, str) and (module == "keras" or module.startswith("keras."))
        ):
            raise UnsafeModelError(
                f"{label}: {KERAS_FILE} holds {name!r} from module {module!r}, which can run "
                "arbitrary code when loaded"
            )
    if config.get("class_name") not in ALLOWED_MODELS:
        raise UnsafeModelError(
            f"{label}: {KERAS_FILE} model class {config.get('class_name')!r} is not allowed"
        )
    layers = config.get("config", {}).get("layers", [])
    for layer in layers if isinstance(layers, list) else [None]:
        name = layer.get("class_name") if isinstance(layer, dict) else None
        if name not in ALLOWED_LAYERS:
            raise UnsafeModelError(
                f"{label}: {KERAS_FILE} layer class {name!r} is not one the trainer builds "
                f"({', '.join(sorted(ALLOWED_LAYERS))})"
            )


def check_bundle_keras(bundle: Bundle) -> None:
    """Inspect the bundle's model.keras (read with its sha256 checked), when it has one."""
    if KERAS_FILE in bundle.manifest.files:
        check_keras_archive(bundle.read_verified(KERAS_FILE), bundle.label)
