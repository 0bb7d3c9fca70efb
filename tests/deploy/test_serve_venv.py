"""The serve image, rebuilt without Docker: the Dockerfile's serve target replayed on this host.

Every instruction of the stages `serve` is built from (base, serve-wheel, serve) is executed in
order against a folder standing in for the image's root filesystem: the same `python -m venv`, the
same `pip` commands with the same requirement file and flags, the same COPY sources filtered by
.dockerignore, the same ENV. Then the image's exact CMD starts with only the image's environment,
and the HEALTHCHECK command probes it. What differs from a container: the interpreter is this
host's Python 3.11 (the image has 3.11.16), container paths live under the folder, and the port is a
free one instead of 8000 (the CMD's `--port` and the probe's URL are rewritten, nothing else).
An instruction the replay does not know fails the test, so the Dockerfile cannot drift from it.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from deploy_spec import REPO_ROOT, DockerIgnore, Instruction, Stage, apply_env, stage_chain

from bench.server import Server, free_port

pytestmark = pytest.mark.slow

# The python image's interpreter, `python` in /usr/local/bin: here the base interpreter of the
# Python running the tests (not its virtualenv).
BASE_PYTHON = (
    Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
)
# The TensorFlow stack the serve image must not contain, by distribution name.
TENSORFLOW_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "tensorboard"}


@dataclass
class Image:
    """The replayed image: its root folder, the container's environment, CMD, probe, workdir."""

    root: Path
    env: dict[str, str]
    workdir: Path
    command: list[str]
    healthcheck: list[str]
    port: str

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run `python -c code` the way `docker run <image> python -c code` would."""
        return subprocess.run(
            ["python", "-c", code], cwd=self.workdir, env=self.env, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip


class Replay:
    """Executes Dockerfile instructions with container paths mapped under `root`."""

    def __init__(self, root: Path, stages: dict[str, Stage], dockerignore: DockerIgnore) -> None:
        self.root = root
        self.stages = stages
        self.dockerignore = dockerignore
        self.env_by_stage: dict[str, dict[str, str]] = {}
        self.workdir_by_stage: dict[str, Path] = {}

    def map_value(self, value: str) -> str:
        """Container paths (absolute items of a `:` list) moved under the root folder."""
        return ":".join(
            str(self.root / item.lstrip("/")) if item.startswith("/") else item
            for item in value.split(":")
        )

    def build(self, target: str) -> Image:
        local_bin = self.root / "usr" / "local" / "bin"
        local_bin.mkdir(parents=True)
        (local_bin / "python").symlink_to(BASE_PYTHON)
        # The part of the python image's environment the Dockerfile builds on.
        base_env = {"PATH": f"{local_bin}:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for stage in stage_chain(self.stages, target):
            self.env_by_stage[stage.name] = dict(self.env_by_stage.get(stage.parent, base_env))
            self.workdir_by_stage[stage.name] = self.workdir_by_stage.get(stage.parent, self.root)
            for item in stage.instructions:
                self.execute(stage.name, item)
        stage = self.stages[target]
        return Image(
            root=self.root,
            env=self.env_by_stage[target],
            workdir=self.workdir_by_stage[target],
            command=stage.last("CMD").exec_form(),
            healthcheck=stage.last("HEALTHCHECK").exec_form(),
            port=stage.last("EXPOSE").args,
        )

    def execute(self, stage: str, item: Instruction) -> None:
        if item.keyword == "ENV":
            self.env_by_stage[stage] = apply_env(item, self.env_by_stage[stage], self.map_value)
        elif item.keyword == "WORKDIR":
            workdir = self.root / item.args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
            self.workdir_by_stage[stage] = workdir
        elif item.keyword == "COPY":
            assert "from" not in item.flags, f"replay does not know COPY --from: {item.args}"
            self.copy(stage, item.args.split())
        elif item.keyword == "RUN":
            self.run(stage, item)
        elif item.keyword not in {"LABEL", "EXPOSE", "USER", "HEALTHCHECK", "CMD", "ENTRYPOINT"}:
            pytest.fail(f"the replay does not know {item.keyword}; teach it before using it")

    def copy(self, stage: str, words: list[str]) -> None:
        *sources, destination = words
        target = Path(self.map_value(destination)) if destination.startswith("/") else (
            self.workdir_by_stage[stage] / destination
        )  # fmt: skip
        into_folder = destination.endswith("/") or len(sources) > 1
        for source in sources:
            origin = REPO_ROOT / source
            files = (
                [origin]
                if origin.is_file()
                else sorted(p for p in origin.rglob("*") if p.is_file())
            )
            sent = [
                p for p in files if self.dockerignore.sends(p.relative_to(REPO_ROOT).as_posix())
            ]
            assert sent, f"COPY {source}: nothing reaches the build context"
            for path in sent:
                if origin.is_file():
                    out = target / origin.name if into_folder else target
                else:
                    out = target / path.relative_to(origin)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)

    def run(self, stage: str, item: Instruction) -> None:
        if "mount" in item.flags:
            mount = dict(part.split("=", 1) for part in item.flags["mount"].split(","))
            # All replayed stages share one root folder, so a bind of a stage's folder onto the
            # same path needs no action; anything else is beyond this replay.
            assert mount.get("type") == "bind" and mount["source"] == mount["target"], item.flags
        env = self.env_by_stage[stage]
        # The build runs with the host's network settings (proxies, pip config), as
        # `docker build` would pass its own.
        build_env = {**os.environ, **env}
        for command in item.args.split("&&"):
            words = [self.map_value(word) for word in shlex.split(command)]
            words = [
                match
                for word in words
                for match in (sorted(glob.glob(word)) if "*" in word else [word])
            ]
            assert words[0] in {"python", "pip"}, f"the replay only runs python and pip: {command}"
            program = shutil.which(words[0], path=env["PATH"])
            assert program, f"{words[0]} not on PATH {env['PATH']}"
            result = subprocess.run(
                [program, *words[1:]], cwd=self.workdir_by_stage[stage], env=build_env,
                capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            assert result.returncode == 0, (
                f"RUN {command} failed:\n{result.stdout}\n{result.stderr}"
            )


def on_port(words: list[str], old: str, new: str) -> list[str]:
    """The CMD/HEALTHCHECK words with the container port swapped for a free one."""
    return [
        new if word == old and previous == "--port" else word.replace(f":{old}/", f":{new}/")
        for previous, word in zip(["", *words], words, strict=False)
    ]


@pytest.fixture(scope="session")
def image(
    tmp_path_factory: pytest.TempPathFactory,
    dockerfile: dict[str, Stage],
    dockerignore: DockerIgnore,
) -> Image:
    """The serve target, built once per session (a fresh venv: a minute or two)."""
    root = tmp_path_factory.mktemp("serve-rootfs")
    return Replay(root, dockerfile, dockerignore).build("serve")


@pytest.fixture(scope="session")
def server(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image's CMD running with only the image's environment; yields its base URL once
    /readyz answers 200."""
    port = free_port()
    with Server(
        on_port(image.command, image.port, str(port)), port=port, env=image.env, cwd=image.workdir,
        log_path=tmp_path_factory.mktemp("serve-cmd") / "server.log", ready_timeout_s=90.0,
        poll_s=0.5, stop_timeout_s=20.0,
    ) as running:  # fmt: skip
        yield running.base_url


def test_serve_venv_has_no_tensorflow_and_no_training_code(image: Image) -> None:
    attempt = image.python("import tensorflow")
    assert attempt.returncode != 0
    assert "No module named 'tensorflow'" in attempt.stderr
    listing = image.python(
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"
    )
    installed = set(json.loads(listing.stdout))
    assert {"onnxruntime", "fastapi", "uvicorn", "stock-lstm-service"} <= installed
    assert not installed & TENSORFLOW_DISTRIBUTIONS
    assert "No module named 'training'" in image.python("import training").stderr


def test_app_runs_from_the_installed_wheel_not_the_source_tree(image: Image) -> None:
    located = image.python(
        "import app, model_store; print(app.__file__); print(model_store.__file__)"
    )
    # ENV values already point into the root folder.
    venv = Path(image.env["VIRTUAL_ENV"])
    for module_file in located.stdout.split():
        assert Path(module_file).is_relative_to(venv / "lib"), module_file
    assert not list(image.workdir.iterdir()), "the working directory must stay empty"


def test_image_cmd_serves_readyz_and_the_healthcheck_passes(image: Image, server: str) -> None:
    ready = httpx.get(f"{server}/readyz", timeout=5)
    assert ready.status_code == 200
    port = server.rsplit(":", 1)[1]
    probe = subprocess.run(
        on_port(image.healthcheck, image.port, port), cwd=image.workdir, env=image.env,
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr


def test_healthcheck_fails_when_nothing_answers(image: Image) -> None:
    probe = subprocess.run(
        on_port(image.healthcheck, image.port, str(free_port())), cwd=image.workdir, env=image.env,
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert probe.returncode != 0
    assert "Connection refused" in probe.stderr


def test_january_forecast_matches_the_bundle_evaluation(
    image: Image, server: str, shared_data: Path
) -> None:
    csv = (shared_data / "FB_test_data.csv").read_bytes()
    response = httpx.post(
        f"{server}/forecast", files={"file": ("FB_test_data.csv", csv, "text/csv")}, timeout=60
    )
    assert response.status_code == 200, response.text
    body = response.json()
    points = body["points"]
    assert len(points) == 21
    store = Path(image.env["MODEL_STORE_DIR"]) / image.env["MODEL_NAME"]
    manifest = json.loads((store / str(body["model"]["version"]) / "manifest.json").read_text())
    evaluation = manifest["evaluation"]
    assert [point["date"] for point in points] == evaluation["dates"]
    assert [point["actual"] for point in points] == pytest.approx(evaluation["actual"])
    # The server runs the same model.onnx on the same windows as the trainer's evaluation.
    assert [point["predicted"] for point in points] == pytest.approx(
        evaluation["predicted"], abs=1e-6
    )
