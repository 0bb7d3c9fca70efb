"""A real container engine for the deploy tests: podman, on storage of its own.

Every podman call goes through `Podman`, which points podman at a storage root, run root, network
configuration and temporary folder inside the test session's temporary directory (so the tests
never see or touch the host's images, containers or networks, and always start cold), with the
project's `deploy/podman/containers.conf` passed in `CONTAINERS_CONF` (no system-wide change).
`PODMAN_TEST_STORAGE=<folder>` keeps that storage's images between sessions instead (warm reruns).
Images are built offline: the stand-in base from `deploy/standin-base.sh`, then the Dockerfiles
with `--build-arg BASE_IMAGE=` that base, the host network and the host's CA bundle, which pip and
apt inside the build see as the image's own (registry traffic may pass a TLS-inspecting proxy).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from deploy_spec import REPO_ROOT

CONTAINERS_CONF = REPO_ROOT / "deploy" / "podman" / "containers.conf"
STANDIN_BASE_SCRIPT = REPO_ROOT / "deploy" / "standin-base.sh"
BASE_IMAGE = "localhost/stock-lstm-base:bookworm"
# Where the Debian base (stand-in and python:*-slim alike) reads its CA bundle.
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class EngineUnavailable(Exception):
    """podman cannot run containers here; the message says why (the tests skip with it)."""


def host_ca_bundle() -> Path | None:
    """The CA bundle this host trusts: the one pip is told to use, else OpenSSL's default file."""
    candidates = [os.environ.get(name) for name in ("PIP_CERT", "SSL_CERT_FILE")]
    candidates.append(ssl.get_default_verify_paths().openssl_cafile)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


@dataclass
class Podman:
    """podman on a private storage under `home`; `run` returns the finished process."""

    executable: str
    home: Path
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def find(cls, home: Path) -> Podman:
        """podman and runc from PATH, checked by running a container; EngineUnavailable if not."""
        executable = shutil.which("podman")
        if executable is None:
            raise EngineUnavailable(
                "podman is not installed (`make container-engine` installs it from Debian)"
            )
        if shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            raise EngineUnavailable(
                "runc is not installed (`make container-engine` installs it from Debian)"
            )
        if os.geteuid() != 0:
            raise EngineUnavailable(
                "not root: the stand-in base needs debootstrap as root, and the tests run rootful"
                " podman as CI does"
            )
        engine = cls(executable, home)
        info = engine.run("info", "--format", "json", timeout=120)
        if info.returncode != 0:
            raise EngineUnavailable(f"`podman info` failed: {info.stderr.strip()}")
        return engine

    @property
    def global_options(self) -> list[str]:
        return [
            "--root",
            str(self.home / "root"),
            "--runroot",
            str(self.home / "run"),
            "--tmpdir",
            str(self.home / "tmp"),
            "--network-config-dir",
            str(self.home / "networks"),
        ]

    @property
    def command(self) -> list[str]:
        """The podman command line with this storage, for other tools that call podman."""
        return [self.executable, *self.global_options]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def ok(self, *args: str, timeout: float = 300) -> str:
        """Run and return stdout; a failure fails the test with podman's own message."""
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stderr[-4000:]}"
        return result.stdout

    def build_standin_base(self) -> str:
        """The Debian stand-in for the python base image (`make base-image`), as BASE_IMAGE;
        kept from an earlier session when the storage is (PODMAN_TEST_STORAGE)."""
        if self.run("image", "exists", BASE_IMAGE).returncode == 0:
            return BASE_IMAGE
        started = time.monotonic()
        result = subprocess.run(
            [str(STANDIN_BASE_SCRIPT), BASE_IMAGE],
            env={**self.env, "ENGINE": " ".join(self.command)},
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"stand-in base:\n{result.stdout[-3000:]}{result.stderr}"
        self.timings["stand-in base"] = time.monotonic() - started
        return BASE_IMAGE

    def build(self, tag: str, context: Path, *, base: str, target: str | None = None) -> str:
        """`podman build` of a Dockerfile on the stand-in base, in Docker format (keeps
        HEALTHCHECK), with the host network and the host's CA bundle for pip and apt."""
        options = ["--format", "docker", "--network", "host", "--build-arg", f"BASE_IMAGE={base}"]
        bundle = host_ca_bundle()
        if bundle is not None:
            options += ["--volume", f"{bundle}:{IMAGE_CA_BUNDLE}:ro"]
        if target is not None:
            options += ["--target", target]
        started = time.monotonic()
        self.ok("build", *options, "--tag", tag, str(context), timeout=1500)
        self.timings[f"build {tag}"] = time.monotonic() - started
        return tag

    def inspect(self, kind: str, name: str) -> dict[str, object]:
        (item,) = json.loads(self.ok(kind, "inspect", name))
        found: dict[str, object] = item
        return found

    def reset(self) -> None:
        """Remove everything this storage holds (containers, pods, volumes, networks, images)."""
        self.run("system", "reset", "--force", timeout=300)
        shutil.rmtree(self.home, ignore_errors=True)

    def remove_containers_and_volumes(self) -> None:
        """Remove what the tests started, keeping the images (a kept storage's teardown)."""
        self.run("pod", "rm", "--all", "--force")
        self.run("rm", "--all", "--force", "--volumes")
        self.run("volume", "prune", "--force")
        self.run("network", "prune", "--force")


def wait_http(url: str, *, timeout: float = 120) -> httpx.Response:
    """The first 200 from `url`, polling; the last answer or error in the failure message."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready after {timeout:.0f} s: {last}")
