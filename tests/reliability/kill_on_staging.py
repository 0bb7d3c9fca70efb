"""Watch a model folder and SIGKILL a process the moment a `.publish-*` staging folder appears.

Run as its own process by test_fault_injection.py: a thread in the test process shares the GIL
with the load generator and can miss the ~20 ms a publish spends staging.

    python kill_on_staging.py <model folder> <pid> <timeout seconds> [<delay ms>]

With a delay, the kill lands that much later, further into the publish's writes and fsyncs.

Prints the staging folder names it saw (one per line); exit 0 when it killed, 1 on timeout or
when the process ended first.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil

from model_store.store import STAGING_PREFIX


def ended(process: psutil.Process) -> bool:
    """Gone, or a zombie waiting for its parent to reap it."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def main() -> int:
    folder, pid, timeout_s = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay_s = float(sys.argv[4]) / 1000.0 if len(sys.argv) > 4 else 0.0
    deadline = time.monotonic() + timeout_s
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 1
    while time.monotonic() < deadline:
        staging = [e.name for e in os.scandir(folder) if e.name.startswith(STAGING_PREFIX)]
        if staging:
            time.sleep(delay_s)
            # SIGKILL: no handler, no cleanup, no atexit; the process is gone mid-write.
            os.kill(pid, signal.SIGKILL)
            print("\n".join(staging))
            return 0
        if ended(process):
            return 1
        time.sleep(0.0002)
    return 1


if __name__ == "__main__":
    sys.exit(main())
