"""Writes the tables of docs/model-quality.md from a model store (by default the demo store).

Every figure comes from the bundles' own manifests, except the price-level rows, which run each
bundle's `model.onnx` through the server's predictor on the price files. `make model-quality`
rewrites the page; tests/test_docs.py fails when the page and the store disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.predictor import OnnxRuntime, Predictor
from model_store import ModelStore, parse_price_csv, sliding_windows

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "model-quality.md"
BEGIN = "<!-- begin tables: written by `make model-quality` from the store, do not edit -->"
END = "<!-- end tables -->"
PREDICTORS = (
    ("persistence", "persistence (tomorrow = today)"),
    ("drift", "drift (last + mean daily change of the window)"),
    ("moving_average", "moving average (mean of the 40 closes)"),
)
PRICE_FILES = (
    ("FB 2015-2019 (the training data)", "FB_training_data.csv", 1.0),
    ("FB 2015-2019, prices x10", "FB_training_data.csv", 10.0),
    ("AAPL 2022-01 .. 2023-05 (never seen)", "AAPL_2022-01_2023-05.csv", 1.0),
)


def newest_by_preset(store: ModelStore, name: str) -> dict[str, int]:
    """The newest version of `name` trained with each preset."""
    found: dict[str, int] = {}
    for version in store.versions(name):
        found[store.load(name, version).manifest.training["preset"]] = version
    return found


def _row(label: str, metrics: dict[str, float], bold: bool = False) -> str:
    cells = [
        f"{metrics['rmse']:.3f}",
        f"{metrics['mae']:.3f}",
        f"{metrics['mape']:.2f} %",
        f"{metrics['ratio']:.4f}",
    ]
    if bold:
        cells = [f"**{cell}**" for cell in cells]
    return f"| {label} | " + " | ".join(cells) + " |"


def _metrics_table(rows: list[str]) -> list[str]:
    return [
        "| predictor | RMSE ($) | MAE ($) | MAPE | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def _coverage(share: float, days: int) -> str:
    return f"{100 * share:.1f} % ({round(share * days)} of {days} days)"


def _half_width(intervals: dict[str, Any], level: int) -> str:
    """A level's stored half-width: a share of the last close, or a multiple of the scale."""
    width = intervals["quantiles"][str(level)]
    if intervals.get("method") == "normalised-conformal":
        return f"{width:.2f} x scale"
    return f"{100 * width:.2f} %"


def price_level_ratio(
    store: ModelStore, name: str, version: int, path: Path, factor: float
) -> float:
    """Model RMSE / persistence RMSE on every window of a price file, scaled by `factor`."""
    bundle = store.load(name, version)
    predictor = Predictor(bundle, OnnxRuntime(bundle))
    closes = parse_price_csv(path.read_bytes(), bundle.feature).values * factor
    windows, actual = sliding_windows(closes, bundle.window)
    model = np.sqrt(np.mean((predictor.predict(windows) - actual) ** 2))
    persistence = np.sqrt(np.mean((windows[:, -1] - actual) ** 2))
    return float(model / persistence)


def quality_tables(store_dir: Path, name: str, data_dir: Path) -> str:
    """The generated part of the page, between its markers."""
    store = ModelStore(store_dir)
    versions = newest_by_preset(store, name)
    default, tutorial = versions["default"], versions["tutorial"]
    manifests: dict[str, dict[str, Any]] = {
        preset: store.load(name, version).manifest.to_json() for preset, version in versions.items()
    }
    best, tut = manifests["default"], manifests["tutorial"]
    days = len(best["evaluation"]["dates"])
    wf_best, wf_tut = best["metrics"]["walk_forward"], tut["metrics"]["walk_forward"]
    wf_days = wf_best["diebold_mariano"]["days"]
    lines = [
        BEGIN,
        "",
        f"From `{store_dir.name}/{name}` v{default} (default preset, created "
        f"{best['created_at']}) and v{tutorial} (tutorial preset, created {tut['created_at']}), "
        f"trained on {best['data']['train']['file']} ({best['data']['train']['first_date']} .. "
        f"{best['data']['train']['last_date']}).",
        "",
        f"**Test month** ({best['data']['test']['first_date']} .. "
        f"{best['data']['test']['last_date']}, {days} trading days, each predicted from the 40 "
        "actual closes before it by the model trained on all the training data):",
        "",
        *_metrics_table(
            [
                _row(f"default preset (v{default}, served)", best["metrics"]["model"], bold=True),
                _row(f"tutorial preset (v{tutorial})", tut["metrics"]["model"]),
                *(_row(label, best["metrics"][key]) for key, label in PREDICTORS),
            ]
        ),
        "",
        f"**Walk-forward** ({wf_days} trading days; each fold predicted by a model trained from "
        "scratch on everything before it; pooled over the folds):",
        "",
        *_metrics_table(
            [
                _row(
                    f"default preset ({wf_best['scheme']} folds)",
                    wf_best["overall"]["model"],
                    bold=True,
                ),
                _row(f"tutorial preset ({wf_tut['scheme']} folds)", wf_tut["overall"]["model"]),
                *(_row(label, wf_best["overall"][key]) for key, label in PREDICTORS),
            ]
        ),
        "",
    ]
    for preset, walk in (("default", wf_best), ("tutorial", wf_tut)):
        ratios = [fold["model"]["ratio"] for fold in walk["folds"]]
        below = sum(ratio < 1 for ratio in ratios)
        dm = walk["diebold_mariano"]
        lines.append(
            f"- {preset} preset, ratio per fold ({walk['folds'][0]['label']} .. "
            f"{walk['folds'][-1]['label']}): {' '.join(f'{ratio:.3f}' for ratio in ratios)} "
            f"({below} of {len(ratios)} below 1); Diebold-Mariano against persistence "
            f"t = {dm['t']:.2f}, one-sided p = {dm['p_value']:.2f}."
        )
    lines += [
        f"- default preset, shrink toward persistence chosen by the walk-forward: "
        f"{best['training']['shrink']} (ratio by shrink: "
        + ", ".join(f"{shrink}: {ratio:.4f}" for shrink, ratio in wf_best["shrink_curve"].items())
        + ").",
        "",
        "**Intervals** (conformal on the out-of-sample walk-forward residuals: fixed-width "
        "split-conformal, or normalised by the model's predicted scale; coverage = share of days "
        "whose actual close lies inside; the adaptive bands are compared below):",
        "",
        "| interval | half-width (of the last close, or times the predicted scale) "
        "| walk-forward, leave-one-fold-out | test month, stored widths |",
        "| --- | ---: | ---: | ---: |",
    ]
    for preset, manifest in (("default", best), ("tutorial", tut)):
        coverage = manifest["metrics"]["intervals"]
        for level in coverage["levels"]:
            lines.append(
                f"| {level} % ({preset}) | {_half_width(manifest['intervals'], level)} "
                f"| {_coverage(coverage['walk_forward'][str(level)], wf_days)} "
                f"| {_coverage(coverage['test'][str(level)], days)} |"
            )
    lines += [
        "",
        "**Price level** (model RMSE / persistence RMSE over every 40-close window of the file, "
        "run through the served `model.onnx`):",
        "",
        f"| series | default preset (v{default}) | tutorial preset (v{tutorial}) |",
        "| --- | ---: | ---: |",
    ]
    for label, filename, factor in PRICE_FILES:
        ratios = [
            price_level_ratio(store, name, version, data_dir / filename, factor)
            for version in (default, tutorial)
        ]
        lines.append(f"| {label} | {ratios[0]:.4f} | {ratios[1]:.3f} |")
    return "\n".join([*lines, "", END])


def replace_tables(page: str, tables: str) -> str:
    """`page` with the text between its markers (included) replaced by `tables`."""
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[:start] + tables + page[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.model_quality", description=__doc__)
    parser.add_argument("--store", type=Path, default=ROOT / "models")
    parser.add_argument("--name", default="fb-lstm")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--page", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    tables = quality_tables(args.store, args.name, args.data)
    args.page.write_text(replace_tables(args.page.read_text(), tables))
    print(f"wrote the tables of {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
