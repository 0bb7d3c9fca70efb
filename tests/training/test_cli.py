"""`python -m training` as a user runs it: real processes for the happy path and a bad CSV,
in-process `main()` for the remaining refusals (each: exit 2, one line, nothing published)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from model_store import ModelStore
from training.cli import main
from training.data import load_csv

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )


@pytest.fixture
def train_csv_with_null_row(shared_data: Path, tmp_path: Path) -> Path:
    """The FB training file with a Yahoo `null` day inserted as line 3."""
    lines = (shared_data / "FB_training_data.csv").read_text().splitlines(keepends=True)
    lines.insert(2, "2015-01-03,null,null,null,null,null,null\n")
    path = tmp_path / "FB_with_null.csv"
    path.write_text("".join(lines))
    return path


@pytest.mark.slow
def test_train_list_verify_and_tamper(
    shared_data: Path, tmp_path: Path, train_csv_with_null_row: Path
) -> None:
    store = tmp_path / "store"
    trained = run_cli(
        "train",
        "--train-csv",
        str(train_csv_with_null_row),
        "--test-csv",
        str(shared_data / "FB_test_data.csv"),
        "--store",
        str(store),
        "--name",
        "cli-tiny",
        "--epochs",
        "2",
        "--units",
        "3",
        "--layers",
        "1",
        "--seed",
        "7",
        "--members",
        "2",
        "--folds",
        "2",
        "--scale-epochs",
        "2",
    )
    assert trained.returncode == 0, trained.stderr
    assert "Traceback" not in trained.stderr
    assert "FB_with_null.csv: row 3 (2015-01-03): Close is null, skipped" in trained.stderr
    assert "epoch 1/2  loss" in trained.stderr and "epoch 2/2  loss" in trained.stderr
    out = trained.stdout.splitlines()
    assert out[0] == f"published cli-tiny v1 -> {store / 'cli-tiny' / '1'}"
    manifest = ModelStore(store).verify("cli-tiny").manifest
    training, metrics = manifest.training, manifest.metrics
    assert out[1] == (
        f"preset custom, relative encoding, 2 member(s), seeds [7, 8], "
        f"shrink {training['shrink']} (walk-forward)"
    )
    assert out[3].split() == ["RMSE", "MAE", "MAPE", "%", "/", "persist."]
    assert out[4].split()[:2] == ["model", f"{metrics['model']['rmse']:.3f}"]
    assert out[5].split() == ["persistence", "4.248", "2.964", "1.388", "1.0000"]
    assert [line.split()[0] for line in out[6:8]] == ["drift", "moving_average"]
    assert out[9] == "walk-forward (monthly folds), RMSE and ratio to persistence:"
    assert out[10].split() == [
        "fold",
        "first",
        "days",
        "model",
        "persist.",
        "model/p",
        "drift/p",
        "movavg/p",
    ]
    assert out[11].split()[:3] == ["2019-11", "2019-11-01", "20"]
    assert out[12].split()[:3] == ["2019-12", "2019-12-02", "21"]
    overall = metrics["walk_forward"]["overall"]
    assert out[13].split() == [
        "overall",
        "41",
        f"{overall['model']['rmse']:.3f}",
        f"{overall['persistence']['rmse']:.3f}",
        f"{overall['model']['ratio']:.4f}",
        f"{overall['drift']['ratio']:.4f}",
        f"{overall['moving_average']['ratio']:.4f}",
    ]
    assert out[14].split()[0] == "test"
    assert out[15].startswith("Diebold-Mariano vs persistence over the folds: t = ")
    coverage = metrics["intervals"]
    assert out[17] == (
        f"95% interval coverage: walk-forward {coverage['walk_forward']['95']:.1%} "
        f"(leave-one-fold-out), test {coverage['test']['95']:.1%}"
    )
    assert training["seed"] == 7 and manifest.data["train"]["rows"] == 1258

    listed = run_cli("list", "--store", str(store))
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[1].split() == [
        "cli-tiny",
        "1",
        manifest.created_at,
        "custom",
        f"{metrics['model']['rmse']:.3f}",
        "4.248",
        f"{overall['model']['ratio']:.4f}",
    ]

    verified = run_cli("verify", "--store", str(store), "--name", "cli-tiny", "--version", "1")
    assert verified.returncode == 0
    assert verified.stdout.startswith("cli-tiny v1 OK")

    onnx = store / "cli-tiny" / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 3] ^= 0x80
    onnx.write_bytes(bytes(data))
    tampered = run_cli("verify", "--store", str(store), "--name", "cli-tiny")
    assert tampered.returncode == 1
    assert tampered.stderr == "error: cli-tiny v1: sha256 mismatch for model.onnx\n"


@pytest.mark.slow
def test_malformed_csv_is_one_line_without_traceback(shared_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Close\n2019-01-02,100\n2019-01-03,abc\n")
    result = run_cli(
        "train",
        "--train-csv",
        str(bad),
        "--test-csv",
        str(shared_data / "FB_test_data.csv"),
        "--store",
        str(tmp_path / "store"),
        "--name",
        "x",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.splitlines()[-1]
        == "error: bad.csv: row 3, column Close: 'abc' is not a number"
    )
    assert not (tmp_path / "store").exists()


def write_csv(path: Path, rows: list[tuple[str, float]]) -> Path:
    path.write_text("Date,Close\n" + "".join(f"{day},{close}\n" for day, close in rows))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing train", "error: {tmp}/absent.csv: no such file"),
        ("bad name", "error: invalid model name '../up'"),
        ("bad epochs", "error: epochs must be a positive integer, got 0"),
        ("bad column", "error: FB_training_data.csv: CSV header has no 'Price' column"),
        ("too few rows", "error: short.csv: 3 usable rows, need at least 41"),
        ("overlap", "error: FB_training_data.csv: starts 2015-01-02, which is not after the end"),
        ("duplicate", "error: dup.csv: duplicate date 2020-02-03 (rows 2 and 3)"),
        ("too many folds", "error: 70 quarterly folds need more quarterly periods"),
        ("shrink on minmax", "error: shrink applies to the relative encoding only"),
    ],
)
def test_bad_training_input_exits_2_with_one_line(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    train = shared_data / "FB_training_data.csv"
    test = shared_data / "FB_test_data.csv"
    options = {"--name": "ok", "--epochs": "1", "--units": "2", "--layers": "1"}
    if case == "missing train":
        train = tmp_path / "absent.csv"
    elif case == "bad name":
        options["--name"] = "../up"
    elif case == "bad epochs":
        options["--epochs"] = "0"
    elif case == "bad column":
        options["--column"] = "Price"
    elif case == "too few rows":
        train = write_csv(
            tmp_path / "short.csv", [("2019-01-02", 1.0), ("2019-01-03", 2.0), ("2019-01-04", 3.0)]
        )
    elif case == "overlap":
        test = train
    elif case == "duplicate":
        test = write_csv(tmp_path / "dup.csv", [("2020-02-03", 1.0), ("2020-02-03", 2.0)])
    elif case == "too many folds":
        options.update({"--walk-forward": "quarterly", "--folds": "70"})
    elif case == "shrink on minmax":
        options.update({"--preset": "tutorial", "--shrink": "0.5"})
    argv = [
        "train",
        "--train-csv",
        str(train),
        "--test-csv",
        str(test),
        "--store",
        str(tmp_path / "store"),
    ]
    for key, value in options.items():
        argv += [key, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "store").exists()


def test_store_commands_refuse_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--store", str(tmp_path / "absent")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: model store {str(tmp_path / 'absent')!r} does not exist\n"
    )
    assert main(["list", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no models in {tmp_path}\n"
    assert main(["verify", "--store", str(tmp_path), "--name", "nope"]) == 2
    assert "model 'nope' has no versions" in capsys.readouterr().err
    assert main(["verify", "--store", str(tmp_path), "--name", "nope", "--version", "v2"]) == 2
    assert "invalid version 'v2'" in capsys.readouterr().err


def test_null_rows_are_reported_as_warnings(
    train_csv_with_null_row: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="training.data"):
        loaded = load_csv(train_csv_with_null_row, "Close")
    assert len(loaded.series) == 1258
    assert caplog.messages == ["FB_with_null.csv: row 3 (2015-01-03): Close is null, skipped"]
    assert loaded.fingerprint()["rows"] == 1258


@pytest.mark.parametrize(
    ("test_from", "message"),
    [
        ("2023-13-01", "error: test-from must be a date (YYYY-MM-DD), got '2023-13-01'"),
        ("2024-01-02", "error: AAPL_2022-01_2023-05.csv: no rows from 2024-01-02 to split off"),
        ("2022-02-01", "error: AAPL_2022-01_2023-05.csv: 20 usable rows, need at least 41"),
    ],
)
def test_a_bad_cut_date_exits_2_with_one_line(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    test_from: str,
    message: str,
) -> None:
    argv = ["train", "--train-csv", str(shared_data / "AAPL_2022-01_2023-05.csv")]
    argv += ["--test-from", test_from, "--store", str(tmp_path / "store"), "--name", "aapl"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_one_csv_cut_by_date_trains_before_and_tests_from_it(
    shared_data: Path, tmp_path: Path
) -> None:
    csv = shared_data / "AAPL_2022-01_2023-05.csv"
    argv = ["train", "--train-csv", str(csv), "--test-from", "2023-05-01"]
    argv += ["--store", str(tmp_path), "--name", "aapl", "--epochs", "1", "--units", "2"]
    argv += ["--members", "1", "--walk-forward", "none"]
    assert main(argv) == 0
    manifest = ModelStore(tmp_path).verify("aapl").manifest
    train, test = manifest.data["train"], manifest.data["test"]
    assert train["file"] == test["file"] == csv.name and train["sha256"] == test["sha256"]
    assert (train["first_date"], train["last_date"]) == ("2022-01-03", "2023-04-28")
    assert (test["first_date"], test["last_date"], test["rows"]) == ("2023-05-01", "2023-05-31", 22)
    assert manifest.context.dates[-1] == "2023-04-28"
    assert manifest.evaluation is not None
    assert all(day.startswith("2023-05-") for day in manifest.evaluation["dates"])
    series = load_csv(csv, "Close").series
    assert manifest.evaluation["actual"] == series.values[-22:].tolist()
