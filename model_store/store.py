"""Versioned bundles on disk, TensorFlow Serving style: `<store>/<name>/<version>/`.

A version folder appears in one atomic rename after all its files and manifest are written and
fsynced, so a reader sees either a complete version or none. Integer folders are versions;
anything else (including the hidden `.publish-*` staging folders) is ignored.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model_store.encoding import WindowEncoding
from model_store.errors import (
    IntegrityError,
    InvalidNameError,
    InvalidVersionError,
    ManifestError,
    ModelNotFoundError,
    StoreNotFoundError,
    VersionNotFoundError,
)
from model_store.intervals import IntervalSpec
from model_store.manifest import MANIFEST_FILE, BundleSpec, Manifest

LATEST = "latest"
STAGING_PREFIX = ".publish-"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION = re.compile(r"[1-9][0-9]{0,9}")
_CHUNK = 1 << 20


def validate_name(name: str) -> str:
    """A model name: 1-64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid model name {str(name)[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_version(version: int | str) -> int | str:
    """`latest` or a positive integer (given as int or decimal string)."""
    if isinstance(version, bool):
        raise InvalidVersionError(
            f"invalid version {version!r}: use 'latest' or a positive integer"
        )
    if isinstance(version, int):
        if 1 <= version < 10**10:
            return version
    elif isinstance(version, str):
        text = version.strip()
        if text.lower() == LATEST:
            return LATEST
        if _VERSION.fullmatch(text):
            return int(text)
    raise InvalidVersionError(
        f"invalid version {str(version)[:40]!r}: use 'latest' or a positive integer"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Bundle:
    """A complete version folder and its parsed manifest."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def label(self) -> str:
        return self.manifest.label

    @property
    def window(self) -> int:
        return self.manifest.window

    @property
    def feature(self) -> str:
        return self.manifest.feature

    @property
    def encoding(self) -> WindowEncoding:
        return self.manifest.encoding

    @property
    def intervals(self) -> IntervalSpec | None:
        """Calibrated prediction intervals, or None for a bundle trained without them."""
        return self.manifest.parsed_intervals

    @property
    def context_dates(self) -> np.ndarray:
        return self.manifest.context.date_array

    @property
    def context_closes(self) -> np.ndarray:
        return self.manifest.context.close_array

    def file(self, filename: str) -> Path:
        if filename not in self.manifest.files:
            raise IntegrityError(f"{self.label}: no file {filename!r} in manifest")
        return self.path / filename

    def read_verified(self, filename: str) -> bytes:
        """The file's bytes, checked against the manifest's sha256 in the same read."""
        data = self.file(filename).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.manifest.files[filename]:
            raise IntegrityError(f"{self.label}: sha256 mismatch for {filename}")
        return data


def _read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{folder.name}: {MANIFEST_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{folder.name}: {MANIFEST_FILE} is unreadable ({exc})") from None
    try:
        return Manifest.from_json(document)
    except ManifestError as exc:
        raise ManifestError(f"{folder.name}: {exc}") from None


class ModelStore:
    """Publish, list, resolve, verify and load bundles under one root folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _model_dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise StoreNotFoundError(f"model store {str(self.root)!r} does not exist")

    def names(self) -> list[str]:
        """Model names that have at least one complete version."""
        self._require_root()
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and _NAME.fullmatch(entry.name) and self.versions(entry.name)
        )

    def versions(self, name: str) -> list[int]:
        """Complete versions of `name`, ascending (staging folders are never listed)."""
        self._require_root()
        folder = self._model_dir(name)
        if not folder.is_dir():
            return []
        return sorted(
            int(entry.name)
            for entry in folder.iterdir()
            if _VERSION.fullmatch(entry.name) and (entry / MANIFEST_FILE).is_file()
        )

    def resolve(self, name: str, version: int | str = LATEST) -> int:
        """The concrete version for `latest` (the highest complete one) or a pinned number."""
        wanted = parse_version(version)
        available = self.versions(name)
        if not available:
            raise ModelNotFoundError(f"model {name!r} has no versions in {str(self.root)!r}")
        if wanted == LATEST:
            return available[-1]
        if wanted not in available:
            raise VersionNotFoundError(
                f"model {name!r} has no version {wanted} (available: "
                f"{', '.join(map(str, available))})"
            )
        return int(wanted)

    def verify(self, name: str, version: int | str = LATEST) -> Bundle:
        """Check every file's sha256, that no file is missing or extra, and that the manifest's
        name and version match the folder. Returns the verified bundle."""
        number = self.resolve(name, version)
        folder = self._model_dir(name) / str(number)
        manifest = _read_manifest(folder)
        label = f"{name} v{number}"
        if manifest.name != name:
            raise IntegrityError(f"{label}: manifest name {manifest.name!r} differs from folder")
        if manifest.version != number:
            raise IntegrityError(
                f"{label}: manifest version {manifest.version!r} differs from folder {number}"
            )
        listed = manifest.files
        present = {entry.name for entry in folder.iterdir() if entry.name != MANIFEST_FILE}
        if missing := sorted(set(listed) - present):
            raise IntegrityError(f"{label}: missing file {missing[0]}")
        if extra := sorted(present - set(listed)):
            raise IntegrityError(f"{label}: unexpected file {extra[0]}")
        for filename, expected in sorted(listed.items()):
            if sha256_file(folder / filename) != expected:
                raise IntegrityError(f"{label}: sha256 mismatch for {filename}")
        return Bundle(folder, manifest)

    def load(self, name: str, version: int | str = LATEST, *, verify: bool = True) -> Bundle:
        """The bundle for `name`/`version`, verified unless asked otherwise."""
        if verify:
            return self.verify(name, version)
        number = self.resolve(name, version)
        folder = self._model_dir(name) / str(number)
        return Bundle(folder, _read_manifest(folder))

    def publish(
        self,
        name: str,
        files: Mapping[str, str | os.PathLike[str] | bytes],
        spec: BundleSpec,
        created_at: str | None = None,
    ) -> Bundle:
        """Write `files` (name -> source path or bytes) and the manifest of `spec` as the next
        version.

        Steps: stage in a hidden folder beside the versions (same filesystem), fsync every file and
        the folder, then rename it to the next integer in one atomic step and fsync the parent.
        `name`, `version`, `created_at` (default: now), `format_version` and `files` are filled in
        here.
        """
        model_dir = self._model_dir(name)
        for filename in files:
            if filename == MANIFEST_FILE or not _NAME.fullmatch(filename):
                raise ManifestError(f"invalid bundle file name {filename!r}")
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = model_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            hashes: dict[str, str] = {}
            for filename, source in sorted(files.items()):
                data = source if isinstance(source, bytes) else Path(source).read_bytes()
                _write_file(staging / filename, data)
                hashes[filename] = hashlib.sha256(data).hexdigest()
            created_at = created_at or utc_now()
            while True:
                # Past every integer folder, complete or not: a stray incomplete folder must not
                # be picked again and again (publish would spin forever on `target.exists()`).
                number = 1 + max(
                    (
                        int(entry.name)
                        for entry in model_dir.iterdir()
                        if _VERSION.fullmatch(entry.name)
                    ),
                    default=0,
                )
                manifest = Manifest.published(
                    spec, name=name, version=number, created_at=created_at, files=hashes
                )
                document = json.dumps(manifest.to_json(), indent=2) + "\n"
                _write_file(staging / MANIFEST_FILE, document.encode())
                _fsync_dir(staging)
                target = model_dir / str(number)
                if target.exists():  # another publisher took this number first
                    continue
                try:
                    os.rename(staging, target)
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        continue
                    raise
                break
            _fsync_dir(model_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Bundle(target, manifest)
