"""What a requester or a rep typed shows as text in the Temporal UI, never as Markdown or HTML."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest
from markdown_it import MarkdownIt
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from client.requests import decide
from models.lifecycle import Action
from models.markdown import escape
from settings import Settings
from tests.scenario import decoded_history, finished, submitted

# CommonMark with raw HTML let through, as a UI that renders Markdown with HTML does.
RENDER = MarkdownIt("commonmark", {"html": True})
TYPED = [
    "[Click to verify](http://evil.example/login)",
    "![logo](http://evil.example/x.png)",
    '<img src=x onerror="alert(1)">',
    "<script>alert(1)</script>",
    "`rm -rf /`",
    "**bold** _em_ ~~gone~~",
    "C:\\Users\\giulia \\[not a link\\]",
    "&lt;b&gt; &amp; &#60;",
    "# heading",
    "<http://evil.example>",
    "Contoso Srl",
]


def shown(markdown: str) -> str:
    """The text a person reads where `markdown` is rendered; fails on any element but <p>."""
    rendered = RENDER.render(markdown).strip()
    body = rendered.removeprefix("<p>").removesuffix("</p>")
    assert "<" not in body, f"{markdown!r} rendered as {rendered!r}"
    return html.unescape(body)


@pytest.mark.parametrize("text", TYPED)
def test_escaped_text_renders_as_exactly_that_text(text: str) -> None:
    assert shown(escape(text)) == text


def user_metadata(history_json: str) -> list[str]:
    """Every summary and details string recorded in a workflow's history."""
    found = []
    for event in json.loads(history_json)["events"]:
        for payload in event.get("userMetadata", {}).values():
            found.append(json.loads(base64.b64decode(payload["data"])))
    return found


@pytest.mark.usefixtures("worker")
async def test_what_was_typed_reaches_the_temporal_ui_as_text(
    client: Client, settings: Settings
) -> None:
    company, name, actor = TYPED[0], TYPED[2], "[rep](http://evil.example)"
    status = await submitted(client, settings, company=company, first_name=name)
    await decide(client, status.onboarding_id, Action.QUALIFY, actor=actor)
    await decide(client, status.onboarding_id, Action.LOST, actor=actor)
    await finished(client, status)
    handle = client.get_workflow_handle(status.workflow_id)

    description = await handle.describe()
    summary, details = await description.static_summary(), await description.static_details()
    assert summary and details
    # The company only: no person's name where encryption cannot reach (issue 15).
    assert shown(summary) == company
    assert shown(details.split("\n\n")[0].removeprefix("**Company:** ")) == company
    recorded = user_metadata((await decoded_history(client, status.workflow_id)).to_json())
    decisions = ("Commerce and Sales: qualify", "Commerce and Sales: lost")
    activities = [text for text in recorded if text.startswith(decisions)]
    assert [shown(text).endswith(f"({actor})") for text in activities] == [True, True]
    for text in [summary, details, *activities]:
        assert actor not in text and company not in text and name not in text
        assert not re.search(r"<(a|img)\b", RENDER.render(text)), text
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "<a" not in RENDER.render(metadata.current_details)
