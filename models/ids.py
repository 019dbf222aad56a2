"""Workflow ids and keys: stable, derived from the request, and free of personal data."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime


def applicant_key(email: str) -> str:
    """A stable, non-reversible key for one contact email (workflow ids stay free of PII)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


ONBOARDING_PREFIX = "onboarding-"


def onboarding_workflow_id(onboarding_id: str) -> str:
    return f"{ONBOARDING_PREFIX}{onboarding_id}"


def personal_data_workflow_id(onboarding_id: str) -> str:
    """A rejected request's retention: `personal-data-<onboarding_id>`."""
    return f"personal-data-{onboarding_id}"


def onboarding_id_of(workflow_id: str | None) -> str | None:
    """The request a workflow id belongs to, or None for any other workflow."""
    if workflow_id is None or not workflow_id.startswith(ONBOARDING_PREFIX):
        return None
    return workflow_id.removeprefix(ONBOARDING_PREFIX) or None


def applicant_workflow_id(email: str) -> str:
    return f"applicant-{applicant_key(email)}"


def hour_period(at: datetime) -> str:
    """The UTC hour `at` falls in: a status-link reminder goes out at most once in each."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def resend_workflows_prefix(onboarding_id: str) -> str:
    """What every resend workflow id of the request begins with."""
    return f"notification-{onboarding_id}-"


def resend_workflow_id(onboarding_id: str, kind: str, period: str = "") -> str:
    """A notification's resend: one at a time, so a double click meets the running one."""
    return resend_workflows_prefix(onboarding_id) + kind + (f"-{period}" if period else "")
