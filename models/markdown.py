"""Text a person typed, made safe to show in Temporal UI's Markdown (summaries, details).

The UI renders a workflow's summary and details, and an activity's summary, as
Markdown with HTML: a company named `[Click](http://evil.example)` would be a link there.
"""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be escaped with a backslash and then shows it as
# it is; escaping all of it also defeats autolinks (`http\://`, `www\.`).
_PUNCTUATION = re.compile(r"""([!"#$%'()*+,\-./:;=?@\[\\\]^_`{|}~])""")
# `&`, `<` and `>` as entities: raw HTML and entity references are never read from them.
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """`text` as Markdown that shows exactly `text`: no link, image, emphasis or HTML."""
    escaped = _PUNCTUATION.sub(r"\\\1", text)
    return "".join(_HTML.get(char, char) for char in escaped)
