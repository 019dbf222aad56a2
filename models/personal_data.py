"""A request's personal data: anonymising it (retention, erasure) and what is kept of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from models.requests import Actor, Reason

# What an anonymised text field holds where a value is required: the pages tell it apart
# from an address the requester gave.
ERASED = "[erased]"


class AnonymisationKind(StrEnum):
    # PERSONAL_DATA_RETENTION has passed since a rejection.
    RETENTION = "retention"
    # A Commerce admin erased the requester's personal data on request.
    ERASURE = "erasure"


class AnonymiseRequestInput(BaseModel):
    """Anonymise a decided request's personal data in both stores; who, when and why."""

    onboarding_id: str
    at: datetime
    actor: Actor
    # Why (say, "the requester asked on 2026-12-01"); never the person's data itself.
    reason: Reason = Field(min_length=1)
    kind: AnonymisationKind


class RequestAnonymised(BaseModel):
    """A request's personal data gone from both stores, and the record of it.

    `rows` counts, per table, the rows of the request that were anonymised (what is left
    of them is the decision record); the first anonymisation's who, when and why stand,
    but an erasure after a retention is recorded as the erasure.
    """

    onboarding_id: str
    kind: AnonymisationKind
    anonymised_at: datetime
    anonymised_by: str
    reason: str
    rows: dict[str, int] = Field(default_factory=dict)


# What became of Temporal's copy of an erased request: its data key destroyed; its
# workflow deleted (its history began in clear, before data keys); already gone (past the
# namespace's retention); or `pending` while its workflow ends (the worker's sweep
# destroys the key once it has).
ErasedHistory = Literal["key_destroyed", "history_deleted", "history_gone", "pending"]


class Erasure(RequestAnonymised):
    """A request's personal data erased: the record kept of it, and Temporal's copy."""

    history: ErasedHistory
