"""The store on real folders: publish, list, resolve, load, verify, strict names and versions,
and tamper detection on a real trained bundle."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from store_samples import MANIFEST

from model_store import (
    Bundle,
    IntegrityError,
    InvalidNameError,
    InvalidVersionError,
    ManifestError,
    ModelNotFoundError,
    ModelStore,
    StoreNotFoundError,
    VersionNotFoundError,
    parse_version,
)


def publish(store: ModelStore, name: str = "demo", payload: bytes = b"weights") -> Bundle:
    return store.publish(name, {"model.onnx": payload, "notes.txt": b"hello"}, MANIFEST)


def test_publish_numbers_versions_and_fills_the_manifest(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    first = publish(store)
    assert first.path == tmp_path / "demo" / "1"
    assert sorted(p.name for p in first.path.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "notes.txt",
    ]
    on_disk = json.loads((first.path / "manifest.json").read_text())
    assert on_disk == first.manifest.to_json()
    assert on_disk["name"] == "demo" and on_disk["version"] == 1 and on_disk["format_version"] == 1
    assert on_disk["files"] == {
        "model.onnx": hashlib.sha256(b"weights").hexdigest(),
        "notes.txt": hashlib.sha256(b"hello").hexdigest(),
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", on_disk["created_at"])
    created = datetime.fromisoformat(on_disk["created_at"])
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC) + timedelta(seconds=1)
    assert [publish(store).version for _ in range(10)] == list(range(2, 12))
    assert store.versions("demo") == list(range(1, 12))  # numeric order: 10 and 11 after 9


def test_resolve_latest_and_pinned(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    publish(store, payload=b"one")
    publish(store, payload=b"two")
    assert store.resolve("demo") == 2
    assert store.resolve("demo", "latest") == 2
    assert store.resolve("demo", 1) == 1 and store.resolve("demo", "1") == 1
    assert store.load("demo", 1).read_verified("model.onnx") == b"one"
    assert store.load("demo").read_verified("model.onnx") == b"two"
    with pytest.raises(
        VersionNotFoundError, match=r"^model 'demo' has no version 3 \(available: 1, 2\)$"
    ):
        store.resolve("demo", 3)
    with pytest.raises(ModelNotFoundError, match="model 'other' has no versions"):
        store.resolve("other")
    assert store.names() == ["demo"]


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "absent")
    with pytest.raises(StoreNotFoundError, match="does not exist"):
        store.versions("demo")
    with pytest.raises(StoreNotFoundError):
        store.load("demo")


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "..", ".hidden", "", "-dash", "a b", "x" * 65, "a\x00b", "ü"]
)
def test_unsafe_names_are_refused_everywhere(tmp_path: Path, name: str) -> None:
    store = ModelStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    for action in (
        lambda: publish(store, name),
        lambda: store.versions(name),
        lambda: store.verify(name),
    ):
        with pytest.raises(InvalidNameError, match="invalid model name"):
            action()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert list((tmp_path / "store").iterdir()) == []


@pytest.mark.parametrize("version", ["0", "-1", "1.5", "01", "abc", "../1", "", True, 0, 10**10])
def test_bad_versions_are_refused(tmp_path: Path, version: Any) -> None:
    publish(ModelStore(tmp_path))
    with pytest.raises(InvalidVersionError, match="use 'latest' or a positive integer"):
        ModelStore(tmp_path).resolve("demo", version)
    with pytest.raises(InvalidVersionError):
        parse_version(version)


@pytest.mark.parametrize("filename", ["manifest.json", "../escape", "sub/file", ".hidden"])
def test_bad_bundle_file_names_are_refused(tmp_path: Path, filename: str) -> None:
    with pytest.raises(ManifestError, match="invalid bundle file name"):
        ModelStore(tmp_path).publish("demo", {filename: b"x"}, MANIFEST)
    assert not (tmp_path / "escape").exists()
    assert ModelStore(tmp_path).versions("demo") == []


def test_stray_folders_are_not_versions(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    publish(store)
    (tmp_path / "demo" / ".publish-leftover").mkdir()
    (tmp_path / "demo" / "draft").mkdir()
    (tmp_path / "demo" / "7").mkdir()  # an integer folder without a manifest is incomplete
    assert store.versions("demo") == [1]
    assert store.resolve("demo") == 1


def test_publish_skips_past_an_incomplete_integer_folder(tmp_path: Path) -> None:
    """Regression: publish used to spin forever when `<next>/` existed without a manifest."""
    store = ModelStore(tmp_path)
    publish(store)
    (tmp_path / "demo" / "2").mkdir()
    assert publish(store).version == 3
    assert store.versions("demo") == [1, 3]


@pytest.fixture
def tiny_copy(tiny_bundle: Bundle, tmp_path: Path) -> ModelStore:
    """A private copy of the real tiny bundle that a test may damage."""
    shutil.copytree(tiny_bundle.path, tmp_path / "tiny" / "1")
    store = ModelStore(tmp_path)
    store.verify("tiny", 1)
    return store


@pytest.mark.slow
@pytest.mark.parametrize("filename", ["model.onnx", "model.keras", "report.png"])
@pytest.mark.parametrize("where", [0, 0.5, -1])
def test_one_flipped_byte_fails_verify(tiny_copy: ModelStore, filename: str, where: float) -> None:
    path = tiny_copy.root / "tiny" / "1" / filename
    data = bytearray(path.read_bytes())
    offset = int(where * len(data)) if where >= 0 else len(data) - 1
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(
        IntegrityError, match=rf"^tiny v1: sha256 mismatch for {re.escape(filename)}$"
    ):
        tiny_copy.verify("tiny")
    bundle = tiny_copy.load("tiny", verify=False)
    with pytest.raises(IntegrityError, match=rf"sha256 mismatch for {re.escape(filename)}"):
        bundle.read_verified(filename)


@pytest.mark.slow
def test_missing_and_extra_files_fail_verify(tiny_copy: ModelStore) -> None:
    folder = tiny_copy.root / "tiny" / "1"
    (folder / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"^tiny v1: unexpected file extra\.bin$"):
        tiny_copy.verify("tiny")
    (folder / "extra.bin").unlink()
    (folder / "report.png").unlink()
    with pytest.raises(IntegrityError, match=r"^tiny v1: missing file report\.png$"):
        tiny_copy.verify("tiny")


@pytest.mark.slow
def test_manifest_must_match_its_folder(tiny_copy: ModelStore) -> None:
    path = tiny_copy.root / "tiny" / "1" / "manifest.json"
    original = json.loads(path.read_text())
    path.write_text(json.dumps({**original, "version": 2}))
    with pytest.raises(IntegrityError, match="manifest version 2 differs from folder 1"):
        tiny_copy.verify("tiny")
    path.write_text(json.dumps({**original, "name": "other"}))
    with pytest.raises(IntegrityError, match="manifest name 'other' differs from folder"):
        tiny_copy.verify("tiny")
    path.write_text(json.dumps({k: v for k, v in original.items() if k != "scaler"}))
    with pytest.raises(ManifestError, match=r"^1: manifest.json lacks scaler$"):
        tiny_copy.verify("tiny")
    path.write_text(path.read_text()[:-5])
    with pytest.raises(ManifestError, match=r"manifest\.json is unreadable"):
        tiny_copy.verify("tiny")
