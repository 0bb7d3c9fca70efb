"""Ask PyPI whether any pinned serving dependency has a published advisory (`make audit`).

PyPI's JSON API carries the PyPA advisory database in a `vulnerabilities` field: per release at
`/pypi/<name>/<version>/json`, and for the newest release at `/pypi/<name>/json`. Mirrors that only
serve the second are handled by using it when the pin *is* the newest release. This needs the
network, so it is a recorded check (SECURITY.md), not part of `make test`; the offline floor check
is tests/reliability/test_supply_chain.py.

Exit status: 1 when a pin has a published advisory, else 0; pins the mirror cannot answer for are
listed as unchecked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi"


def pins(lock_file: Path) -> dict[str, str]:
    """`name==version` lines of a uv/pip-compile lock file."""
    found = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;#\\]+)", lock_file.read_text(), re.MULTILINE)
    return dict(sorted(found))


def fetch(url: str) -> dict[str, Any] | None:
    """The JSON document at `url`, or None when PyPI (or the mirror) has no such page."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            document: dict[str, Any] = json.load(response)
            return document
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def advisories(name: str, pinned: str) -> tuple[str, list[dict[str, Any]]]:
    """(how it was checked, advisories affecting `name==pinned`)."""
    release = fetch(f"{PYPI}/{name}/{pinned}/json")
    if release is not None:
        return "release page", list(release.get("vulnerabilities") or [])
    project = fetch(f"{PYPI}/{name}/json")
    if project is None:
        return "not on PyPI", []
    latest = project["info"]["version"]
    if latest != pinned:
        return f"unchecked (mirror serves only the newest, {latest})", []
    return "newest release", list(project.get("vulnerabilities") or [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lock", type=Path, default=REPO_ROOT / "requirements" / "serve.txt", help="lock file"
    )
    args = parser.parse_args()
    affected, unchecked = 0, 0
    print("| package | pinned | checked via | advisories |\n| --- | --- | --- | --- |")
    for name, pinned in pins(args.lock).items():
        try:
            how, found = advisories(name, pinned)
        except (urllib.error.URLError, TimeoutError) as exc:
            how, found = f"unchecked ({exc})", []
        ids = ", ".join(item.get("id", "?") for item in found) or "none"
        affected += bool(found)
        unchecked += how.startswith(("unchecked", "not on"))
        print(f"| {name} | {pinned} | {how} | {ids} |")
    print(f"\n{affected} pin(s) with advisories, {unchecked} unchecked", file=sys.stderr)
    return 1 if affected else 0


if __name__ == "__main__":
    sys.exit(main())
