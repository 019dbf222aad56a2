"""A rejected request's personal data, kept for PERSONAL_DATA_RETENTION, then anonymised.

Started by the request's workflow once it is rejected and its emails are out
(`personal-data-<onboarding_id>`, abandoned by its parent, which ends). It sleeps on a
durable timer until the retention has passed since the decision, then anonymises the
request in both stores (`RequestActivities.anonymise_request`, kind `retention`), keeping
the decision record; the worker's sweep then destroys the request's data key, making its
history unreadable. An erasure before then (a Commerce admin's) cancels it: the data is
gone already.

It carries no personal data: its input is the request's id and two dates, so its
payloads are encrypted with the master key, not the request's.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from activities.requests import RequestActivities
    from models.lifecycle import SYSTEM_ACTOR
    from models.personal_data import AnonymisationKind, AnonymiseRequestInput
    from models.workflow_io import PersonalDataInput
    from workflows.options import store_write

RETENTION_REASON = "PERSONAL_DATA_RETENTION has passed since the rejection"


# Auto-upgrade: it sleeps for the whole retention (months); pinned, it would keep an
# old version's workers for as long. So it moves to the current version when it wakes,
# and a change to the commands it issues still takes a `workflow.patched` branch.
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class PersonalDataWorkflow:
    @workflow.run
    async def run(self, input: PersonalDataInput) -> bool:
        """True once anonymised; False if cancelled first (an erasure did it)."""
        kept_for = input.anonymise_at - workflow.now()
        try:
            if kept_for.total_seconds() > 0:
                await workflow.sleep(
                    kept_for, summary="Keep the rejected requester's data until the retention ends"
                )
        except asyncio.CancelledError:
            workflow.logger.info(
                "Request %s: erased before its retention ended", input.onboarding_id
            )
            return False
        await store_write(
            RequestActivities.anonymise_request,
            AnonymiseRequestInput(
                onboarding_id=input.onboarding_id,
                at=workflow.now(),
                actor=SYSTEM_ACTOR,
                reason=RETENTION_REASON,
                kind=AnonymisationKind.RETENTION,
            ),
            "Commerce and Sales: anonymise the requester's personal data (retention)",
        )
        return True
