"""Real HTTP servers as subprocesses, for the benchmarks and the tests alike: start on a free
loopback port, wait until ready, output to a log file, resident memory and CPU time, stop."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx
import psutil

from app.http_protocol import UVICORN_OPTION

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_command(port: int, *options: str) -> list[str]:
    """`uvicorn app.main:app` with the bounded protocol (what `make run` starts) on
    127.0.0.1:`port`, plus `options`."""
    command = [sys.executable, "-m", "uvicorn", "app.main:app", *UVICORN_OPTION, "--host", HOST]
    return [*command, "--port", str(port), *options]


class ServerError(RuntimeError):
    """The server exited, or never answered as expected; the message ends with its log."""


class Server:
    """`command`, serving HTTP on 127.0.0.1:`port`, its output appended to `log_path`.

    Use as a context manager: entering spawns the process and waits until GET `ready_path`
    answers 200, recording `cold_start_s` from just before the spawn; leaving stops it.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = REPO_ROOT,
        ready_path: str = "/readyz",
        ready_timeout_s: float = 120.0,
        poll_s: float = 0.05,
        stop_timeout_s: float = 15.0,
    ):
        self.command = list(command)
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.ready_path = ready_path
        self.ready_timeout_s = ready_timeout_s
        self.poll_s = poll_s
        self.stop_timeout_s = stop_timeout_s
        self.base_url = f"http://{HOST}:{port}"
        self.client = httpx.Client(base_url=self.base_url, timeout=60.0)
        self.process: subprocess.Popen[bytes] | None = None
        self.cold_start_s = float("nan")

    def __enter__(self) -> Server:
        with self.log_path.open("ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self.wait_until(self.ready_path, 200, self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.cold_start_s = time.perf_counter() - started
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, path: str, status: int, timeout_s: float = 90.0) -> httpx.Response:
        """Poll GET `path` until it answers `status`; ServerError if the process ends first or
        time runs out."""
        deadline = time.monotonic() + timeout_s
        last = "nothing listening"
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise self._error(f"exited with code {code} before {path} gave {status}")
            try:
                response = self.client.get(path, timeout=5.0)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if response.status_code == status:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            time.sleep(self.poll_s)
        raise self._error(f"{path} never gave {status} in {timeout_s:.0f} s (last: {last})")

    def _error(self, what: str) -> ServerError:
        return ServerError(
            f"{shlex.join(self.command)}: {what}; its log {self.log_path}:\n{self.log_tail()}"
        )

    def served_version(self) -> int:
        """The bundle version an app server's /readyz reports (the server must be ready)."""
        response = self.client.get("/readyz")
        assert response.status_code == 200, response.text
        return int(response.json()["model"]["version"])

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_mib(self) -> float:
        """Resident memory of the server and, with several workers, of all its children."""
        return sum(_each(self._processes(), lambda p: p.memory_info().rss)) / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server and all its worker processes."""
        times = _each(self._processes(), lambda p: p.cpu_times())
        return sum(t.user + t.system for t in times)

    def _processes(self) -> list[psutil.Process]:
        server = psutil.Process(self.pid)
        return [server, *server.children(recursive=True)]

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL after `stop_timeout_s`."""
        self.client.close()
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _each(processes: list[psutil.Process], read: Callable[[psutil.Process], T]) -> list[T]:
    """`read` of every process still running (a worker may exit between listing and reading)."""
    values = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            values.append(read(process))
    return values


def app_server(
    env: Mapping[str, str],
    log_path: Path,
    *options: str,
    ready_path: str = "/readyz",
    ready_timeout_s: float = 120.0,
    poll_s: float = 0.05,
) -> Server:
    """`uvicorn app.main:app` on a free port, its settings from this process' environment
    updated with `env`; `options` go on its command line."""
    port = free_port()
    return Server(
        uvicorn_command(port, *options),
        port=port,
        env={**os.environ, **env},
        log_path=log_path,
        ready_path=ready_path,
        ready_timeout_s=ready_timeout_s,
        poll_s=poll_s,
    )


def serve_env(store: Path, name: str, version: int | str) -> dict[str, str]:
    """Settings serving `version` of `name` from `store` alone, on ONNX Runtime, not polled."""
    return {
        "MODEL_STORE_DIR": str(store),
        "MODEL_NAME": name,
        "MODEL_VERSION": str(version),
        "PREDICTOR_BACKEND": "onnx",
        "MODEL_POLL_SECONDS": "0",
    }
