"""Code and dependency checks behind the security promises: nothing is ever unpickled, Keras only
loads in safe mode, tokens are compared in constant time, and the parsers we expose to the
network (starlette, python-multipart) are pinned at versions past every advisory we know of.

These are static checks on the project's own sources and lock files; the behaviour behind each
promise is tested against a real server in test_security.py and test_faults.py.
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("app", "model_store", "training", "bench", "tests")
LOCK_FILES = ("requirements/serve.txt", "requirements/train.txt", "requirements/dev.txt")

# Modules whose loaders execute code from the data they read.
UNSAFE_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "cloudpickle",
    "dill",
    "joblib",
    "shelve",
    "marshal",
}
# Calls that unpickle even without importing pickle.
UNSAFE_CALLS = {"read_pickle", "load_pickle"}

# Published advisories for the HTTP-facing parsers and the first version that fixes each
# (GitHub advisory database). `make audit` asks PyPI for anything newer.
ADVISORIES = {
    "starlette": {
        "CVE-2024-47874 (multipart fields without size limit, DoS)": "0.40.0",
        "CVE-2025-54121 (large multipart files block the event loop)": "0.47.2",
        "CVE-2025-62727 (quadratic Range header parsing in FileResponse)": "0.49.1",
    },
    "python-multipart": {
        "CVE-2024-24762 (ReDoS in Content-Type options)": "0.0.7",
        "CVE-2024-53981 (bytes before first / after last boundary, DoS)": "0.0.18",
        "CVE-2026-24486 (path traversal with UPLOAD_KEEP_FILENAME)": "0.0.22",
        "GHSA-pp6c-gr5w-3c5g (unbounded part headers, DoS)": "0.0.27",
        "GHSA-5rvq-cxj2-64vf (quadratic querystring parsing, DoS)": "0.0.30",
        "GHSA-6jv3-5f52-599m (semicolon querystring parameter smuggling)": "0.0.30",
        "GHSA-v9pg-7xvm-68hf (negative Content-Length buffers whole body)": "0.0.31",
    },
}


def python_sources() -> list[Path]:
    """Every Python file of the project (not the virtualenv)."""
    files = [path for folder in SOURCE_DIRS for path in (REPO_ROOT / folder).rglob("*.py")]
    assert len(files) > 10, "source discovery found almost nothing; the check would be vacuous"
    return sorted(files)


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def call_name(node: ast.Call) -> str:
    """`load_model` for `keras.saving.load_model(...)` or `load_model(...)`."""
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def keyword_is(node: ast.Call, name: str, value: object) -> bool:
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value == value
        for kw in node.keywords
    )


def unsafe_loading(tree: ast.Module) -> list[str]:
    """Imports of pickle-family modules and calls that unpickle, with line numbers."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        elif isinstance(node, ast.Call):
            name = call_name(node)
            if name in UNSAFE_CALLS or keyword_is(node, "allow_pickle", True):
                found.append(f"line {node.lineno}: {name}(...) unpickles")
            if name == "load_model" and keyword_is(node, "safe_mode", False):
                found.append(f"line {node.lineno}: load_model(safe_mode=False)")
            continue
        else:
            continue
        found += [f"line {node.lineno}: imports {name}" for name in names if name in UNSAFE_MODULES]
    return found


def test_the_scanner_catches_every_unsafe_form() -> None:
    """The scanner below is only worth something if it flags each form it claims to."""
    sample = ast.parse(
        "import pickle\n"
        "from joblib import load\n"
        "import dill.settings\n"
        "np.load(path, allow_pickle=True)\n"
        "pd.read_pickle(path)\n"
        "keras.saving.load_model(path, safe_mode=False)\n"
        "np.load(path)\n"
        "keras.saving.load_model(path, safe_mode=True)\n"
    )
    assert [line.split(":")[0] for line in unsafe_loading(sample)] == [
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 6",
    ]


@pytest.mark.parametrize("path", python_sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_pickle_and_no_unsafe_keras_loading(path: Path) -> None:
    assert unsafe_loading(parsed(path)) == [], f"{path.relative_to(REPO_ROOT)} loads unsafely"


def test_every_keras_load_in_the_product_passes_safe_mode_true() -> None:
    """Keras' default is safe mode, but the default can change; we say it out loud everywhere."""
    calls = [
        (path, node)
        for folder in ("app", "training", "model_store")
        for path in (REPO_ROOT / folder).rglob("*.py")
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.Call) and call_name(node) == "load_model"
    ]
    assert calls, "no Keras load_model call found; the keras backend must load the bundle somewhere"
    for path, node in calls:
        assert keyword_is(node, "safe_mode", True), (
            f"{path.name}:{node.lineno} lacks safe_mode=True"
        )


def test_no_pickle_files_in_the_committed_store() -> None:
    """Bundles are plain files: no pickles, joblib dumps or numpy object arrays."""
    suspicious = {".pkl", ".pickle", ".joblib", ".npy", ".npz", ".sav", ".h5", ".pt", ".pth"}
    offenders = [
        path
        for path in (REPO_ROOT / "models").rglob("*")
        if path.is_file() and path.suffix.lower() in suspicious
    ]
    assert offenders == []


def test_admin_token_is_compared_in_constant_time() -> None:
    """The admin check goes through hmac.compare_digest, and no `==`/`!=` touches the token."""
    uses_compare_digest = False
    for path in (REPO_ROOT / "app").rglob("*.py"):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Call) and call_name(node) == "compare_digest":
                uses_compare_digest = True
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                text = ast.unparse(node).lower()
                assert "token" not in text and "secret" not in text, (
                    f"{path.name}:{node.lineno} compares a secret with == ({ast.unparse(node)})"
                )
    assert uses_compare_digest, "no hmac.compare_digest call in app/"


def pinned(lock_file: str, package: str) -> Version:
    text = (REPO_ROOT / lock_file).read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(package)}==([^\s;#]+)", text, re.MULTILINE | re.IGNORECASE)
    assert match, f"{package} is not pinned in {lock_file}"
    return Version(match.group(1))


@pytest.mark.parametrize("package", sorted(ADVISORIES))
@pytest.mark.parametrize("lock_file", LOCK_FILES)
def test_pinned_parser_versions_are_past_every_known_advisory(lock_file: str, package: str) -> None:
    pin = pinned(lock_file, package)
    for advisory, fixed in ADVISORIES[package].items():
        assert pin >= Version(fixed), f"{lock_file}: {package}=={pin} is affected by {advisory}"


@pytest.mark.parametrize("package", sorted(ADVISORIES))
def test_installed_parser_versions_match_the_lock(package: str) -> None:
    """What the tests ran against is what ships."""
    assert Version(version(package)) == pinned("requirements/serve.txt", package)
