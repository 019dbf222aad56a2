"""The inputs and results of the workflows, their Updates and signals."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from models.requests import Actor, OnboardingRequest, Reason
from models.status import EmailKind


class OnboardingInput(BaseModel):
    onboarding_id: str
    request: OnboardingRequest


class SubmitResult(BaseModel):
    onboarding_id: str
    workflow_id: str
    duplicate: bool = False


class StatusLinkRequested(BaseModel):
    """To an open request: its contact email applied again at `at`."""

    at: datetime


class ErasePersonalData(BaseModel):
    """The `erase` Update: a Commerce admin erases a decided request's personal data.

    The workflow anonymises both stores (`RequestActivities.anonymise_request`, kind
    `erasure`) and ends; the client then destroys the request's data key.
    """

    actor: Actor
    # Why (say, "the requester asked on 2026-12-01"); never the person's data itself.
    reason: Reason = Field(min_length=1)


class PersonalDataInput(BaseModel):
    """A rejected request's retention: anonymise it at `anonymise_at` (decided + retention)."""

    onboarding_id: str
    anonymise_at: datetime


class ResendNotificationInput(BaseModel):
    """A Commerce admin's resend of a request's failed notification: which one, and who.

    Only ids: the email is written again from the stores' rows of the request.
    """

    onboarding_id: str
    kind: EmailKind
    period: str = ""
    actor: Actor
    # An email of a rejected request that applied again (APPLIED_AGAIN): from when it
    # may, as the policy that refused it said.
    may_apply_from: datetime | None = None
