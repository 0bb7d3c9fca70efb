"""`python -m training train|list|verify`: user errors end in one line on stderr, never a traceback.

Exit codes: 0 success, 1 a bundle failed verification or the ONNX export failed parity, 2 bad
input (missing or malformed CSV, invalid name or version, missing store or model).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from model_store import (
    IntegrityError,
    ManifestError,
    ModelStore,
    ModelStoreError,
    SeriesError,
)
from training.config import TrainConfig, add_setting_flags, flagged_settings
from training.errors import InputError, ParityError
from training.evaluate import BASELINES, comparison_table
from training.pipeline import train_and_publish
from training.presets import PRESETS
from training.walkforward import folds_table

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train, list and verify model bundles."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train on a CSV, evaluate on another, publish the next version"
    )
    train.add_argument("--train-csv", type=Path, required=True, help="Yahoo Finance daily CSV")
    test = train.add_mutually_exclusive_group(required=True)
    test.add_argument("--test-csv", type=Path, help="CSV starting after training")
    test.add_argument(
        "--test-from",
        metavar="YYYY-MM-DD",
        help="instead of --test-csv: test on the training CSV's rows from this date on and "
        "train on the rows before it",
    )
    train.add_argument("--store", type=Path, required=True, help="model store folder")
    train.add_argument("--name", required=True, help="model name, e.g. fb-lstm")
    train.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="settings every flag below defaults to: 'default' (relative 3-seed ensemble, "
        "the walk-forward winner) or 'tutorial' (the reference tutorial as written)",
    )
    add_setting_flags(train)
    train.add_argument("--column", default="Close", help="price column to model")

    listing = commands.add_parser("list", help="list complete versions in a store")
    listing.add_argument("--store", type=Path, required=True)

    verify = commands.add_parser("verify", help="check a bundle's files against its manifest")
    verify.add_argument("--store", type=Path, required=True)
    verify.add_argument("--name", required=True)
    verify.add_argument("--version", default="latest", help="'latest' (default) or a number")
    return parser


def _train(args: argparse.Namespace) -> int:
    bundle = train_and_publish(
        TrainConfig(
            train_csv=args.train_csv,
            test_csv=args.test_csv,
            store=args.store,
            name=args.name,
            preset=args.preset,
            column=args.column,
            test_from=args.test_from,
            **flagged_settings(args),
        )
    )
    manifest = bundle.manifest
    metrics, training = manifest.metrics, manifest.training
    test = manifest.data["test"]
    print(f"published {bundle.name} v{bundle.version} -> {bundle.path}")
    print(
        f"preset {training['preset']}, {training['encoding']} encoding, "
        f"{training['members']} member(s), seeds {training['seeds']}, shrink {training['shrink']} "
        f"({training['shrink_source']})"
    )
    print(
        f"test CSV {test['file']} ({test['first_date']} .. {test['last_date']}, "
        f"{test['rows']} days), each day predicted from the {bundle.window} closes before it:"
    )
    print(comparison_table({label: metrics[label] for label in ("model", *BASELINES)}))
    walk_forward = metrics["walk_forward"]
    if walk_forward:
        print(f"\nwalk-forward ({walk_forward['scheme']} folds), RMSE and ratio to persistence:")
        print(folds_table(walk_forward, "test", metrics))
        test_dm = walk_forward["diebold_mariano"]
        print(
            f"Diebold-Mariano vs persistence over the folds: t = {test_dm['t']:.2f}, "
            f"one-sided p = {test_dm['p_value']:.2f} ({test_dm['days']} days)"
        )
    coverage = metrics["intervals"]
    for level in coverage["levels"]:
        held_out = (coverage["walk_forward"] or {}).get(str(level))
        print(
            f"{level}% interval coverage: walk-forward "
            f"{'-' if held_out is None else f'{held_out:.1%}'} (leave-one-fold-out), "
            f"test {coverage['test'][str(level)]:.1%}"
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    names = store.names()
    if not names:
        print(f"no models in {args.store}")
        return 0
    print(
        f"{'name':<24}{'version':>8}  {'created_at':<22}{'preset':<10}{'rmse':>10}"
        f"{'persistence':>13}{'wf ratio':>10}"
    )
    for name in names:
        for version in store.versions(name):
            try:
                manifest = store.load(name, version, verify=False).manifest
            except ManifestError as exc:
                print(f"{name:<24}{version:>8}  unreadable manifest: {exc}")
                continue
            metrics = manifest.metrics
            rmse = (metrics.get("model") or {}).get("rmse")
            baseline = (metrics.get("persistence") or {}).get("rmse")
            walk_forward = ((metrics.get("walk_forward") or {}).get("overall") or {}).get("model")
            preset = manifest.training.get("preset", "-")
            print(
                f"{name:<24}{version:>8}  {manifest.created_at:<22}{preset!s:<10}"
                f"{_number(rmse):>10}{_number(baseline):>13}"
                f"{_number((walk_forward or {}).get('ratio'), 4):>10}"
            )
    return 0


def _number(value: object, decimals: int = 3) -> str:
    return f"{value:.{decimals}f}" if isinstance(value, int | float) else "-"


def _verify(args: argparse.Namespace) -> int:
    bundle = ModelStore(args.store).verify(args.name, args.version)
    files = len(bundle.manifest.files)
    print(
        f"{bundle.name} v{bundle.version} OK: manifest matches its folder, {files} files sha256-verified"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its per-pass chatter
    command = {"train": _train, "list": _list, "verify": _verify}[args.command]
    try:
        return command(args)
    except (IntegrityError, ManifestError, ParityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (InputError, SeriesError, ModelStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; nothing was published", file=sys.stderr)
        return 130
