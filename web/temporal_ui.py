"""The staff pages' link to a request's workflow in the Temporal UI.

The links the worker emails and the web app serves (the requester's status link, a
reminder's staff page) are `infra.links`'.
"""

from __future__ import annotations

from urllib.parse import quote

from models.ids import onboarding_workflow_id
from settings import Settings


def temporal_ui_url(settings: Settings, onboarding_id: str) -> str:
    """The request's workflow in the Temporal UI."""
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{quote(settings.temporal_namespace)}"
        f"/workflows/{quote(onboarding_workflow_id(onboarding_id))}"
    )
