"""The documentation against the repository: links resolve, every setting and route is
documented within two clicks of the README, and the model-quality tables match the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings
from tools.model_quality import BEGIN, PAGE, quality_tables, replace_tables

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "SECURITY.md",
        *(ROOT / "docs").rglob("*.md"),
    ]
)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
PARAMETER = re.compile(r"\{[^}]*\}")


def prose(text: str) -> str:
    """The text without fenced code blocks, where a `[x](y)` is code, not a link."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub gives the headings of `page` (repeated ones get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The targets of the page's links that point inside the repository."""
    text = INLINE_CODE.sub("", prose(page.read_text()))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{target}: no heading with anchor #{anchor}")
    return problems


def linked_pages(page: Path) -> list[Path]:
    """`page` and the Markdown pages it links to (one click away)."""
    targets = [(page.parent / t.partition("#")[0]).resolve() for t in relative_links(page)]
    return [page, *(t for t in targets if t.suffix == ".md" and t.exists())]


def test_the_docs_index_lists_every_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md")
    assert [name for name in pages if f"]({name})" not in index] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    # Nothing about how it was built: no issue numbers, no commit hashes.
    assert re.findall(r"\bissues? \d+|\b[0-9a-f]{7,40}\b", prose(readme)) == []


def test_the_readme_verdict_quotes_the_generated_model_quality_tables() -> None:
    verdict = (ROOT / "README.md").read_text().split("## How good is the model?")[1].split("##")[0]
    tables = PAGE.read_text().split(BEGIN)[1]
    ratios = re.findall(r"\b\d\.\d{4}\b", verdict)
    assert ratios and [ratio for ratio in ratios if ratio not in tables] == []


def test_every_setting_is_documented_within_two_clicks_of_the_readme() -> None:
    configuration = ROOT / "docs" / "configuration.md"
    assert configuration.resolve() in linked_pages(ROOT / "README.md")
    documented = "\n".join(page.read_text() for page in linked_pages(configuration))
    variables = [name.upper() for name in Settings.model_fields]
    assert [v for v in variables if f"`{v}`" not in documented] == []


def test_every_route_is_documented_within_two_clicks_of_the_readme() -> None:
    api = ROOT / "docs" / "api.md"
    assert api.resolve() in linked_pages(ROOT / "README.md")
    documented = PARAMETER.sub("{}", "\n".join(page.read_text() for page in linked_pages(api)))
    paths = {
        PARAMETER.sub("{}", path)
        for path in create_app(Settings()).openapi()["paths"]
        if path != "/"
    }
    # Written as `/path`, `GET /path` or `POST /path?query`.
    undocumented = [
        p for p in sorted(paths) if not re.search(rf"[` ]{re.escape(p)}[`?]", documented)
    ]
    assert undocumented == []


def test_the_model_quality_tables_match_the_store(shared_data: Path) -> None:
    page = PAGE.read_text()
    tables = quality_tables(ROOT / "models", "fb-lstm", shared_data)
    assert replace_tables(page, tables) == page, "run `make model-quality`"
