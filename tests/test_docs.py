"""The README and the guides in docs/: every link inside them leads somewhere, and the site builds.

A relative link must name a file that exists (beside the page that links it), and an
`#anchor` a heading of that page, spelt as MkDocs and GitHub spell it. `make docs`
builds the site with no warning.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from markdown.extensions.toc import slugify
from markdown_it import MarkdownIt
from markdown_it.token import Token

from scripts.docs_site import missing_beside
from settings import PROJECT_DIR
from tests.test_browser import GUIDES_SCREENSHOTS, IN_THE_GUIDES

DOCS = PROJECT_DIR / "docs"
README = PROJECT_DIR / "README.md"
PARSER = MarkdownIt("commonmark").enable("table")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def inline_tokens(markdown: str) -> list[Token]:
    """Every inline token of `markdown`, table cells and list items included."""
    found: list[Token] = []
    for token in PARSER.parse(markdown):
        found.extend(token.children or [])
    return found


def anchors(page: Path) -> set[str]:
    """The ids of `page`'s headings; a heading twice on one page fails (MkDocs and GitHub
    would number the second differently)."""
    tokens = PARSER.parse(page.read_text())
    seen: list[str] = []
    for opening, inline in pairwise(tokens):
        if opening.type == "heading_open":
            text = "".join(child.content for child in inline.children or [])
            seen.append(slugify(text, "-"))
    twice = {anchor for anchor in seen if seen.count(anchor) > 1}
    assert not twice, f"{page}: headings that are there twice: {sorted(twice)}"
    return set(seen)


def broken_links(page: Path) -> list[str]:
    """What is wrong with each relative link in `page`, one line each."""
    broken = []
    for token in inline_tokens(page.read_text()):
        target = str(token.attrs.get("href") or token.attrs.get("src") or "")
        address = urlsplit(target)
        if not target or address.scheme or address.netloc:
            continue
        path = Path(os.path.normpath(page.parent / unquote(address.path))) if address.path else page
        if not path.exists() and not missing_beside(PROJECT_DIR, path):
            broken.append(f"{page.name}: {target}: no such file")
        elif address.fragment and path.suffix == ".md" and address.fragment not in anchors(path):
            broken.append(f"{page.name}: {target}: no such heading in {path.name}")
    return broken


def test_every_relative_link_and_anchor_in_the_readme_and_the_guides_resolves() -> None:
    assert len(pages()) > 10
    broken = [line for page in pages() for line in broken_links(page)]
    assert broken == []


def test_a_missing_file_a_missing_heading_and_a_heading_twice_are_each_caught(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Emails\n\n## What is sent\n\n"
        "[ok](#what-is-sent) [gone](gone.md) [no heading](#what-was-sent)\n\n"
        "| a | b |\n| --- | --- |\n| ![shot](shots/none.png) | [self](page.md#emails) |\n"
    )
    assert broken_links(page) == [
        "page.md: gone.md: no such file",
        "page.md: #what-was-sent: no such heading in page.md",
        "page.md: shots/none.png: no such file",
    ]
    page.write_text("# Emails\n\n## Emails\n")
    try:
        anchors(page)
    except AssertionError as refused:
        assert "emails" in str(refused)
    else:
        raise AssertionError("a heading twice was not refused")


def test_a_link_beside_the_checkout_is_checked_where_its_folder_is_there(tmp_path: Path) -> None:
    checkout, spec = tmp_path / "checkout", tmp_path / "shared" / "spec" / "DOMAIN.md"
    checkout.mkdir()
    assert missing_beside(checkout, spec)
    (tmp_path / "shared").mkdir()
    assert not missing_beside(checkout, spec)
    assert not missing_beside(checkout, checkout / "docs" / "gone.md")


def test_every_guide_is_in_the_sites_navigation_and_linked_from_the_readme() -> None:
    config = yaml.load((PROJECT_DIR / "mkdocs.yml").read_text(), Loader=yaml.SafeLoader)

    def entries(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [page for item in nav for page in entries(item)]
        if isinstance(nav, dict):
            return [page for value in nav.values() for page in entries(value)]
        return []

    guides = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert guides - set(entries(config["nav"])) == set()
    linked = {
        str(token.attrs["href"]).removeprefix("docs/")
        for token in inline_tokens(README.read_text())
        if token.type == "link_open"
    }
    assert guides - linked == set()


def test_the_readme_stays_what_a_newcomer_reads_first() -> None:
    # What it is, the two commands, the walkthrough and where to read on: the guides
    # belong in docs/ (issue 24: it had grown to 1,552 lines).
    assert len(README.read_text().splitlines()) <= 150


def test_make_docs_builds_the_site_without_a_warning(tmp_path: Path) -> None:
    built = subprocess.run(
        [Path(sys.executable).parent / "mkdocs", "build", "--strict", "-d", tmp_path / "site"],
        cwd=PROJECT_DIR,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr
    site = tmp_path / "site"
    # The README is the home page; a guide's link to a repository file is carried along.
    assert "A walkthrough" in (site / "index.html").read_text()
    assert (site / "repository" / "deploy" / "b2b-onboarding.env").is_file()
    assert "fonts.googleapis.com" not in (site / "index.html").read_text()


def test_every_screenshot_in_the_guides_is_shown_and_made_again_by_a_browser_test() -> None:
    made = set(
        re.findall(
            r'snap\(\w+, "([\w-]+)"\)',
            "".join(path.read_text() for path in (PROJECT_DIR / "tests").glob("test_*.py")),
        )
    )
    assert set(IN_THE_GUIDES) - made == set()
    kept = {path.stem for path in GUIDES_SCREENSHOTS.glob("*.png")}
    assert kept == set(IN_THE_GUIDES.values())
    shown = {
        Path(str(token.attrs["src"])).stem
        for page in pages()
        for token in inline_tokens(page.read_text())
        if token.type == "image"
    }
    assert kept - shown == set()
