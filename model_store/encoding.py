"""How a window of closes becomes model input and how model output becomes a close.

Training encodes with these classes before fitting; the server decodes with the same numbers read
from the manifest, so both sides apply one rule. A new kind is one module in
`model_store/encodings/` and one entry in `ENCODINGS`. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import numpy as np

from model_store.encodings.minmax import MinMaxEncoding
from model_store.encodings.relative import RelativeEncoding
from model_store.errors import ManifestError


class WindowEncoding(Protocol):
    """Maps windows of closes `(n, window)` to model input `(n, window, 1)` float32 and back."""

    kind: ClassVar[str]
    # Whether training may shrink the predicted change towards persistence.
    shrinkable: ClassVar[bool]

    @property
    def training_range(self) -> tuple[float, float] | None:
        """The closes outside which the model saturates, or None when it never does."""
        ...

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Model input for windows of closes, shape `(n, window, 1)`, float32."""
        ...

    def encode_targets(self, targets: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Training targets for the closes that follow `windows`, shape `(n,)`."""
        ...

    def decode(self, outputs: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """Next closes (float64, shape `(n,)`) from model outputs for `windows`."""
        ...

    def decode_one(self, output: float, last_close: float) -> float:
        """`decode` for one window's output, in Python floats: the same arithmetic, so the same
        close to the last digit, without the array calls that cost more than it for one."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Plain numbers for manifest.json (with its `kind`)."""
        ...


class EncodingKind(Protocol):
    """What the registry needs from an encoding class."""

    @property
    def kind(self) -> str:
        """The `kind` stored in the manifest."""
        ...

    @property
    def shrinkable(self) -> bool:
        """Whether training may shrink the predicted change towards persistence."""
        ...

    def fit(self, values: np.ndarray) -> WindowEncoding:
        """The encoding for training on `values` (the training closes)."""
        ...

    def from_json(self, spec: Mapping[str, Any]) -> WindowEncoding:
        """Rebuild from the manifest's numbers; raises ManifestError, KeyError or ValueError."""
        ...


ENCODINGS: dict[str, EncodingKind] = {cls.kind: cls for cls in (RelativeEncoding, MinMaxEncoding)}


def encoding_kind(kind: str) -> EncodingKind:
    """The registered encoding class for `kind`; ManifestError naming the known kinds."""
    try:
        return ENCODINGS[kind]
    except (KeyError, TypeError):
        raise ManifestError(
            f"unknown scaler kind {kind!r} (known: {', '.join(ENCODINGS)})"
        ) from None


def encoding_from_json(spec: Any) -> WindowEncoding:
    """Rebuild the encoding stored under the manifest's `scaler` key."""
    if not isinstance(spec, dict):
        raise ManifestError("manifest field 'scaler' must be an object")
    kind = encoding_kind(spec.get("kind"))  # type: ignore[arg-type]
    try:
        return kind.from_json(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest field 'scaler' is malformed: {exc}") from exc
