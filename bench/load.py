"""Client side of the benchmark: keep-alive sequential requests and the wrk load generator."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.server import HOST

JSON_HEADERS = {"Content-Type": "application/json"}
CSV_HEADERS = {"Content-Type": "text/csv"}


class Client:
    """One keep-alive HTTP/1.1 connection on a plain socket.

    Requests are sent as ready-made bytes and answers read by their Content-Length, so a timed
    request measures the server and the loopback rather than a Python HTTP client, whose own
    overhead would be a sizeable share of what is being measured.
    """

    def __init__(self, port: int, timeout_s: float = 120.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    @staticmethod
    def request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """The bytes of one POST."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, return the status and body of its answer."""
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._receive()
        head = self.buffer[:end].decode("latin-1")
        length = re.search(r"^content-length:\s*(\d+)", head, flags=re.IGNORECASE | re.MULTILINE)
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {head[:300]}")
        total = end + 4 + int(length.group(1))
        while len(self.buffer) < total:
            self._receive()
        body, self.buffer = self.buffer[end + 4 : total], self.buffer[total:]
        return int(head.split(" ", 2)[1]), body

    def _receive(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buffer += chunk

    def post_json(self, path: str, payload: Any) -> Any:
        """POST JSON, fail loudly on anything but 200, return the decoded answer."""
        status, data = self.send(self.request(path, json.dumps(payload).encode(), JSON_HEADERS))
        if status != 200:
            raise RuntimeError(f"POST {path} answered {status}: {data[:300]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.sock.close()


def timed_posts(
    port: int, path: str, body: bytes, headers: dict[str, str], count: int
) -> np.ndarray:
    """Wall-clock seconds of `count` sequential POSTs on one keep-alive connection.

    Every answer must be a 200: a benchmark of errors would be meaningless.
    """
    client = Client(port)
    request = client.request(path, body, headers)
    seconds = np.empty(count)
    try:
        for i in range(count):
            started = time.perf_counter()
            status, data = client.send(request)
            seconds[i] = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"POST {path} answered {status}: {data[:300]!r}")
    finally:
        client.close()
    return seconds


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    requests: int
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx answers
    p50_ms: float
    p99_ms: float


def ensure_wrk() -> str:
    """Path of wrk; `make bench` installs Debian's package when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (make bench does this)")
    return path


def wrk_missing(program: str) -> bool:
    """Whether wrk is missing, said on stderr as `program`'s one-line error (its caller exits 2)."""
    try:
        ensure_wrk()
    except RuntimeError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return True
    return False


def write_wrk_script(folder: Path, body: bytes, name: str = "post_predict.lua") -> Path:
    """A wrk Lua script that POSTs `body` as JSON on every request."""
    script = folder / name
    # A Lua long bracket keeps the JSON verbatim; the level-3 `]===]` never occurs in JSON numbers.
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [===[{body.decode()}]===]\n"
    )
    return script


def run_wrk(
    port: int, path: str, script: Path, *, connections: int, duration_s: int, threads: int
) -> WrkResult:
    """One wrk run against 127.0.0.1; parses its summary (`--latency` gives the percentiles)."""
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        # A slow backend queues 32 requests deep; a 2 s client timeout would count that queue as
        # errors, so give every request ample time and count only real failures.
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}{path}",
    ]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=duration_s + 60
    ).stdout
    return parse_wrk(output)


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, request count, errors and latency percentiles from wrk's text summary."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    # wrk prints no distribution when no request completed (a very slow backend in a short run).
    percentiles = dict(re.findall(r"^\s*(50|99)%\s+([\d.]+\w+)\s*$", output, flags=re.MULTILINE))
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        requests=int(total.group(1)),
        errors=errors,
        p50_ms=_duration_ms(percentiles["50"]) if "50" in percentiles else float("nan"),
        p99_ms=_duration_ms(percentiles["99"]) if "99" in percentiles else float("nan"),
    )
