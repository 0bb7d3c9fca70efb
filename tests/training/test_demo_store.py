"""The committed demo store (`models/fb-lstm`): v1 is the tutorial preset, v2 the default preset
with fixed-width intervals, the latest (v3) the default preset with its scale head and adaptive
bands, and the documented quality claims hold for the committed files themselves.
(The price-level claim, /forecast on FB x10, is tested in tests/app/test_demo_bundle.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from model_store import Bundle, Intervals, ModelStore, ScaledIntervals

REPO_ROOT = Path(__file__).resolve().parents[2]
STORE = REPO_ROOT / "models"


@pytest.fixture(scope="module")
def default_bundle() -> Bundle:
    return ModelStore(STORE).verify("fb-lstm")


@pytest.fixture(scope="module")
def tutorial_bundle() -> Bundle:
    return ModelStore(STORE).verify("fb-lstm", 1)


def ratio(predicted: np.ndarray, actual: np.ndarray, last: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2) / np.mean((last - actual) ** 2)))


def test_every_version_verifies_and_latest_is_the_default_preset(
    default_bundle: Bundle, tutorial_bundle: Bundle
) -> None:
    assert ModelStore(STORE).versions("fb-lstm") == [1, 2, 3]
    assert default_bundle.version == 3
    assert isinstance(default_bundle.intervals, ScaledIntervals)
    assert isinstance(ModelStore(STORE).verify("fb-lstm", 2).intervals, Intervals)
    training = default_bundle.manifest.training
    assert (training["preset"], training["encoding"], training["seeds"]) == (
        "default",
        "relative",
        [0, 1, 2],
    )
    assert training["shrink_source"] == "walk-forward"
    assert tutorial_bundle.manifest.training["preset"] == "tutorial"
    assert tutorial_bundle.manifest.encoding.kind == "minmax"


def test_january_2020_is_not_worse_than_persistence_recomputed_with_onnx_runtime(
    default_bundle: Bundle,
) -> None:
    manifest = default_bundle.manifest
    assert manifest.metrics["model"]["ratio"] <= 1.0
    evaluation = manifest.evaluation
    actual = np.array(evaluation["actual"])
    history = np.array(manifest.context.closes + evaluation["actual"])
    windows = np.lib.stride_tricks.sliding_window_view(history, 40)[: len(actual)]
    session = ort.InferenceSession(str(default_bundle.file("model.onnx")))
    encoding = default_bundle.encoding
    outputs = session.run(None, {session.get_inputs()[0].name: encoding.encode(windows)})[0]
    served = encoding.decode(outputs[:, :1], windows)
    np.testing.assert_array_equal(served, evaluation["predicted"])
    january = ratio(served, actual, windows[:, -1])
    print(f"January 2020 ratio to persistence (ONNX Runtime, committed bundle): {january:.4f}")
    assert january <= 1.0


def test_walk_forward_is_reported_for_both_presets_and_intervals_cover(
    default_bundle: Bundle, tutorial_bundle: Bundle
) -> None:
    default = default_bundle.manifest.metrics
    tutorial = tutorial_bundle.manifest.metrics
    assert default["walk_forward"]["scheme"] == "monthly"
    assert len(default["walk_forward"]["folds"]) == 12
    assert tutorial["walk_forward"]["scheme"] == "quarterly"
    default_ratio = default["walk_forward"]["overall"]["model"]["ratio"]
    tutorial_ratio = tutorial["walk_forward"]["overall"]["model"]["ratio"]
    print(f"walk-forward ratio: default {default_ratio:.4f}, tutorial {tutorial_ratio:.4f}")
    assert default_ratio < tutorial_ratio
    coverage = default["intervals"]["walk_forward"]["95"]
    print(f"95% interval, leave-one-fold-out walk-forward coverage: {coverage:.1%}")
    assert 0.90 <= coverage <= 0.98


def test_adaptive_bands_hold_their_level_on_the_walk_forward_and_in_its_volatile_third(
    default_bundle: Bundle,
) -> None:
    comparison = default_bundle.manifest.metrics["intervals"]["comparison"]
    pooled = comparison["walk_forward"]["overall"]
    model = pooled["model"]
    for level in (80, 95):
        print(
            f"{level}%: coverage {model[f'coverage_{level}']:.1%}, volatile third "
            f"{model[f'volatile_coverage_{level}']:.1%}, Winkler {model[f'winkler_{level}']:.2f} "
            f"(EWMA {pooled['ewma'][f'winkler_{level}']:.2f}, "
            f"GARCH {pooled['garch'][f'winkler_{level}']:.2f})"
        )
        assert abs(model[f"coverage_{level}"] - level / 100) <= 0.02
    assert set(pooled) == {"model", "model_adaptive", "fixed", "ewma", "garch"}
    assert len(comparison["walk_forward"]["folds"]) == 12
