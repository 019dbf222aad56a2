"""One partner user's access: invited, sent sign-in links, removed.

Started by whatever first needs it (an administrator adding the user, a resend, a
forgotten password, a removal) through Update-with-Start on an id derived from the
email, so every change to one user meets in one workflow. It lives while a link it sent
waits to be used: a durable timer expires the link, a resend restarts the clock, using
the link ends it. The approval email's activation link needs none: it expires by its
date in the store (requests of one earlier release still start this workflow as their
child once approved, and it then watches that link too).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from activities.partners import PartnerActivities
    from models import search_attributes as sa
    from models.partners import (
        AccessLinkInput,
        AddPartnerUserInput,
        ExpireLinksInput,
        InviteInput,
        LinkPurpose,
        PartnerUserChanged,
        PartnerUserInput,
        PendingLinkInput,
        RemoveInput,
        RemovePartnerUserInput,
        SendLinkInput,
    )
    from workflows.options import EMAIL_OPTIONS, store_write

PURPOSE_WORDS = {
    LinkPurpose.ACTIVATION: "activation",
    LinkPurpose.INVITATION: "invitation",
    LinkPurpose.PASSWORD_RESET: "password reset",
}


# Auto-upgrade: it lives as long as a link waits (days), started by whatever touches
# the user; pinned, it would keep an old version's workers for each waiting link. So it
# moves to the current version on its next task, and a change to the commands it issues
# still takes a `workflow.patched` branch.
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class PartnerUserWorkflow:
    @workflow.init
    def __init__(self, input: PartnerUserInput) -> None:
        self._user_id: int | None = None
        # Links sent and still unused, by notification id; the newest one's expiry.
        self._links: list[str] = []
        self._deadline: datetime | None = None
        self._done = False

    @workflow.run
    async def run(self, input: PartnerUserInput) -> None:
        facts = await store_write(
            PartnerActivities.partner_user_facts,
            PendingLinkInput(email=input.email),
            "Commerce: read the user and their unused link",
        )
        if facts.partner_user_id is not None:
            self._known(facts.partner_user_id, facts.organization_name)
        if facts.pending is not None and facts.pending.notification_id not in self._links:
            self._watch(facts.pending.notification_id, facts.pending.expires_at)
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._done or self._deadline is None:
                return
            await self._until_used_or_expired(self._deadline)

    async def _until_used_or_expired(self, deadline: datetime) -> None:
        try:
            await workflow.wait_condition(
                lambda: self._done or self._deadline != deadline,
                timeout=max(deadline - workflow.now(), timedelta(seconds=1)),
                timeout_summary="The emailed link expires",
            )
        except TimeoutError:
            assert self._user_id is not None
            await store_write(
                PartnerActivities.expire_links,
                ExpireLinksInput(partner_user_id=self._user_id, notification_ids=self._links),
                "Commerce: the unused link expires",
            )
            self._links, self._deadline = [], None
            self._publish("The emailed link expired unused.")

    # --- what people do ---------------------------------------------------------------

    @workflow.update
    async def invite(self, input: InviteInput) -> PartnerUserChanged:
        """An administrator adds the user: into the hierarchy, then the invitation email."""
        user_id = await store_write(
            PartnerActivities.add_partner_user,
            AddPartnerUserInput(
                organization_customer_id=input.organization_customer_id,
                user=input.user,
                actor=input.actor,
                at=workflow.now(),
            ),
            f"Commerce: add the user to the customer hierarchy ({input.actor})",
        )
        self._known(user_id, None)
        return await self._send_link(user_id, LinkPurpose.INVITATION, input.actor)

    @workflow.update
    async def send_link(self, input: SendLinkInput) -> PartnerUserChanged:
        """A fresh link by email (resend, forgotten password); earlier ones stop working."""
        self._known(input.partner_user_id, None)
        return await self._send_link(input.partner_user_id, input.purpose, input.actor)

    @workflow.update
    async def remove(self, input: RemoveInput) -> PartnerUserChanged:
        """Unlink the user from the hierarchy; their sessions and links end at once."""
        self._known(input.partner_user_id, None)
        await store_write(
            PartnerActivities.remove_partner_user,
            RemovePartnerUserInput(
                partner_user_id=input.partner_user_id,
                actor=input.actor,
                at=workflow.now(),
                organization_customer_id=input.organization_customer_id,
            ),
            f"Commerce: remove the user from the hierarchy ({input.actor})",
        )
        self._links, self._deadline, self._done = [], None, True
        self._publish(f"Removed ({input.actor}).")
        return PartnerUserChanged(partner_user_id=input.partner_user_id)

    @workflow.signal
    def link_used(self) -> None:
        """The user followed their link and chose a password: nothing left to expire."""
        self._done = True
        self._publish("The link was used: the user has a password.")

    # --- mechanics --------------------------------------------------------------------

    async def _send_link(
        self, user_id: int, purpose: LinkPurpose, actor: str
    ) -> PartnerUserChanged:
        notification_id = workflow.uuid4().hex
        words = PURPOSE_WORDS[purpose]
        issued = await workflow.execute_activity_method(
            EmailActivities.send_access_link,
            AccessLinkInput(
                partner_user_id=user_id,
                purpose=purpose,
                notification_id=notification_id,
                actor=actor,
            ),
            summary=f"Email: send the {words} link",
            **EMAIL_OPTIONS,
        )
        self._done = False
        self._watch(notification_id, workflow.now() + issued.valid_for)
        self._publish(f"The {words} link is sent.")
        return PartnerUserChanged(partner_user_id=user_id, link_expires_at=self._deadline)

    def _watch(self, notification_id: str, expires_at: datetime) -> None:
        # The newest link expires last: a link read at start that an Update has since
        # replaced must not bring the clock forward.
        self._links.append(notification_id)
        self._deadline = max(self._deadline or expires_at, expires_at)

    def _known(self, user_id: int, organization_name: str | None) -> None:
        if self._user_id == user_id:
            return
        self._user_id = user_id
        pairs = [sa.PARTNER_USER_ID.value_set(str(user_id))]
        if organization_name:
            pairs.append(sa.COMPANY_NAME.value_set(organization_name))
        workflow.upsert_search_attributes(pairs)

    def _publish(self, news: str) -> None:
        details = [f"**Partner user:** {self._user_id}", news]
        if self._deadline is not None:
            details.append(f"The link expires at {self._deadline:%Y-%m-%d %H:%M} UTC.")
        workflow.set_current_details("\n\n".join(details))
