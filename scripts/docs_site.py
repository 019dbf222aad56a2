"""MkDocs hooks for `make docs` (mkdocs.yml): what makes the checkout's Markdown one site.

- The README is the site's home page, so what a newcomer reads first is written once.
- A guide's link to a file of the repository outside `docs/` (the deploy files, the
  benchmark's reports) or to the team's spec beside the checkout works in the site as it
  does in the checkout: the site carries a copy of each file linked, under `repository/`
  (or `beside/` for what lies beside the checkout), and MkDocs points the link at it.
  A link to a file that does not exist is left for MkDocs to report.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
# The target of an inline link or image, up to its anchor or title: what the guides use.
LINK_TARGET = re.compile(r"\]\((?P<target>[^)\s#]+)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


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


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(
        File.generated(config, "index.md", content=home_page((ROOT / "README.md").read_text()))
    )
    docs_dir = Path(config.docs_dir)
    pending = list(files.documentation_pages())
    while pending:
        page = pending.pop()
        for path in linked_paths(page.content_string):
            uri = posixpath.normpath(posixpath.join(posixpath.dirname(page.src_uri), path))
            source = (docs_dir / uri).resolve()
            if not uri.startswith("../") or uri in files.src_uris or not source.is_file():
                continue
            if source.is_relative_to(ROOT):
                published = "repository/" + source.relative_to(ROOT).as_posix()
            else:
                published = "beside/" + source.relative_to(ROOT.parent).as_posix()
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
