"""A real uvicorn server as a subprocess: spawn, time to ready, resident memory, stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_path() -> str:
    """The uvicorn next to the running interpreter (the project's virtualenv)."""
    return str(Path(sys.executable).with_name("uvicorn"))


class Server:
    """`uvicorn app.main:app` with the given backend, bundle and worker count, run from `root`
    (another checkout of the project compares its code with this one's), `env` added.

    Use as a context manager: entering spawns the process and waits for `/readyz` 200, recording
    `cold_start_s` from just before the spawn; leaving stops it (SIGTERM, then SIGKILL).
    """

    def __init__(
        self,
        *,
        backend: str,
        store: Path,
        name: str,
        version: str,
        log_path: Path,
        workers: int = 1,
        ready_timeout_s: float = 120.0,
        root: Path = REPO_ROOT,
        env: dict[str, str] | None = None,
    ):
        self.backend = backend
        self.port = free_port()
        self.workers = workers
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.env = {
            **os.environ,
            "MODEL_STORE_DIR": str(store),
            "MODEL_NAME": name,
            "MODEL_VERSION": version,
            "PREDICTOR_BACKEND": backend,
            "MODEL_POLL_SECONDS": "0",
            # The Keras backend would otherwise print its oneDNN/CPU banners into the log.
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **(env or {}),
        }
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        self.cold_start_s = float("nan")

    def __enter__(self) -> Server:
        # The command `make run` and the Dockerfile use (access log included: ~10% of a request).
        command = [uvicorn_path(), "app.main:app", "--host", HOST, "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                command, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.ready_timeout_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.backend} server exited with code {self.process.returncode} before it "
                    f"was ready; its log: {self.log_path}\n{self.log_tail()}"
                )
            if self.readyz_status() == 200:
                self.cold_start_s = time.perf_counter() - started
                return
            # Short polls: the figure being measured is about a second, so 2 ms of slack is fine.
            time.sleep(0.002)
        raise RuntimeError(
            f"{self.backend} server not ready after {self.ready_timeout_s:.0f} s; its log: "
            f"{self.log_path}\n{self.log_tail()}"
        )

    def readyz_status(self) -> int | None:
        """Status of GET /readyz, or None while nothing listens."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2.0)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def rss_mb(self) -> float:
        """Resident memory (VmRSS) of the server and, with several workers, of all its children."""
        assert self.process is not None
        pids = [self.process.pid, *_children(self.process.pid)]
        return sum(_vm_rss_kb(pid) for pid in pids) / 1024.0

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server and all its worker processes."""
        assert self.process is not None
        pids = [self.process.pid, *_children(self.process.pid)]
        return sum(_cpu_seconds(pid) for pid in pids)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _vm_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Direct and indirect child processes (uvicorn --workers forks a supervisor's children)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                pending.append(child)
    return found
