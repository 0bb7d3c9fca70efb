"""The bundle manifest of one run, section by section, from the records the stages returned."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from model_store import BundleSpec, Context
from training.data import TrainTestData
from training.presets import Settings
from training.walkforward import COVERAGE_LEVELS, leave_one_fold_out_coverage

if TYPE_CHECKING:
    from training.stages import Calibration, Exported, FinalModel, ShrinkChoice, TestResult

OPTIMIZER = {"optimizer": "adam", "loss": "mse"}


@dataclass(frozen=True)
class RunRecord:
    """Everything one run decided and measured, as the stages returned it."""

    preset: str  # the preset's name, or `custom`
    settings: Settings
    data: TrainTestData
    folds: int
    shrink: ShrinkChoice
    final: FinalModel
    calibration: Calibration
    exported: Exported
    test: TestResult
    walk_forward: dict[str, Any] | None
    comparison: dict[str, Any] | None = None  # intervals against the baselines (scaled only)


def library_versions() -> dict[str, str]:
    """The versions that produced a bundle, for the manifest."""
    import keras
    import onnxruntime
    import sklearn
    import tensorflow as tf
    import tf2onnx

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tf2onnx": tf2onnx.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def build_manifest(run: RunRecord) -> BundleSpec:
    """The bundle contract `ModelStore.publish` completes with the name, version, files' hashes
    and creation time."""
    from training.export import PARITY_TOLERANCE

    data, window, exported = run.data, run.settings.window, run.exported
    return BundleSpec(
        window=window,
        feature=data.train.series.column,
        encoding=run.final.encoding,
        context=Context(
            dates=data.train.series.iso_dates()[-window:],
            closes=data.train_closes[-window:].tolist(),
        ),
        metrics=metrics_section(run),
        intervals=run.calibration.intervals.to_json(),
        evaluation=evaluation_section(run.data, run.test),
        training=training_section(run),
        data={"train": data.train.fingerprint(), "test": data.test.fingerprint()},
        parity={
            "max_abs_diff": exported.max_abs_diff,
            "tolerance": PARITY_TOLERANCE,
            "windows": len(exported.onnx_outputs),
        },
        onnx={
            "input": exported.onnx.input_name,
            "output": exported.onnx.output_name,
            "opset": exported.onnx.opset,
        },
        versions=library_versions(),
    )


def metrics_section(run: RunRecord) -> dict[str, Any]:
    """Test scores, the walk-forward summary and the intervals' held-out and test coverage."""
    held_out = leave_one_fold_out_coverage(run.calibration.fold_residuals)
    return {
        **run.test.metrics,
        "walk_forward": run.walk_forward,
        "intervals": {
            "levels": list(COVERAGE_LEVELS),
            "walk_forward": held_out or None,
            "walk_forward_method": (
                "leave-one-fold-out: each fold's widths calibrated on the other "
                "folds' residuals only"
            ),
            "test": run.test.coverage,
            "test_method": "the bundle's stored widths (calibrated before the test month)",
            "method": run.calibration.intervals.method,
            "comparison": run.comparison,
        },
    }


def evaluation_section(data: TrainTestData, test: TestResult) -> dict[str, Any]:
    """The test month day by day: actual, predicted, baselines and the interval band."""
    from training.stages import INTERVAL_LEVEL

    lower, upper = test.band
    last_close = test.evaluation.windows[:, -1]
    scales = {} if test.scales is None else {"scale": (test.scales * last_close).tolist()}
    return {
        "dates": data.test.series.iso_dates(),
        "actual": test.evaluation.actual.tolist(),
        "predicted": test.predicted.tolist(),
        "persistence": test.evaluation.persistence.tolist(),
        "drift": test.baselines["drift"].tolist(),
        "moving_average": test.baselines["moving_average"].tolist(),
        "level": INTERVAL_LEVEL,
        "lower": lower.tolist(),
        "upper": upper.tolist(),
        **scales,
    }


def training_section(run: RunRecord) -> dict[str, Any]:
    """The declared settings as set, what the fit did, and the shrink chosen."""
    from training.model import LEARNING_RATE

    settings, fits = run.settings, run.final.fits
    relative = settings.encoding == "relative"
    return {
        "preset": run.preset,
        **settings.recorded(),
        **OPTIMIZER,
        "learning_rate": LEARNING_RATE,
        "epochs_run": fits[0].epochs_run,
        "seeds": settings.seeds,
        "sign_flip": settings.sign_flip,
        "output_bias": settings.output_bias,
        "shrink": run.shrink.value if relative else None,
        "shrink_source": run.shrink.source,
        "final_loss": float(np.mean([fit.final_loss for fit in fits])),
        "final_losses": [fit.final_loss for fit in fits],
        "train_windows": run.final.train_windows,
        "walk_forward": {"scheme": settings.walk_forward, "folds": run.folds},
        **scale_head_section(run),
    }


def scale_head_section(run: RunRecord) -> dict[str, Any]:
    """The scale head's fitted mix of realised-volatility features, when there is one."""
    from training.scale import head_weights

    head, output = run.final.scale_head, run.final.scale_output
    if head is None or output is None:
        return {}
    pooling = {} if output.pooling is None else {"pooling": output.pooling.to_json()}
    return {"scale_head": {"loss": "gaussian nll", **head_weights(head), **pooling}}
