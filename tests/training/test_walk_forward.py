"""Walk-forward backtests, baselines, shrink, intervals and presets, on tiny real models.

The tiny bundle (tests/conftest.py) ran a 2-fold monthly walk-forward (November and December 2019)
with two averaged members; everything it stored is recomputed here from the training CSV.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from model_store import Bundle, Intervals, ScaledIntervals, conformal_quantiles, parse_price_csv
from training.errors import InputError
from training.pipeline import TrainConfig
from training.presets import PRESETS
from training.scale import fit_scale_for, relative_scales
from training.walkforward import SHRINKS, plan_folds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fb_training(shared_data: Path) -> tuple[np.ndarray, list[str]]:
    series = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes())
    return series.values, series.iso_dates()


def by_hand(closes: np.ndarray, days: list[int]) -> dict[str, list[float]]:
    """Each baseline for the given target rows, one loop per day, straight from the closes."""
    out: dict[str, list[float]] = {
        "actual": [],
        "persistence": [],
        "drift": [],
        "moving_average": [],
    }
    for day in days:
        window = [float(c) for c in closes[day - 40 : day]]
        out["actual"].append(float(closes[day]))
        out["persistence"].append(window[-1])
        out["drift"].append(window[-1] + (window[-1] - window[0]) / 39)
        out["moving_average"].append(sum(window) / 40)
    return out


def rmse(predicted: list[float], actual: list[float]) -> float:
    return math.sqrt(
        sum((p - a) ** 2 for p, a in zip(predicted, actual, strict=True)) / len(actual)
    )


def test_folds_are_the_last_calendar_months_or_quarters(
    fb_training: tuple[np.ndarray, list[str]],
) -> None:
    _, dates = fb_training
    days = np.array(dates, dtype="datetime64[D]")
    monthly = plan_folds(days, "monthly", 12, 40)
    assert [fold.label for fold in monthly] == [f"2019-{m:02d}" for m in range(1, 13)]
    assert monthly[-1].stop == len(dates) == 1258
    for fold, after in itertools.pairwise(monthly):
        assert fold.stop == after.start
    for fold in monthly:
        assert {date[:7] for date in dates[fold.start : fold.stop]} == {fold.label}
        assert dates[fold.start - 1][:7] != fold.label
    quarterly = plan_folds(days, "quarterly", 4, 40)
    assert [fold.label for fold in quarterly] == ["2019-Q1", "2019-Q2", "2019-Q3", "2019-Q4"]
    assert [dates[fold.start] for fold in quarterly] == [
        "2019-01-02",
        "2019-04-01",
        "2019-07-01",
        "2019-10-01",
    ]
    assert sum(f.stop - f.start for f in quarterly) == sum(d.startswith("2019") for d in dates)
    with pytest.raises(InputError, match="61 monthly folds need more monthly periods"):
        plan_folds(days, "monthly", 61, 40)
    with pytest.raises(InputError, match="no 30-day training window before it"):
        plan_folds(days[:60], "monthly", 2, 30)


def test_walk_forward_folds_and_baselines_are_recomputed_from_the_csv(
    tiny_bundle: Bundle, fb_training: tuple[np.ndarray, list[str]]
) -> None:
    closes, dates = fb_training
    walk_forward = tiny_bundle.manifest.metrics["walk_forward"]
    assert walk_forward["scheme"] == "monthly"
    assert walk_forward["baselines"] == ["persistence", "drift", "moving_average"]
    folds = walk_forward["folds"]
    assert [(f["label"], f["first_date"], f["last_date"], f["days"]) for f in folds] == [
        ("2019-11", "2019-11-01", "2019-11-29", 20),
        ("2019-12", "2019-12-02", "2019-12-31", 21),
    ]
    pooled: dict[str, list[float]] = {}
    for fold in folds:
        start = dates.index(fold["first_date"])
        assert fold["train_windows"] == start - 40  # trained only on targets before the fold
        expected = by_hand(closes, list(range(start, start + fold["days"])))
        for name in ("persistence", "drift", "moving_average"):
            assert fold[name]["rmse"] == pytest.approx(rmse(expected[name], expected["actual"]))
            assert fold[name]["ratio"] == pytest.approx(
                fold[name]["rmse"] / fold["persistence"]["rmse"]
            )
        assert fold["model"]["rmse"] == pytest.approx(rmse(fold["predicted"], expected["actual"]))
        for key, values in {**expected, "model": fold["predicted"]}.items():
            pooled.setdefault(key, []).extend(values)
    overall = walk_forward["overall"]
    for name in ("model", "persistence", "drift", "moving_average"):
        assert overall[name]["rmse"] == pytest.approx(rmse(pooled[name], pooled["actual"]))
    assert overall["persistence"]["ratio"] == 1.0
    dm = walk_forward["diebold_mariano"]
    gain = np.array(
        [(p - a) ** 2 - (m - a) ** 2 for p, m, a in zip(pooled["persistence"], pooled["model"], pooled["actual"], strict=True)]
    )  # fmt: skip
    assert dm["days"] == 41
    assert dm["t"] == pytest.approx(gain.mean() / (gain.std(ddof=1) / math.sqrt(41)))
    assert 0.0 <= dm["p_value"] <= 1.0


def test_shrink_is_the_walk_forward_minimum_and_intervals_its_residuals(
    tiny_bundle: Bundle, fb_training: tuple[np.ndarray, list[str]]
) -> None:
    closes, dates = fb_training
    manifest = tiny_bundle.manifest
    training, walk_forward = manifest.training, manifest.metrics["walk_forward"]
    curve = {float(s): ratio for s, ratio in walk_forward["shrink_curve"].items()}
    assert sorted(curve) == list(SHRINKS) and training["shrink_source"] == "walk-forward"
    assert training["shrink"] == min(curve, key=lambda s: (curve[s], s))
    assert walk_forward["overall"]["model"]["ratio"] == pytest.approx(curve[training["shrink"]])

    residuals = []
    for fold in walk_forward["folds"]:
        start = dates.index(fold["first_date"])
        rows = range(start, start + fold["days"])
        residuals.append(
            np.array([(closes[t] - p) / closes[t - 1] for t, p in zip(rows, fold["predicted"], strict=True)])
        )  # fmt: skip
    intervals = tiny_bundle.intervals
    assert isinstance(intervals, ScaledIntervals) and intervals.residuals == 41
    assert intervals.source.startswith("walk-forward: monthly folds 2019-11 .. 2019-12")
    # Each fold's scores divide its residuals by the scale of a head fitted before the fold.
    scores = []
    for fold, fold_residuals in zip(walk_forward["folds"], residuals, strict=True):
        start = dates.index(fold["first_date"])
        head = fit_scale_for(closes[:start], 40, training["seed"], training["scale_epochs"])
        windows = np.lib.stride_tricks.sliding_window_view(
            closes[start - 40 : start + fold["days"] - 1], 40
        )
        scores.append(fold_residuals / relative_scales(head, windows))
    np.testing.assert_allclose(intervals.scores, np.sort(np.abs(np.concatenate(scores))), rtol=1e-5)

    # Held-out coverage: November judged by December's widths and vice versa.
    coverage = manifest.metrics["intervals"]
    for level in (80, 95):
        inside = sum(
            int(np.sum(np.abs(held) <= conformal_quantiles(other)[level] * (1 + 1e-9)))
            for held, other in ((scores[0], scores[1]), (scores[1], scores[0]))
        )
        assert coverage["walk_forward"][str(level)] == inside / 41

    evaluation = manifest.evaluation
    actual = np.array(evaluation["actual"])
    inside_test = (np.array(evaluation["lower"]) <= actual) & (
        actual <= np.array(evaluation["upper"])
    )
    assert evaluation["level"] == 95
    assert coverage["test"]["95"] == float(np.mean(inside_test))
    width = np.array(evaluation["upper"]) - np.array(evaluation["predicted"])
    np.testing.assert_allclose(width, intervals.quantiles[95] * np.array(evaluation["scale"]))


def test_presets_fill_unset_settings_and_explicit_ones_win(tmp_path: Path) -> None:
    paths = {"train_csv": tmp_path, "test_csv": tmp_path, "store": tmp_path, "name": "x"}
    default = TrainConfig(**paths)
    assert default.settings == PRESETS["default"] and default.preset_label == "default"
    assert default.settings.seeds == [0, 1, 2]
    assert (default.settings.encoding, default.settings.units, default.settings.epochs) == (
        "relative",
        16,
        10,
    )
    tutorial = TrainConfig(**paths, preset="tutorial")
    assert (tutorial.settings.units, tutorial.settings.layers, tutorial.settings.seed) == (
        45,
        4,
        42,
    )
    assert tutorial.settings.walk_forward == "quarterly" and tutorial.preset_label == "tutorial"
    # Seeds, the backtest and the shrink do not change what was trained...
    same = TrainConfig(**paths, preset="tutorial", seed=1, walk_forward="none")
    assert same.preset_label == "tutorial" and same.settings.seed == 1
    assert TrainConfig(**paths, shrink=0.5).preset_label == "default"
    # ...any model setting does.
    assert TrainConfig(**paths, preset="tutorial", epochs=5).preset_label == "custom"
    assert TrainConfig(**paths, members=1).preset_label == "custom"
    assert TrainConfig(**paths, window=20).preset_label == "custom"


def test_the_minmax_bundle_without_walk_forward_says_so(tiny_minmax_bundle: Bundle) -> None:
    manifest = tiny_minmax_bundle.manifest
    training = manifest.training
    assert manifest.encoding.kind == "minmax"
    assert (training["encoding"], training["sign_flip"], training["output_bias"]) == (
        "minmax",
        False,
        True,
    )
    assert (training["shrink"], training["shrink_source"]) == (None, "not applicable")
    assert (training["seed"], training["members"], training["preset"]) == (42, 1, "custom")
    assert manifest.metrics["walk_forward"] is None
    assert manifest.metrics["intervals"]["walk_forward"] is None
    intervals = Intervals.from_json(manifest.intervals)
    assert intervals.source.startswith("in-sample: last 250 training windows")
    assert intervals.residuals == 250
