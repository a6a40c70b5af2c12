"""The README and docs/ stay followable: every relative link reaches a file (and a heading, when
it names one), every `make` target they name exists, every doc page says whom it is for first,
every measured figure they quote names the command that measures it, and the README stays a
front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "examples" / "SOURCES.md"])
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"`make ([a-z][a-z-]*)")
MAX_README_LINES = 250
# A measured figure: a decimal of seconds or sizes, milliseconds, a rate, CPU seconds, a run's length.
FIGURE = re.compile(
    r"\b\d[\d,]*\.\d+ ?(s|ms|requests/s|KB|MB)\b|\b\d[\d,]* ?ms\b|\brequests/s\b|\bs of CPU\b|\bminutes on\b"
)
# What measures it: a command named in backticks, or the page of the bench's figures.
MEASURED_BY = re.compile(
    r"`(make [a-z-]+|python -m tools\.[a-z_.]+)[^`]*`|\((?:\.\./)?(?:docs/)?(PERFORMANCE|SCALE)\.md"
)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            text = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            found.add(text)
    return found


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", text, flags=re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_named_exists(page):
    named = set(MAKE.findall(page.read_text(encoding="utf-8")))
    assert named <= make_targets(), f"{page.relative_to(ROOT)} names {sorted(named - make_targets())}"


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    for page in (ROOT / "docs").glob("*.md"):
        if page.name in ("SETTINGS_TABLE.md",):
            continue
        assert f"docs/{page.name}" in "\n".join(lines), f"the README's map does not name docs/{page.name}"


@pytest.mark.parametrize(
    "page", [p for p in (ROOT / "docs").glob("*.md") if p.name != "SETTINGS_TABLE.md"], ids=lambda p: p.name
)
def test_each_doc_page_says_whom_it_is_for_first(page):
    paragraphs = [p for p in page.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    first = paragraphs[1] if paragraphs[0].startswith("# ") else paragraphs[0]
    assert re.match(r"^(For|Who|What|How|This page)", first.strip()), f"{page.name} starts: {first[:80]!r}"


def unsourced_figures(text: str) -> list[str]:
    """The measured figures of a page that no command or bench page backs: one named in the
    figure's paragraph or table, or earlier in its section."""
    found, sourced = [], False
    for block in re.split(r"\n\s*\n", text):
        if block.lstrip().startswith("#"):
            sourced = bool(MEASURED_BY.search(block))
            continue
        sourced = sourced or bool(MEASURED_BY.search(block))
        if not sourced:
            found.extend(m.group(0) for m in FIGURE.finditer(block))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_measured_figure_names_the_command_that_measures_it(page):
    assert not unsourced_figures(page.read_text(encoding="utf-8")), page.relative_to(ROOT)


def test_a_figure_with_no_command_in_its_section_is_found():
    assert unsourced_figures("## Speed\n\nA fan-out takes 15.2 s.\n\n## Next\n\nMeasured by `make bench`: 9 ms.") == [
        "15.2 s"
    ]
