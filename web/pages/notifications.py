"""What the partner was told, on each request's Sales and Commerce pages, and a Commerce
admin's resend of an email the mail server refused (its route is Commerce's)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field
from temporalio.client import Client

from client.connection import Connection
from client.requests import resend_notification
from models.commerce import Prospect
from models.status import EmailKind, OnboardingStatus
from models.workflow_io import ResendNotificationInput
from settings import Settings
from stores import Stores, views
from stores.notifications import Told, told
from web.auth import User
from web.dependencies import read
from web.pages.decisions import status_for_staff
from web.templating import flash, when


async def notifications_of(
    stores: Stores, onboarding_id: str | None, status: OnboardingStatus | None
) -> list[Told]:
    """The request's emails to its requester, from the outbox and the request's status
    (the page's, from Temporal or else the stores; None when neither could say)."""
    if onboarding_id is None:
        return []
    rows = await read(views.notifications_of_request, stores.commerce, onboarding_id)
    return told(rows, status)


class ResendForm(BaseModel):
    """Which of the request's emails to send again."""

    kind: EmailKind
    # A reminder's hour (`2026-11-29T14`); empty for the others.
    period: str = Field(default="", pattern=r"^(\d{4}-\d{2}-\d{2}T\d{2})?$")


async def resend(
    request: Request,
    prospect: Prospect,
    form: ResendForm,
    user: User,
    temporal: Connection,
    stores: Stores,
    client: Client,
    settings: Settings,
) -> None:
    """Send a refused email again: a new attempt at the same notification, still sent
    once. What happened is left as the page's message."""
    status = await status_for_staff(temporal, stores, prospect.onboarding_id)
    shown = await notifications_of(stores, prospect.onboarding_id, status)
    found = next((t for t in shown if t.kind == form.kind and t.period == form.period), None)
    if found is None:
        raise HTTPException(404, "This request has no such email.")
    if found.state == "sent":
        flash(request, f"Nothing to send again: this email was sent on {when(found.sent_at)}.")
        return
    if not found.resendable:
        flash(request, "This email is still being sent: the mail server has not refused it.")
        return
    outcome = await resend_notification(
        client,
        settings,
        ResendNotificationInput(
            onboarding_id=prospect.onboarding_id,
            kind=form.kind,
            period=form.period,
            actor=user.name,
        ),
    )
    if outcome.state == "sent":
        flash(request, f"Sent again: the mail server took “{found.words}”.", "success")
    elif outcome.state == "failed":
        flash(request, f"Not sent again: {outcome.error}", "error")
    else:
        flash(
            request,
            "Sending again: the mail server has not answered yet. This page shows when it does.",
        )
