"""MkDocs hooks for `make docs` (mkdocs.yml): what makes the checkout's Markdown one site.

- The README is the site's home page, so what a newcomer reads first is written once.
- A guide's link to a file of the repository outside `docs/` (the deploy files, the
  benchmark's reports) or to the team's spec beside the checkout works in the site as it
  does in the checkout: the site carries a copy of each file linked, under `repository/`
  (or `beside/` for what lies beside the checkout), and MkDocs points the link at it.
  A link to a file that does not exist is left for MkDocs to report, but for one
  beside a checkout that was cloned alone (`missing_beside`): that is shown as text.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

# The target of an inline link or image, up to its anchor or title: what the guides use.
LINK_TARGET = re.compile(r"\]\((?P<target>[^)\s#]+)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# A whole inline link (not an image), its text and its target.
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s#]+)[^)]*\)")


def missing_beside(root: Path, target: Path) -> bool:
    """Whether `target` lies beside the checkout at `root`, in a folder that is not there.

    The team's spec is in shared/ beside the checkout (and beside CI's clone, where such
    links are checked), but a clone made elsewhere has none: its links there lead nowhere
    by no fault of the pages.
    """
    if target.is_relative_to(root) or not target.is_relative_to(root.parent):
        return False
    return not (root.parent / target.relative_to(root.parent).parts[0]).exists()


def linked_paths(markdown: str) -> list[str]:
    """The relative paths `markdown` links to (external addresses and anchors left out)."""
    return [m["target"] for m in LINK_TARGET.finditer(markdown) if not EXTERNAL.match(m["target"])]


def home_page(readme: str) -> str:
    """The README with its links made relative to `docs/`, where the home page stands."""

    def from_docs(m: re.Match[str]) -> str:
        target = m["target"]
        if EXTERNAL.match(target):
            return m[0]
        if target.startswith("docs/"):
            return "](" + target.removeprefix("docs/")
        return "](../" + target

    return LINK_TARGET.sub(from_docs, readme)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    docs_dir = Path(config.docs_dir)

    def unlinked(m: re.Match[str]) -> str:
        target = docs_dir / posixpath.dirname(page.file.src_uri) / m["target"]
        return (
            m["text"] if missing_beside(docs_dir.parent, Path(os.path.normpath(target))) else m[0]
        )

    return LINK.sub(unlinked, markdown)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    docs_dir = Path(config.docs_dir)
    root = docs_dir.parent
    files.append(
        File.generated(config, "index.md", content=home_page((root / "README.md").read_text()))
    )
    pending = list(files.documentation_pages())
    while pending:
        page = pending.pop()
        for path in linked_paths(page.content_string):
            uri = posixpath.normpath(posixpath.join(posixpath.dirname(page.src_uri), path))
            # As the link reads, not through symlinks (shared/ beside a clone may be one).
            source = Path(os.path.normpath(docs_dir / uri))
            if not uri.startswith("../") or uri in files.src_uris or not source.is_file():
                continue
            if source.is_relative_to(root):
                published = "repository/" + source.relative_to(root).as_posix()
            else:
                published = "beside/" + source.relative_to(root.parent).as_posix()
            # Where MkDocs would put the file had it been at `published` in docs/.
            dest = File(published, None, config.site_dir, config.use_directory_urls).dest_uri
            # Said outright: MkDocs would take a path starting with "." for a hidden file.
            linked = File(
                uri,
                str(docs_dir),
                config.site_dir,
                config.use_directory_urls,
                dest_uri=dest,
                inclusion=InclusionLevel.NOT_IN_NAV,
            )
            files.append(linked)
            if linked.is_documentation_page():
                pending.append(linked)
    return files
