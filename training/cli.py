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
from training.errors import InputError, ParityError
from training.evaluate import comparison_table
from training.pipeline import TrainConfig, train_and_publish

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
    train.add_argument("--test-csv", type=Path, required=True, help="CSV starting after training")
    train.add_argument("--store", type=Path, required=True, help="model store folder")
    train.add_argument("--name", required=True, help="model name, e.g. fb-lstm")
    train.add_argument("--epochs", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--units", type=int, default=45, help="LSTM units per layer")
    train.add_argument("--layers", type=int, default=4, help="number of stacked LSTM layers")
    train.add_argument("--dropout", type=float, default=0.2)
    train.add_argument("--window", type=int, default=40, help="closes per input window")
    train.add_argument("--seed", type=int, default=42)
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
            epochs=args.epochs,
            units=args.units,
            layers=args.layers,
            batch_size=args.batch_size,
            dropout=args.dropout,
            window=args.window,
            seed=args.seed,
            column=args.column,
        )
    )
    manifest = bundle.manifest
    test = manifest["data"]["test"]
    print(f"published {bundle.name} v{bundle.version} -> {bundle.path}")
    print(
        f"test CSV {test['file']} ({test['first_date']} .. {test['last_date']}, "
        f"{test['rows']} days), each day predicted from the {bundle.window} closes before it:"
    )
    print(comparison_table(manifest["metrics"]))
    return 0


def _list(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    names = store.names()
    if not names:
        print(f"no models in {args.store}")
        return 0
    print(f"{'name':<24}{'version':>8}  {'created_at':<22}{'rmse':>10}{'persistence':>13}")
    for name in names:
        for version in store.versions(name):
            try:
                manifest = store.load(name, version, verify=False).manifest
            except ManifestError as exc:
                print(f"{name:<24}{version:>8}  unreadable manifest: {exc}")
                continue
            rmse = manifest.get("metrics", {}).get("model", {}).get("rmse")
            baseline = manifest.get("metrics", {}).get("persistence", {}).get("rmse")
            print(
                f"{name:<24}{version:>8}  {manifest['created_at']!s:<22}"
                f"{_number(rmse):>10}{_number(baseline):>13}"
            )
    return 0


def _number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _verify(args: argparse.Namespace) -> int:
    bundle = ModelStore(args.store).verify(args.name, args.version)
    files = len(bundle.manifest["files"])
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
