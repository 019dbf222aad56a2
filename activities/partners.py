"""The partner's users in Commerce: added to the hierarchy, removed from it, their links.

Each write is one transaction, idempotent on the user's email (one user per email), so
a retried activity finds what its first attempt wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, bindparam
from sqlalchemy import select as select_columns
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import expected_refusal, missing_record, write
from models.commerce import (
    AccessLink,
    Customer,
    CustomerHierarchy,
    CustomerHierarchyMember,
    PartnerUser,
)
from models.dual_write import Entity, Side
from models.partners import (
    LAST_ADMINISTRATOR,
    AddPartnerUserInput,
    ExpireLinksInput,
    LinkState,
    PartnerRole,
    PartnerUserState,
    PendingLink,
    PendingLinkInput,
    RemovePartnerUserInput,
)
from stores import dual_write
from stores.accounts import PARTNER, administrators, end_sessions, utc
from stores.engine import Sql, get_or_create, hot, insert_ignoring, one

PERSON = "person"
ORGANIZATION = "organization"


def already_a_user(email: str) -> ApplicationError:
    return expected_refusal(
        f"{email} is already a user of a business partner", "AlreadyPartnerUser"
    )


def no_such_user() -> ApplicationError:
    return ApplicationError(
        "no such user in the organisation", type="NoSuchPartnerUser", non_retryable=True
    )


def last_administrator() -> ApplicationError:
    return expected_refusal(LAST_ADMINISTRATOR, "LastAdministrator")


class PartnerUserFacts(BaseModel):
    """What a partner user's workflow needs to know when it starts."""

    partner_user_id: int | None = None
    organization_name: str | None = None
    pending: PendingLink | None = None


def ensure_administrator(session: Session, onboarding_id: str, at: datetime) -> Any | None:
    """The approved requester's account (its `id` and `state`), as their organisation's B2B
    administrator.

    Made by the approval email, once the hierarchy exists (None before: the email then
    just says to sign in). The approval decides: an account the email has with another
    organisation (invited by it, removed from it, or active in it) moves to the approved
    one as its administrator, to be activated afresh by the approval email's link; the
    other organisation's links and sessions for it end. No other organisation's action
    takes the requester's own organisation from them (README, "Partner accounts").

    Answers the account's `id` and `state`. A new account, the usual case, is one INSERT;
    an email that has one already takes the ORM's path (`_administrator_again`).
    """
    connection = Sql(session.connection())
    person = connection.execute(_APPROVED_PERSON, {"onboarding_id": onboarding_id}).first()
    if person is None or person.email is None:
        return None
    user = {
        "email": person.email.lower(),
        "customer_id": person.id,
        "organization_customer_id": person.root_customer_id,
        "hierarchy_id": person.hierarchy_id,
        "first_name": person.first_name or "",
        "last_name": person.last_name or "",
        "locale": person.locale,
        "created_at": at,
        "invited_by": "approval",
    }
    made = connection.execute(insert_ignoring(connection, USER, "id", "state"), user).first()
    if made is not None:
        # Dual-write: the requester's Sales contact learns its role on the B2B site.
        administrator = {"partner_role": PartnerRole.ADMIN.value, "active": True}
        dual_write.record_change(
            session, Side.COMMERCE, Entity.PERSON, person, administrator, "approval", at
        )
        return made
    return _administrator_again(session, onboarding_id, at)


def _administrator_again(session: Session, onboarding_id: str, at: datetime) -> PartnerUser | None:
    """`ensure_administrator` when the email (or the person) has an account already."""
    person = one(session, Customer, onboarding_id=onboarding_id, customer_type=PERSON)
    hierarchy = one(session, CustomerHierarchy, onboarding_id=onboarding_id)
    if person is None or hierarchy is None or person.email is None:
        return None
    assert person.id is not None and hierarchy.id is not None
    person.invoice_customer_id = hierarchy.root_customer_id
    email = person.email.lower()
    existing = session.exec(select(PartnerUser).where(PartnerUser.email == email)).first()
    if existing is not None and existing.hierarchy_id == hierarchy.id:
        return existing
    fields = {
        "email": email,
        "customer_id": person.id,
        "organization_customer_id": hierarchy.root_customer_id,
        "hierarchy_id": hierarchy.id,
        "first_name": person.first_name or "",
        "last_name": person.last_name or "",
        "job_title": None,
        "locale": person.locale,
        "state": PartnerUserState.INVITED.value,
        "password_hash": None,
        "created_at": at,
        "invited_by": "approval",
        "activated_at": None,
        "removed_at": None,
        "removed_by": None,
    }
    if existing is None:
        user = PartnerUser.model_validate(fields)
        session.add(user)
    else:
        user = existing
        _leave_organization(session, user, at)
        user.sqlmodel_update(fields)
    session.flush()
    _tell_sales(session, person, ("partner_role", "active"), "approval", at)
    return user


def _tell_sales(
    session: Session,
    person: Customer,
    names: tuple[str, ...] | None,
    actor: str,
    at: datetime,
    organization: Customer | None = None,
) -> None:
    """Dual-write: record the person's change for Sales (`names`, or all for a new user,
    whose contact is made on their organisation's account)."""
    now = dual_write.values(session, Side.COMMERCE, Entity.PERSON, person)
    dual_write.record_change(
        session,
        Side.COMMERCE,
        Entity.PERSON,
        person,
        now if names is None else {name: now[name] for name in names},
        actor,
        at,
        parent_counterpart_id=organization.sales_account_id if organization else None,
    )


USER = PartnerUser.__table__  # type: ignore[attr-defined]
_CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
_HIERARCHY = CustomerHierarchy.__table__  # type: ignore[attr-defined]
# The requester's person customer, with their organisation's hierarchy.
_APPROVED_PERSON = hot(
    select_columns(
        _CUSTOMER.c.id,
        _CUSTOMER.c.email,
        _CUSTOMER.c.first_name,
        _CUSTOMER.c.last_name,
        _CUSTOMER.c.locale,
        # What dual-write's change of the person names (`record_change`).
        _CUSTOMER.c.sales_contact_id,
        _CUSTOMER.c.synced_change_id,
        _HIERARCHY.c.id.label("hierarchy_id"),
        _HIERARCHY.c.root_customer_id,
    )
    .join(_HIERARCHY, _HIERARCHY.c.onboarding_id == _CUSTOMER.c.onboarding_id)
    .where(
        _CUSTOMER.c.onboarding_id == bindparam("onboarding_id"), _CUSTOMER.c.customer_type == PERSON
    )
)


def _leave_organization(session: Session, user: PartnerUser, at: datetime) -> None:
    """Unlink a user from their organisation's hierarchy (their customer record stays) and
    end their links and sessions there."""
    member = one(
        session,
        CustomerHierarchyMember,
        hierarchy_id=user.hierarchy_id,
        customer_id=user.customer_id,
    )
    if member is not None:
        session.delete(member)
    end_sessions(session, PARTNER, str(user.id))
    _end_links(session, user.id, LinkState.SUPERSEDED, at)


class PartnerActivities:
    """Writes to Commerce for the partner's users."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def add_partner_user(self, input: AddPartnerUserInput) -> int:
        """A person customer in the organisation's hierarchy with role User, invited.

        Adding someone already invited by the same organisation finds them (the workflow
        then sends a fresh invitation); a user of another partner, or an active one, is
        refused. A removed user may be added again: their customer record is reused.
        """
        new = input.user

        def work(session: Session) -> int:
            organization = session.get(Customer, input.organization_customer_id)
            if organization is None or organization.customer_type != ORGANIZATION:
                raise missing_record("The organisation", str(input.organization_customer_id))
            hierarchy = one(session, CustomerHierarchy, root_customer_id=organization.id)
            if hierarchy is None:
                raise missing_record("The customer hierarchy", str(organization.id))
            assert hierarchy.id is not None and organization.id is not None
            user = session.exec(select(PartnerUser).where(PartnerUser.email == new.email)).first()
            if user is not None and user.state != PartnerUserState.REMOVED:
                if (
                    user.state == PartnerUserState.INVITED
                    and user.organization_customer_id == organization.id
                ):
                    assert user.id is not None
                    return user.id
                raise already_a_user(new.email)
            if user is not None and user.organization_customer_id == organization.id:
                customer = session.get(Customer, user.customer_id)
            else:
                customer = None
            if customer is None:
                customer = Customer(
                    customer_type=PERSON,
                    name=f"{new.first_name} {new.last_name}",
                    first_name=new.first_name,
                    last_name=new.last_name,
                    email=new.email,
                    locale=new.locale,
                    created_at=input.at,
                )
                session.add(customer)
            customer.invoice_customer_id = organization.id
            session.flush()
            assert customer.id is not None
            customer_id, hierarchy_id = customer.id, hierarchy.id
            get_or_create(
                session,
                CustomerHierarchyMember,
                lambda: CustomerHierarchyMember(
                    hierarchy_id=hierarchy_id,
                    customer_id=customer_id,
                    parent_customer_id=organization.id,
                    role=PartnerRole.USER.value,
                ),
                hierarchy_id=hierarchy_id,
                customer_id=customer_id,
            )
            fields = {
                **new.model_dump(),
                "customer_id": customer_id,
                "organization_customer_id": organization.id,
                "hierarchy_id": hierarchy_id,
                "state": PartnerUserState.INVITED.value,
                "password_hash": None,
                "invited_by": input.actor,
                "created_at": input.at,
                "activated_at": None,
                "removed_at": None,
                "removed_by": None,
            }
            if user is None:
                user = PartnerUser.model_validate(fields)
                session.add(user)
            else:
                user.sqlmodel_update(fields)
            session.flush()
            _tell_sales(session, customer, None, input.actor, input.at, organization)
            assert user.id is not None
            return user.id

        return write(self.engine, work)

    @activity.defn
    def remove_partner_user(self, input: RemovePartnerUserInput) -> None:
        """Unlink the user from the hierarchy, keep their customer record, end their access.

        Their sessions end and their links stop working in the same transaction, so the
        next click of a removed user is refused.
        """

        def work(session: Session) -> None:
            user = session.get(PartnerUser, input.partner_user_id)
            if user is None:
                raise missing_record("The partner user", str(input.partner_user_id))
            if (
                input.organization_customer_id is not None
                and user.organization_customer_id != input.organization_customer_id
            ):
                # Moved to their own approved company since the remover's page checked.
                raise no_such_user()
            if user.state == PartnerUserState.REMOVED:
                return
            session.exec(
                select(CustomerHierarchy)
                .where(CustomerHierarchy.id == user.hierarchy_id)
                .with_for_update()
            ).one()
            member = one(
                session,
                CustomerHierarchyMember,
                hierarchy_id=user.hierarchy_id,
                customer_id=user.customer_id,
            )
            if (
                member is not None
                and member.role == PartnerRole.ADMIN
                and user.state == PartnerUserState.ACTIVE
                and administrators(session, user.hierarchy_id) <= 1
            ):
                raise last_administrator()
            _leave_organization(session, user, input.at)
            user.state = PartnerUserState.REMOVED.value
            user.removed_at, user.removed_by = input.at, input.actor
            user.password_hash = None
            session.flush()
            person = session.get(Customer, user.customer_id)
            assert person is not None
            _tell_sales(session, person, ("partner_role", "active"), input.actor, input.at)

        write(self.engine, work)

    @activity.defn
    def partner_user_facts(self, input: PendingLinkInput) -> PartnerUserFacts:
        """Who the user is and which emailed link of theirs still waits to be used."""
        with Session(self.engine) as session:
            user = session.exec(
                select(PartnerUser).where(PartnerUser.email == input.email.lower())
            ).first()
            if user is None:
                return PartnerUserFacts()
            organization = session.get(Customer, user.organization_customer_id)
            link = session.exec(
                select(AccessLink)
                .where(AccessLink.partner_user_id == user.id, AccessLink.state == LinkState.VALID)
                .order_by(AccessLink.expires_at.desc())  # type: ignore[attr-defined]
            ).first()
        return PartnerUserFacts(
            partner_user_id=user.id,
            organization_name=organization.name if organization else None,
            pending=PendingLink(
                notification_id=link.notification_id, expires_at=utc(link.expires_at)
            )
            if link
            else None,
        )

    @activity.defn
    def expire_links(self, input: ExpireLinksInput) -> None:
        """The workflow's timer ran out: these links, if still unused, no longer work."""

        def work(session: Session) -> None:
            links = session.exec(
                select(AccessLink).where(
                    AccessLink.partner_user_id == input.partner_user_id,
                    AccessLink.notification_id.in_(input.notification_ids),  # type: ignore[attr-defined]
                    AccessLink.state == LinkState.VALID,
                )
            ).all()
            for link in links:
                link.state, link.ended_at = LinkState.EXPIRED.value, datetime.now(UTC)

        write(self.engine, work)


def _end_links(
    session: Session, partner_user_id: int | None, state: LinkState, at: datetime
) -> None:
    links = session.exec(
        select(AccessLink).where(
            AccessLink.partner_user_id == partner_user_id, AccessLink.state == LinkState.VALID
        )
    ).all()
    for link in links:
        link.state, link.ended_at = state.value, at
