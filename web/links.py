"""Links the pages hand out: the requester's unguessable status link, the Temporal UI."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from models.payloads import onboarding_workflow_id
from settings import Settings


def status_token(secret: bytes, onboarding_id: str) -> str:
    """Proof that the holder was given the link: the reference alone opens nothing."""
    digest = hmac.new(secret, f"status:{onboarding_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def status_token_valid(secret: bytes, onboarding_id: str, token: str) -> bool:
    return hmac.compare_digest(status_token(secret, onboarding_id).encode(), token.encode())


def status_path(secret: bytes, onboarding_id: str) -> str:
    return f"/requests/{quote(onboarding_id)}/{status_token(secret, onboarding_id)}"


def temporal_ui_url(settings: Settings, onboarding_id: str) -> str:
    """The request's workflow in the Temporal UI."""
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{quote(settings.temporal_namespace)}"
        f"/workflows/{quote(onboarding_workflow_id(onboarding_id))}"
    )
