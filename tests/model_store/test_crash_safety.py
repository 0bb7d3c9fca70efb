"""A publish interrupted at any step leaves only complete versions visible.

Hard crashes are real: a child process publishes with `os.fsync`, `os.rename` and the store's
file writes instrumented to kill the process (`os._exit`, no cleanup, a half-written file for a
write) at step k, for k = 1, 2, ... until a publish completes. Exceptions are checked in-process:
every step that raises leaves no staging folder behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from store_samples import MANIFEST

from model_store import ModelStore
from model_store import store as store_module
from training.cli import main as training_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
CRASHED = 97
FILES = {"model.onnx": b"onnx" * 1000, "model.keras": b"keras" * 1000, "report.png": b"png"}

CHILD = """
import os, sys
from model_store import ModelStore
from model_store import store as store_module
sys.path.insert(0, sys.argv[3])
from test_crash_safety import CRASHED, FILES, MANIFEST

root, crash_at = sys.argv[1], int(sys.argv[2])
steps = 0
real_fsync, real_rename, real_write = os.fsync, os.rename, store_module._write_file

def step(label, before_death=lambda: None):
    global steps
    steps += 1
    if steps == crash_at:
        before_death()
        os.write(2, label.encode())
        os._exit(CRASHED)

def write_file(path, data):
    def torn():
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
    step(f"write {path.name}", torn)
    real_write(path, data)

def fsync(fd):
    step("fsync")
    real_fsync(fd)

def rename(source, target):
    step("rename")
    real_rename(source, target)

store_module._write_file = write_file
os.fsync, os.rename = fsync, rename
ModelStore(root).publish("demo", FILES, MANIFEST)
"""


def run_crashing_publish(root: Path, crash_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(crash_at), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def listed_versions(root: Path, capsys: pytest.CaptureFixture[str]) -> list[int]:
    """Versions of `demo` as `python -m training list` prints them."""
    assert training_cli(["list", "--store", str(root)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    return [int(row.split()[1]) for row in rows if row.split()[0] == "demo"]


@pytest.mark.slow
def test_hard_crash_at_every_step_leaves_only_complete_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed_at: list[str] = []
    for crash_at in range(1, 50):
        root = tmp_path / f"crash-{crash_at}"
        store = ModelStore(root)
        store.publish("demo", {"model.onnx": b"v1"}, MANIFEST)
        result = run_crashing_publish(root, crash_at)
        if result.returncode == 0:
            break
        assert result.returncode == CRASHED, result.stderr
        crashed_at.append(result.stderr)

        visible = store.versions("demo")
        assert listed_versions(root, capsys) == visible
        for version in visible:
            store.verify("demo", version)  # every visible version is complete and intact
        if "rename" not in crashed_at[:-1]:
            assert visible == [1], f"crash at {result.stderr} (step {crash_at}) exposed {visible}"
        else:
            # After the atomic rename the new version is complete; only durability remained.
            assert visible == [1, 2]
            assert store.load("demo", 2).read_verified("model.onnx") == FILES["model.onnx"]
    else:
        pytest.fail("publish never completed")
    # Every write (3 files + manifest), every fsync (4 files + staging dir + parent) and the rename.
    assert crashed_at == [
        "write model.keras",
        "fsync",
        "write model.onnx",
        "fsync",
        "write report.png",
        "fsync",
        "write manifest.json",
        "fsync",
        "fsync",
        "rename",
        "fsync",
    ]
    assert ModelStore(root).versions("demo") == [1, 2]


@pytest.mark.parametrize("fail_at", range(1, 8))
def test_failing_step_cleans_up_its_staging_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fail_at: int,
) -> None:
    store = ModelStore(tmp_path)
    store.publish("demo", {"model.onnx": b"v1"}, MANIFEST)
    calls = 0
    real_fsync, real_rename = os.fsync, os.rename

    def counted(real: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == fail_at:
                raise OSError(28, "No space left on device")
            return real(*args)

        return wrapper

    monkeypatch.setattr(store_module.os, "fsync", counted(real_fsync))
    monkeypatch.setattr(store_module.os, "rename", counted(real_rename))
    with pytest.raises(OSError, match="No space left on device"):
        store.publish("demo", FILES, MANIFEST)
    monkeypatch.undo()

    entries = sorted(entry.name for entry in (tmp_path / "demo").iterdir())
    assert not [name for name in entries if name.startswith(".publish-")]
    visible = store.versions("demo")
    assert listed_versions(tmp_path, capsys) == visible
    # Steps 1-5 fsync the files and staging folder, 6 is the rename: nothing published. Step 7
    # (fsync of the parent after the rename) fails with the complete version already in place.
    assert visible == ([1] if fail_at <= 6 else [1, 2])
    for version in visible:
        store.verify("demo", version)


def test_interrupt_during_publish_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path)

    def interrupted(path: Path, data: bytes) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "_write_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.publish("demo", FILES, MANIFEST)
    assert list((tmp_path / "demo").iterdir()) == []
    assert store.versions("demo") == []
