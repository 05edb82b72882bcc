"""The README is a short path a newcomer can follow, and the documentation holds together:
its first screen has the two lab commands and the Quick start, it stays under 400 lines,
every relative link and anchor of README.md, docs/ and examples/ leads somewhere, and no
table row is written on two pages."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted([README, *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("*.md")])


def test_the_first_screen_has_the_two_commands_and_the_quick_start():
    first = "\n".join(README.read_text().splitlines()[:60])
    assert "`./lab demo`" in first and "`./lab test`" in first, first
    assert "\n## Quick start\n" in first
    quick_start = README.read_text().split("\n## Quick start\n", 1)[1]
    assert "saltutil.sync_all" in first  # install and sync come first
    for step in ("top.sls", "state.apply wireguard", "wireguard.show"):
        assert step in quick_start.split("\n## ", 1)[0], step


def test_the_readme_is_at_most_400_lines():
    assert len(README.read_text().splitlines()) <= 400


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    text = re.sub(r"(?ms)^ *```.*?^ *```", "", page.read_text())
    return {anchor(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}


def links(page):
    """Relative links ``[text](target)`` of a page, outside code blocks."""
    text = re.sub(r"(?ms)^ *```.*?^ *```", "", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    return [
        m.group(1)
        for m in re.finditer(r"\]\(([^)\s]+)\)", text)
        if not re.match(r"[a-z]+:", m.group(1))
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_somewhere(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        missing_anchor = (
            dest.exists() and fragment and dest.suffix == ".md" and fragment not in anchors(dest)
        )
        if not dest.exists() or missing_anchor:
            broken.append(target)
    assert not broken, broken


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "# Key `rotation` (PSKs)\n[a](#key-rotation-psks) [b](#gone) "
        "[c](missing.md) `[d](#in-code)`\n```\n[e](#in-block)\n```\n"
    )
    assert anchors(page) == {"key-rotation-psks"}
    assert links(page) == ["#key-rotation-psks", "#gone", "missing.md"]


def table_rows(page):
    """The body rows of the page's tables (not header or separator rows)."""
    rows, previous = [], ""
    for line in page.read_text().splitlines():
        line = line.strip()
        if line.startswith("|") and previous.startswith("|") and not set(line) <= set("|-: "):
            rows.append(line)
        previous = line
    return [row for row in rows if not set(row) <= set("|-: ")]


def test_no_table_row_is_written_on_two_pages():
    seen, twice = {}, []
    for page in PAGES:
        for row in set(table_rows(page)):
            if len(row) > 40 and row in seen:
                twice.append((row[:80], seen[row], page.name))
            seen.setdefault(row, page.name)
    assert not twice, twice


def test_the_development_page_lists_every_util():
    """docs/development.md says where each concept lives: every _utils/wgf_*.py is in
    its table, and it names no util that does not exist."""
    page = (REPO / "docs" / "development.md").read_text()
    listed = set(re.findall(r"\| `_utils/(wgf_\w+\.py)` \|", page))
    assert listed == {p.name for p in (REPO / "_utils").glob("wgf_*.py")}


def test_every_benchmark_script_is_named_in_the_readme_with_its_results_page():
    """The README names each benchmark script and links to the table of its results."""
    scripts = {p.stem for p in (REPO / "benchmarks").glob("*.py") if "__main__" in p.read_text()}
    assert "show_dump" in scripts
    section = README.read_text().split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    assert not [s for s in scripts if f"`{s}`" not in section], section
    assert "(docs/benchmarks.md#results)" in section
    results = (REPO / "docs" / "benchmarks.md").read_text().split("\n## Results\n", 1)[1]
    assert not [s for s in scripts if f"-m benchmarks.{s}`" not in results]
