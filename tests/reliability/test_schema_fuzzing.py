"""Schema fuzzing: schemathesis reads the server's own /openapi.json and, for every operation,
sends schema-valid and schema-violating requests to a real uvicorn server. Every response must be
a documented status with a body matching its documented schema and content type; no 5xx;
schema-violating data is rejected; unsupported methods get 405.

Not checked: that every schema-valid request is accepted. The schema cannot say what only the
served bundle and the CSV rules know (a window holds exactly the bundle's 40 closes; a CSV string
must hold dated, positive prices), so such requests rightly get a documented 4xx.

The run is bounded (MAX_EXAMPLES per operation and phase) and deterministic (fixed seed), so CI
is repeatable; a failure prints the exact request to replay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from reliability_harness import running_server
from schemathesis import Case
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from app.main import create_app
from app.settings import Settings
from bench.server import Server

ADMIN_TOKEN = "fuzz-admin-token"
MAX_EXAMPLES = 200
# Every case sent, by operation and status: the "cases fuzzed" figure of SECURITY.md and a
# check that the fuzzer did reach each operation.
SENT: Counter[tuple[str, int]] = Counter()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole module, with admin on so the admin operations are fuzzed too."""
    env = {"MODEL_STORE_DIR": str(tiny_store), "MODEL_NAME": "tiny", "ADMIN_TOKEN": ADMIN_TOKEN}
    with running_server(env, tmp_path_factory.mktemp("fuzz") / "server.log") as server:
        yield server
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def load_schema() -> schemathesis.BaseSchema:
    """The app's own OpenAPI document, built without I/O (the served one is checked equal below).

    Loaded at import time because schemathesis' fixture-based lazy loading does not work with
    pytest 9; the requests go to the real server through `base_url`.
    """
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20240607,
            # Tokens are not fuzzed: every admin call carries the real one so the bodies behind
            # the check are reached (missing/wrong tokens are test_security_boundaries.py's job).
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "with-security-parameters": False,
            },
            # No links are declared, so the stateful phase would have nothing to chain.
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_dict(OPENAPI, config=config)


OPENAPI = create_app(Settings(model_store_dir=Path("unused-store"), model_name="tiny")).openapi()
schema = load_schema()


@schema.parametrize()
def test_every_operation_honours_its_schema(case: Case, fuzz_server: Server) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if case.path.startswith("/admin") else {}
    response = case.call_and_validate(
        base_url=fuzz_server.base_url,
        headers=headers,
        excluded_checks=[positive_data_acceptance],
    )
    SENT[(case.operation.label, response.status_code)] += 1
    assert response.status_code < 500


def test_the_fuzzer_reached_every_operation_and_the_server_is_still_ready(
    fuzz_server: Server,
) -> None:
    """Runs after the fuzzing above (pytest keeps file order)."""
    assert fuzz_server.client.get("/openapi.json").json() == OPENAPI
    operations = {operation for operation, _ in SENT}
    documented = {
        f"{method.upper()} {path}"
        for path, methods in OPENAPI["paths"].items()
        for method in methods
    }
    assert operations == documented
    assert sum(SENT.values()) >= 5 * len(documented)
    assert fuzz_server.client.get("/readyz").status_code == 200
    print(f"fuzzed {sum(SENT.values())} cases: {dict(sorted(SENT.items()))}")


def test_every_error_response_is_documented_with_the_one_error_shape() -> None:
    """Each operation lists its 4xx/5xx answers, each with the ErrorResponse schema (the Open
    Inference Protocol's routes with its own error and readiness shapes); operations taking a
    body document 413 and 422, the ones behind the model document 503."""
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    protocol_refs = [
        {"$ref": f"#/components/schemas/{name}"}
        for name in ("V2Error", "V2ServerReadiness", "V2ModelReadiness")
    ]
    for path, methods in OPENAPI["paths"].items():
        for method, operation in methods.items():
            label = f"{method.upper()} {path}"
            responses = operation["responses"]
            for status, response in responses.items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    allowed = protocol_refs if path.startswith("/v2") else [error_ref]
                    assert schema in allowed, f"{label} {status}: {schema}"
            if "requestBody" in operation:
                assert {"413", "422"} <= set(responses), f"{label}: {sorted(responses)}"
            if path in ("/predict", "/forecast", "/readyz", "/model"):
                assert "503" in responses, label
            if path.startswith("/admin"):
                assert {"401", "403"} <= set(responses), label
