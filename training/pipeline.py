"""One training run end to end, as a sequence of named stages (`training.stages`): load,
walk-forward backtest (point and scale forecasts), shrink, final fit, calibrate intervals, export
and check parity, evaluate, compare the intervals with the baselines, chart, manifest
(`training.manifest`), publish.

TensorFlow, tf2onnx and ONNX Runtime are imported only once the inputs have passed their checks:
a bad CSV or option is reported at once, not after TensorFlow's start-up of several seconds.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from model_store import Bundle, ModelStore
from training.config import TrainConfig
from training.data import TrainTestData, load_split, load_train_test
from training.walkforward import Fold, plan_folds

__all__ = ["TrainConfig", "train_and_publish"]  # TrainConfig: callers import it from here

logger = logging.getLogger(__name__)


def train_and_publish(config: TrainConfig) -> Bundle:
    """Backtest the model `config` describes walk-forward, train it on the whole training CSV,
    evaluate it on the test CSV the tutorial's way, calibrate its intervals, export and
    parity-check it, and publish the bundle as the next version of `config.name`.

    `metrics` and `evaluation.predicted` come from the exported ONNX model decoded with the
    stored encoding, i.e. exactly what the server will answer.
    """
    config.validate()
    settings = config.settings
    if config.test_csv is None:
        assert config.test_from is not None  # validate() guarantees one of the two
        data = load_split(config.train_csv, config.column, settings.window, config.test_from)
    else:
        data = load_train_test(config.train_csv, config.test_csv, config.column, settings.window)
    folds: list[Fold] = []
    if settings.walk_forward != "none":
        folds = plan_folds(
            data.train.series.dates, settings.walk_forward, settings.folds, settings.window
        )
    return _train_export_publish(config, data, folds)


def _log_data(data: TrainTestData) -> None:
    train_dates = data.train.series.iso_dates()
    logger.info(
        "training on %d rows of %s (%s .. %s), testing on %d rows of %s",
        len(data.train_closes),
        data.train.path.name,
        train_dates[0],
        train_dates[-1],
        len(data.test_closes),
        data.test.path.name,
    )


def _train_export_publish(config: TrainConfig, data: TrainTestData, folds: list[Fold]) -> Bundle:
    from training import stages
    from training.evaluate import evaluation_set
    from training.manifest import RunRecord, build_manifest

    settings = config.settings
    _log_data(data)
    results = stages.backtest(settings, data, folds)
    fold_scales = stages.backtest_scales(settings, data, results)
    shrink = stages.pick_shrink(settings, results)
    final = stages.fit_final(settings, data.train_closes, shrink.value)
    calibration = stages.calibrate(
        settings.walk_forward, results, shrink.value, final, data.train_closes, fold_scales
    )
    evaluation = evaluation_set(data.train_closes, data.test_closes, settings.window)
    with tempfile.TemporaryDirectory(prefix="training-export-") as scratch:
        folder = Path(scratch)
        inputs = final.encoding.encode(evaluation.windows)
        exported = stages.export_checked(final.model, inputs, folder)
        test = stages.evaluate_test(
            evaluation, final.encoding, exported.onnx_outputs, calibration.intervals
        )
        comparison = stages.compare_intervals(
            data, results, shrink.value, fold_scales, test, calibration.intervals
        )
        walk_forward = stages.walk_forward_summary(settings.walk_forward, results, shrink)
        title = f"{config.name}: {config.column} predicted vs actual"
        stages.write_report_chart(folder / stages.CHART_FILE, title, data, test, walk_forward)
        run = RunRecord(
            preset=config.preset_label,
            settings=settings,
            data=data,
            folds=len(folds),
            shrink=shrink,
            final=final,
            calibration=calibration,
            exported=exported,
            test=test,
            walk_forward=walk_forward,
            comparison=comparison,
        )
        files = {name: folder / name for name in stages.BUNDLE_FILES}
        bundle = ModelStore(config.store).publish(config.name, files, build_manifest(run))
    logger.info("published %s v%d at %s", bundle.name, bundle.version, bundle.path)
    return bundle
