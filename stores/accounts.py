"""Who is signed in to the web app, and the partner users' credentials.

The web app's own writes: sessions (staff and partners), passwords set through an
emailed link, roles. Everything that also sends an email or changes the customer
hierarchy runs in the partner user's workflow instead (`workflows.partner_user`).

Tokens (session cookies, bearer tokens, the links' tokens) are random and only their
SHA-256 is stored: a copy of the database opens no session and follows no link.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel
from sqlalchemy import Engine, bindparam, func, update
from sqlmodel import Session, select

from models.commerce import (
    AccessLink,
    Customer,
    CustomerHierarchy,
    CustomerHierarchyMember,
    PartnerUser,
    WebSession,
)
from models.dual_write import Entity, Side
from models.partners import (
    LAST_ADMINISTRATOR,
    LinkPurpose,
    LinkState,
    PartnerRole,
    PartnerUserState,
)
from stores import dual_write
from stores.engine import Sql, by_key, hot, insert_ignoring, transact

STAFF = "staff"
PARTNER = "partner"
# Argon2id with the library's defaults (RFC 9106's second recommended option).
_hasher = PasswordHasher()
# Verified when no account matches, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every moment here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- sessions --------------------------------------------------------------------------


def start_session(engine: Engine, kind: str, subject: str, lifetime: timedelta) -> str:
    """A new session for `subject`; returns its token, which only the client keeps."""
    token = new_token()
    now = _now()

    def work(session: Session) -> None:
        session.add(
            WebSession(
                token_hash=token_hash(token),
                kind=kind,
                subject=subject,
                created_at=now,
                expires_at=now + lifetime,
            )
        )

    transact(engine, work)
    return token


def session_subject(engine: Engine, kind: str, token: str) -> str | None:
    """Whose session `token` is, while it has neither ended nor expired."""
    with Session(engine) as session:
        row = session.exec(
            select(WebSession).where(WebSession.token_hash == token_hash(token))
        ).first()
    if row is None or row.kind != kind or row.ended_at is not None:
        return None
    if utc(row.expires_at) <= _now():
        return None
    return row.subject


def end_session(engine: Engine, token: str) -> None:
    def work(session: Session) -> None:
        row = session.exec(
            select(WebSession).where(WebSession.token_hash == token_hash(token))
        ).first()
        if row is not None and row.ended_at is None:
            row.ended_at = _now()

    transact(engine, work)


def end_sessions(session: Session, kind: str, subject: str, keep: str | None = None) -> None:
    rows = session.exec(
        select(WebSession).where(
            WebSession.kind == kind,
            WebSession.subject == subject,
            WebSession.ended_at.is_(None),  # type: ignore[union-attr]
        )
    ).all()
    now = _now()
    for row in rows:
        if keep is None or row.token_hash != token_hash(keep):
            row.ended_at = now


# --- partner users ---------------------------------------------------------------------


class PartnerAccount(BaseModel):
    """A partner user as the B2B site shows them: who, for which organisation, in what role."""

    id: int
    email: str
    first_name: str
    last_name: str
    job_title: str | None
    locale: str
    state: PartnerUserState
    role: PartnerRole | None
    customer_id: int
    organization_customer_id: int
    organization_name: str
    hierarchy_id: int
    created_at: datetime
    activated_at: datetime | None
    removed_at: datetime | None
    invited_by: str | None
    pending_link_expires_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def is_admin(self) -> bool:
        return self.state is PartnerUserState.ACTIVE and self.role is PartnerRole.ADMIN


def _account(session: Session, user: PartnerUser) -> PartnerAccount:
    organization = session.get(Customer, user.organization_customer_id)
    member = session.exec(
        select(CustomerHierarchyMember).where(
            CustomerHierarchyMember.hierarchy_id == user.hierarchy_id,
            CustomerHierarchyMember.customer_id == user.customer_id,
        )
    ).first()
    link = session.exec(
        select(AccessLink)
        .where(AccessLink.partner_user_id == user.id, AccessLink.state == LinkState.VALID)
        .order_by(AccessLink.expires_at.desc())  # type: ignore[attr-defined]
    ).first()
    assert user.id is not None and organization is not None
    return PartnerAccount(
        **user.model_dump(exclude={"password_hash", "role"}),
        role=PartnerRole(member.role) if member is not None else None,
        organization_name=organization.name,
        pending_link_expires_at=utc(link.expires_at) if link else None,
    )


def partner_account(engine: Engine, partner_user_id: int) -> PartnerAccount | None:
    with Session(engine) as session:
        user = session.get(PartnerUser, partner_user_id)
        return _account(session, user) if user is not None else None


def partner_account_by_email(engine: Engine, email: str) -> PartnerAccount | None:
    with Session(engine) as session:
        user = session.exec(select(PartnerUser).where(PartnerUser.email == email.lower())).first()
        return _account(session, user) if user is not None else None


def organization_users(engine: Engine, organization_customer_id: int) -> list[PartnerAccount]:
    """Everyone who is or was a user of the organisation: administrators first, by name."""
    with Session(engine) as session:
        users = session.exec(
            select(PartnerUser).where(
                PartnerUser.organization_customer_id == organization_customer_id
            )
        ).all()
        accounts = [_account(session, user) for user in users]
    order = {PartnerUserState.ACTIVE: 0, PartnerUserState.INVITED: 1, PartnerUserState.REMOVED: 2}
    return sorted(
        accounts,
        key=lambda a: (
            order[a.state],
            a.role is not PartnerRole.ADMIN,
            a.last_name.lower(),
            a.first_name.lower(),
        ),
    )


def partner_session_account(engine: Engine, token: str) -> PartnerAccount | None:
    """The partner user a session belongs to, only while they are active and in the hierarchy."""
    subject = session_subject(engine, PARTNER, token)
    if subject is None:
        return None
    account = partner_account(engine, int(subject))
    if account is None or account.state is not PartnerUserState.ACTIVE or account.role is None:
        return None
    return account


def verify_password(engine: Engine, email: str, password: str) -> PartnerAccount | None:
    """The active user with this email and password, or None; as slow either way.

    The hash is checked with no database connection held: Argon2 takes a while, and
    SQLite's pool has one connection for the whole web process.
    """
    with Session(engine) as session:
        user = session.exec(select(PartnerUser).where(PartnerUser.email == email.lower())).first()
        found = (user.id, user.password_hash) if user is not None else (None, None)
    partner_user_id, stored = found
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if partner_user_id is None or stored is None:
        return None
    # Read again: the user may have been removed while the hash was checked.
    account = partner_account(engine, partner_user_id)
    if account is None or account.state is not PartnerUserState.ACTIVE or account.role is None:
        return None
    return account


# --- emailed links ---------------------------------------------------------------------


def issue_link(
    session: Session,
    partner_user_id: int,
    purpose: LinkPurpose,
    notification_id: str,
    lifetime: timedelta,
    fresh: bool,
) -> tuple[IssuedLink, str | None]:
    """The link of one notification, and its token when one is (re)made now.

    Each attempt at an unsent email makes a fresh token (only its hash is kept, so an
    earlier attempt's token cannot be recovered to send); once the email is out the
    link stays as it was. Every other unused link of the user stops working.
    """
    connection = Sql(session.connection())
    token, now = new_token(), _now()
    expires_at = now + lifetime
    link = {
        "partner_user_id": partner_user_id,
        "purpose": purpose.value,
        "notification_id": notification_id,
        "token_hash": token_hash(token),
        "created_at": now,
        "expires_at": expires_at,
    }
    made = connection.execute(insert_ignoring(connection, _LINK, "id"), link).scalar()
    if made is None:
        if not fresh:
            kept = connection.execute(by_key(_LINK, ("notification_id",), "expires_at"), link).one()
            return IssuedLink(kept.expires_at), None
        connection.execute(
            _LINK_AGAIN,
            {**link, "again": notification_id, "state": LinkState.VALID.value, "ended_at": None},
        )
    connection.execute(
        _SUPERSEDE,
        {
            "holder": partner_user_id,
            "valid": LinkState.VALID.value,
            "this": notification_id,
            "state": LinkState.SUPERSEDED.value,
            "ended_at": now,
        },
    )
    return IssuedLink(expires_at), token


@dataclass(frozen=True)
class IssuedLink:
    """What an emailed link's notification tells its workflow: when the link expires."""

    expires_at: datetime


_LINK = AccessLink.__table__  # type: ignore[attr-defined]
# Executed with the columns they set as parameters (the WHERE's are named otherwise).
_LINK_AGAIN = hot(update(_LINK).where(_LINK.c.notification_id == bindparam("again")))
_SUPERSEDE = hot(
    update(_LINK).where(
        _LINK.c.partner_user_id == bindparam("holder"),
        _LINK.c.state == bindparam("valid"),
        _LINK.c.notification_id != bindparam("this"),
    )
)


class LinkRefused(Exception):
    """A link that opens nothing: unknown, already used, replaced by a newer one, expired."""

    def __init__(self, why: str, account: PartnerAccount | None = None) -> None:
        super().__init__(why)
        self.why = why
        # Known for a used or expired link: the page can offer that user a fresh one.
        self.account = account


class OpenLink(BaseModel):
    purpose: LinkPurpose
    account: PartnerAccount
    expires_at: datetime


def _valid_link(session: Session, token: str) -> tuple[AccessLink, PartnerUser]:
    link = session.exec(
        select(AccessLink).where(AccessLink.token_hash == token_hash(token))
    ).first()
    if link is None:
        raise LinkRefused("unknown")
    user = session.get(PartnerUser, link.partner_user_id)
    assert user is not None
    account = _account(session, user)
    if user.state == PartnerUserState.REMOVED:
        raise LinkRefused("removed")
    if link.state != LinkState.VALID:
        raise LinkRefused(link.state, account)
    if utc(link.expires_at) <= _now():
        raise LinkRefused(LinkState.EXPIRED, account)
    return link, user


def open_link(engine: Engine, token: str) -> OpenLink:
    """What a link is for, if it still works; raises `LinkRefused` otherwise."""
    with Session(engine) as session:
        link, user = _valid_link(session, token)
        return OpenLink(
            purpose=LinkPurpose(link.purpose),
            account=_account(session, user),
            expires_at=utc(link.expires_at),
        )


def use_link(engine: Engine, token: str, password: str) -> PartnerAccount:
    """Set the password through a link: the link is spent, an invited user becomes active,
    and every other session of theirs ends (a reset is often a lost or shared password)."""
    password_hash = _hasher.hash(password)

    def work(session: Session) -> PartnerAccount:
        link, user = _valid_link(session, token)
        now = _now()
        link.state, link.ended_at = LinkState.USED, now
        user.password_hash = password_hash
        if user.state == PartnerUserState.INVITED:
            user.state, user.activated_at = PartnerUserState.ACTIVE, now
        end_sessions(session, PARTNER, str(user.id))
        session.flush()
        return _account(session, user)

    return transact(engine, work)


# --- roles -----------------------------------------------------------------------------


class RoleRefused(Exception):
    """A role change the rules refuse; `type` names the rule (as the workflow's refusals)."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type


def set_role(
    engine: Engine,
    organization_customer_id: int,
    partner_user_id: int,
    role: PartnerRole,
    actor: str,
) -> PartnerAccount:
    """Make a user an administrator, or step one down while another administrator remains.

    The hierarchy row is locked first, so two administrators stepping down at once
    cannot both succeed and leave the partner with none.
    """

    def work(session: Session) -> PartnerAccount:
        user = session.get(PartnerUser, partner_user_id)
        if user is None or user.organization_customer_id != organization_customer_id:
            raise RoleRefused("NoSuchPartnerUser", "no such user in the organisation")
        session.exec(
            select(CustomerHierarchy)
            .where(CustomerHierarchy.id == user.hierarchy_id)
            .with_for_update()
        ).one()
        member = session.exec(
            select(CustomerHierarchyMember).where(
                CustomerHierarchyMember.hierarchy_id == user.hierarchy_id,
                CustomerHierarchyMember.customer_id == user.customer_id,
            )
        ).first()
        if member is None or user.state == PartnerUserState.REMOVED:
            raise RoleRefused("PartnerUserRemoved", "the user has been removed")
        if (
            role is PartnerRole.USER
            and member.role == PartnerRole.ADMIN
            and administrators(session, user.hierarchy_id) <= 1
        ):
            raise RoleRefused("LastAdministrator", LAST_ADMINISTRATOR)
        member.role = role.value
        session.flush()
        person = session.get(Customer, user.customer_id)
        assert person is not None
        dual_write.record_change(
            session,
            Side.COMMERCE,
            Entity.PERSON,
            person,
            {"partner_role": role.value},
            actor,
            _now(),
        )
        return _account(session, user)

    return transact(engine, work)


def administrators(session: Session, hierarchy_id: int) -> int:
    """Active administrators of a hierarchy."""
    return session.exec(
        select(func.count())
        .select_from(CustomerHierarchyMember)
        .join(PartnerUser, PartnerUser.customer_id == CustomerHierarchyMember.customer_id)  # type: ignore[arg-type]
        .where(
            CustomerHierarchyMember.hierarchy_id == hierarchy_id,
            CustomerHierarchyMember.role == PartnerRole.ADMIN,
            PartnerUser.state == PartnerUserState.ACTIVE,
        )
    ).one()
