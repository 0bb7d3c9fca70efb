"""docker-compose.yml for real: the Compose v2 binary against podman's Docker API.

The README walkthrough in order, on one stack: `up` seeds the named volume from the image and
serves the demo store; `run --rm train` publishes version 3 into the volume and the running api
serves it within its poll interval; `/admin/pin` rolls back and follows `latest` again;
`MODEL_VERSION` pins durably; then the scale profile serves through its balancer over two
replicas, retries a request a stopped replica fails, and refuses `/admin/*`.

podman runs health checks only when something calls `podman healthcheck run` (systemd timers do
on a host with systemd); a thread does it here, so `depends_on: service_healthy` works as on Docker.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from deploy_spec import COMPOSE_BINARY, REPO_ROOT
from engine import Podman, wait_http

from bench.server import free_port

# The first test's setup builds the images it needs (cold: several minutes each on two cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

PROJECT = "stock-lstm"
POLL_SECONDS = 2
ADMIN_TOKEN = "compose-test-token-0123456789abcdef"
# Tiny training settings: the point is the publish -> hot-reload path, not the model.
TRAIN = [
    "train", "--train-csv", "/data/FB_training_data.csv", "--test-csv", "/data/FB_test_data.csv",
    "--store", "/models", "--name", "fb-lstm", "--epochs", "1", "--units", "4", "--layers", "1",
    "--members", "1", "--walk-forward", "none",
]  # fmt: skip


@dataclass
class Compose:
    """The Compose binary on this repo's compose file, talking to `podman system service`."""

    env: dict[str, str]
    api_url: str
    balancer_url: str
    log: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(COMPOSE_BINARY), *args], cwd=REPO_ROOT, env={**self.env, **env},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        self.log.append(
            f"$ compose {' '.join(args)}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )
        return result

    def ok(self, *args: str, timeout: float = 600, **env: str) -> str:
        result = self.run(*args, timeout=timeout, **env)
        assert result.returncode == 0, "\n".join(self.log[-1:])
        return result.stdout


@pytest.fixture(scope="module")
def podman_api(podman: Podman) -> Iterator[str]:
    """`podman system service` on a socket in the private storage; yields DOCKER_HOST. Stopped
    after the tests; left behind by a killed session, it exits after five idle minutes."""
    socket_path = podman.home / "podman.sock"
    service = subprocess.Popen(
        [*podman.command, "system", "service", "--time=300", f"unix://{socket_path}"],
        env=podman.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        transport = httpx.HTTPTransport(uds=str(socket_path))
        deadline = time.monotonic() + 60
        while True:
            try:
                with httpx.Client(transport=transport) as client:
                    if client.get("http://podman/_ping", timeout=2).status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert service.poll() is None, service.stderr and service.stderr.read()
            assert time.monotonic() < deadline, "podman system service never answered /_ping"
            time.sleep(0.3)
        yield f"unix://{socket_path}"
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=10)
        if service.stderr:
            service.stderr.close()


@pytest.fixture(scope="module")
def healthchecks(podman: Podman) -> Iterator[None]:
    """Runs the compose project's health checks every second, as systemd's timers would."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            listed = podman.run(
                "ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}"
            )
            for container in listed.stdout.split():
                podman.run("healthcheck", "run", container, timeout=30)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join(timeout=60)


@pytest.fixture(scope="module")
def compose(
    podman: Podman,
    podman_api: str,
    healthchecks: None,
    serve_image: str,
    shared_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Compose]:
    """The compose project on the serve image built offline (so no `--build`; the tests that need
    the train and balancer images wait for theirs), torn down after."""
    api_port, balancer_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path_factory.mktemp("compose-home")),
        "DOCKER_CONFIG": str(tmp_path_factory.mktemp("docker-config")),
        "DOCKER_HOST": podman_api,
        "API_PORT": str(api_port),
        "BALANCER_PORT": str(balancer_port),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "MODEL_POLL_SECONDS": str(POLL_SECONDS),
        "SHARED_DATA_DIR": str(shared_data),
    }
    stack = Compose(env, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{balancer_port}")
    try:
        yield stack
    finally:
        stack.run("--profile", "scale", "--profile", "train", "down", "--volumes",
                  "--remove-orphans", "--timeout", "5")  # fmt: skip


def served_version(url: str) -> int:
    version: int = httpx.get(f"{url}/model", timeout=10).json()["version"]
    return version


def wait_version(url: str, expected: int, timeout: float) -> float:
    """Seconds until `url` serves `expected`; fails after `timeout`."""
    started = time.monotonic()
    while (served := served_version(url)) != expected:
        assert time.monotonic() - started < timeout, f"still serving v{served}, not v{expected}"
        time.sleep(0.2)
    return time.monotonic() - started


def test_up_seeds_the_volume_and_serves_the_demo_store(podman: Podman, compose: Compose) -> None:
    compose.ok("up", "--detach")
    wait_http(f"{compose.api_url}/readyz")
    assert served_version(compose.api_url) == 2
    volume = podman.inspect("volume", f"{PROJECT}_models")
    store = Path(str(volume["Mountpoint"])) / "fb-lstm"
    assert sorted(path.name for path in store.iterdir()) == ["1", "2"]
    for path in [store, *store.rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (10001, 10001), path
    api = podman.inspect("container", f"{PROJECT}-api-1")
    host = api["HostConfig"]
    assert isinstance(host, dict)
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in " ".join(host["SecurityOpt"])
    assert {cap.upper().removeprefix("CAP_") for cap in host["CapDrop"]} >= {"NET_RAW", "CHOWN"}


@pytest.mark.usefixtures("train_image")
def test_run_train_publishes_a_version_the_api_serves_without_restart(
    podman: Podman, compose: Compose
) -> None:
    started = podman.inspect("container", f"{PROJECT}-api-1")["State"]
    compose.ok("run", "--rm", "--no-TTY", "train", *TRAIN, timeout=900)
    wait_version(compose.api_url, 3, timeout=POLL_SECONDS * 5)
    listing = httpx.get(f"{compose.api_url}/models", timeout=10).json()
    assert [entry["version"] for entry in listing["versions"]] == [1, 2, 3]
    still = podman.inspect("container", f"{PROJECT}-api-1")["State"]
    assert isinstance(started, dict) and isinstance(still, dict)
    assert still["StartedAt"] == started["StartedAt"], "the api was restarted"


def pin(url: str, version: int | str) -> httpx.Response:
    return httpx.post(
        f"{url}/admin/pin",
        json={"version": version},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )


def test_admin_pin_rolls_back_then_follows_latest_again(compose: Compose) -> None:
    assert pin(compose.api_url, 2).status_code == 200
    assert served_version(compose.api_url) == 2
    assert pin(compose.api_url, "latest").status_code == 200
    assert served_version(compose.api_url) == 3


def test_model_version_pins_durably_across_recreation(compose: Compose) -> None:
    compose.ok("up", "--detach", MODEL_VERSION="2")
    wait_http(f"{compose.api_url}/readyz")
    assert served_version(compose.api_url) == 2
    compose.ok("up", "--detach")
    wait_http(f"{compose.api_url}/readyz")
    assert served_version(compose.api_url) == 3


def upstreams(url: str, count: int) -> list[str]:
    """The X-Upstream header of `count` balanced requests, each of which must succeed."""
    seen = []
    for _ in range(count):
        response = httpx.get(f"{url}/model", timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 3
        seen.append(response.headers["X-Upstream"])
    return seen


@pytest.mark.usefixtures("balancer_image")
def test_scale_profile_balances_two_replicas_retries_and_refuses_admin(
    podman: Podman, compose: Compose
) -> None:
    compose.ok("--profile", "scale", "up", "--detach", "--scale", "api=2", API_PORT="0")
    wait_http(f"{compose.balancer_url}/readyz")
    replicas = set(upstreams(compose.balancer_url, 8))
    assert len(replicas) == 2, replicas
    refused = pin(compose.balancer_url, 1)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    # A stopped replica's address stays in the balancer's DNS cache for a few seconds: requests
    # sent to it fail to connect and must be retried on the live one.
    podman.ok("stop", "--time", "1", f"{PROJECT}-api-2")
    after = upstreams(compose.balancer_url, 6)
    assert any(", " in entry for entry in after), after
