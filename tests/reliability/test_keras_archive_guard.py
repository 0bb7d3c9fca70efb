"""The server's static check of model.keras (model_store/keras_archive.py), on the tiny bundle's genuine
archive and on archives edited to carry what a hostile or foreign bundle would."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from model_store import Bundle, UnsafeModelError, check_keras_archive


def genuine_config(bundle: Bundle) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(bundle.path / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(members["config.json"]), members


def archive(members: dict[str, bytes], config: dict[str, Any] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as output:
        for name, data in members.items():
            output.writestr(name, json.dumps(config) if name == "config.json" and config else data)
    return buffer.getvalue()


def with_layer(layer: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["config"]["layers"].insert(1, layer)

    return edit


def custom_initializer(config: dict[str, Any]) -> None:
    lstm = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "LSTM")
    lstm["config"]["kernel_initializer"] = {"module": "evil.init", "class_name": "Boom"}


def subclassed_model(config: dict[str, Any]) -> None:
    config["class_name"] = "Model"  # a subclassed keras.Model runs its own Python call()


def test_the_genuine_tiny_bundle_passes(tiny_bundle: Bundle) -> None:
    check_keras_archive((tiny_bundle.path / "model.keras").read_bytes(), "tiny v1")


@pytest.mark.parametrize(
    ("label", "edit", "fragment"),
    [
        ("Lambda layer", with_layer({"module": "keras.layers", "class_name": "Lambda", "config": {}}), "'Lambda'"),
        ("bytecode object", with_layer({"class_name": "__lambda__", "config": {"code": "4wEA"}}), "'__lambda__'"),
        ("layer from another package", with_layer({"module": "evil.layers", "class_name": "Dense", "config": {}}), "'evil.layers'"),
        ("keras layer the trainer never builds", with_layer({"module": "keras.layers", "class_name": "Conv1D", "config": {}}), "layer class 'Conv1D'"),
        ("foreign initializer inside a layer", custom_initializer, "'evil.init'"),
        ("another model class", subclassed_model, "model class 'Model'"),
        ("graph edge with a module", with_layer({"class_name": "__keras_tensor__", "module": "evil.x", "config": {}}), "'evil.x'"),
    ],
)  # fmt: skip
def test_code_carrying_or_foreign_classes_are_refused(
    label: str, edit: Callable[[dict[str, Any]], None], fragment: str, tiny_bundle: Bundle
) -> None:
    config, members = genuine_config(tiny_bundle)
    edit(config)
    with pytest.raises(UnsafeModelError, match="tiny v9") as refused:
        check_keras_archive(archive(members, config), "tiny v9")
    assert fragment in str(refused.value), label


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("not a zip", b"PK\x03\x04 but not really a zip file"),
        ("zip without config.json", archive({"metadata.json": b"{}"})),
        ("config.json not JSON", archive({"config.json": b"{not json"})),
        ("config.json a list", archive({"config.json": b"[]"})),
    ],
)
def test_an_archive_that_is_not_a_keras_model_is_refused(label: str, data: bytes) -> None:
    with pytest.raises(UnsafeModelError):
        check_keras_archive(data, "tiny v9")


def test_a_zip_bomb_config_is_refused_before_it_is_inflated() -> None:
    bomb = archive({"config.json": b" " * (64 * 1024 * 1024)})
    assert len(bomb) < 1024 * 1024  # deflates 64 MiB of spaces to well under a megabyte
    with pytest.raises(UnsafeModelError, match="oversized"):
        check_keras_archive(bomb, "tiny v9")
