"""What a rep's or admin's decision and hold carry at the edges, in the words every edge
shows beside its fields: the API's schema, the Sales and Commerce pages, the command
line's help. The reason is the requester's to read; the reason code and the note are
staff's own.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from models.lifecycle import STAFF_REASON_CODES, ReasonCode

REASON_WORDS = "The requester reads this in the rejection email."
REASON_CODE_WORDS = "Why it is turned down, for staff and reports; the requester never sees it."
NOTE_WORDS = "For staff only: never emailed, never shown to the requester."
HOLD_NOTE_WORDS = (
    "Why it is on hold, for staff only (never shown to the requester): while held, no "
    "reminders are sent and the request does not expire."
)


def _chosen_by_staff(code: ReasonCode) -> ReasonCode:
    if code not in STAFF_REASON_CODES:
        raise ValueError(f"{code.value} is the system's reason code; staff choose another")
    return code


# A reason code a rep or admin may give: any but `expired`, which only the system gives.
StaffReasonCode = Annotated[
    ReasonCode,
    AfterValidator(_chosen_by_staff),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [code.value for code in STAFF_REASON_CODES],
            "description": REASON_CODE_WORDS,
        }
    ),
]
