"""Dual-write: the field map and its rule, each change applied once and in order, conflicts,
the error list, on SQLite and PostgreSQL; then end to end on the dev server through the API
(edit in Sales, seen in Commerce and back; a partner's new user becomes a Sales contact;
pause, backlog and resume; a refused change retried and skipped)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import starter
from bench.sync import a_linked_partner
from client import dual_write as dual_write_client
from client.partner_users import invite_partner_user, remove_partner_user
from client.personal_data import erase_personal_data
from client.requests import status
from models import commerce
from models.commerce import Customer
from models.dual_write import (
    EDITS,
    FIELD_MAP,
    TABLES,
    ChangeState,
    ConflictDecision,
    Direction,
    Entity,
    Side,
    decide_conflict,
    editable,
    field_map_rows,
    read_only,
)
from models.partners import CreditLimitValues, InviteInput, NewPartnerUser, RemoveInput
from models.sales import Account, Contact
from settings import Settings
from stores import Stores, dual_write
from stores.credit_limits import set_credit_limit
from tests.conftest import ADMIN, REP, bearer, eventually
from tests.scenario import keep_history
from tests.test_credit_limit_api import an_approved_partner
from tests.test_credit_limit_pages import text_of
from tests.test_pages import sign_in
from tests.test_partner_accounts import approved_partner

T = TypeVar("T")
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


# --- the field map and its rule ----------------------------------------------------------


def test_every_field_has_one_master_and_is_edited_only_where_it_flows_from() -> None:
    for entity, fields in FIELD_MAP.items():
        names = [f.name for f in fields]
        assert len(names) == len(set(names)), entity
        for side in Side:
            edited = {f.name for f in editable(entity, side)}
            assert edited.isdisjoint(read_only(entity, side))
            assert set(EDITS[entity, side].model_fields) == edited
    # Commerce's alone: the credit limit, the user's role and whether still a user.
    assert set(read_only(Entity.ORGANIZATION, Side.SALES)) == {
        "credit_limit_amount",
        "credit_limit_currency",
    }
    assert set(read_only(Entity.PERSON, Side.SALES)) == {"partner_role", "active"}
    assert read_only(Entity.PERSON, Side.COMMERCE) == ()


def test_the_fields_master_wins_a_conflict_whichever_side_it_arrives_at() -> None:
    # The account's name is Sales'; its phone is Commerce's.
    assert (
        decide_conflict(Entity.ORGANIZATION, "name", Side.SALES) is ConflictDecision.INCOMING_WINS
    )
    assert (
        decide_conflict(Entity.ORGANIZATION, "name", Side.COMMERCE) is ConflictDecision.LOCAL_WINS
    )
    assert decide_conflict(Entity.ORGANIZATION, "phone", Side.SALES) is ConflictDecision.LOCAL_WINS
    assert decide_conflict(Entity.PERSON, "email", Side.COMMERCE) is ConflictDecision.INCOMING_WINS


def test_an_edit_is_validated_as_a_request_is_and_a_name_cannot_be_cleared() -> None:
    with pytest.raises(ValidationError, match="phone"):
        EDITS[Entity.ORGANIZATION, Side.SALES].model_validate({"phone": "call me"})
    with pytest.raises(ValidationError, match="name"):
        EDITS[Entity.ORGANIZATION, Side.SALES].model_validate({"name": None})
    with pytest.raises(ValidationError, match="credit_limit_amount"):
        EDITS[Entity.ORGANIZATION, Side.SALES].model_validate({"credit_limit_amount": "1"})
    edit = EDITS[Entity.PERSON, Side.COMMERCE].model_validate({"email": "Ada@Contoso.Example"})
    assert edit.changes() == {"email": "ada@contoso.example"}  # type: ignore[attr-defined]


# --- the store side, on SQLite and PostgreSQL -------------------------------------------


def sync(stores: Stores, direction: Direction, limit: int = 200) -> dual_write.SyncBatchResult:
    """One batch, as the workflow's activity runs it."""
    engines = dual_write.engines_of(stores.sales, stores.commerce)
    changes = dual_write.pending_changes(engines[direction.source], direction.source, limit)
    return dual_write.sync_batch(engines, direction, changes)


def settle(stores: Stores) -> None:
    """Both directions until nothing is left to send."""
    while sum(sync(stores, d).applied + sync(stores, d).failed for d in Direction):
        pass


def mine(stores: Stores, side: Side, entity: Entity, record_id: int) -> list[Any]:
    engine = stores.sales if side is Side.SALES else stores.commerce
    Outbox = dual_write.CHANGES[side]
    with Session(engine) as session:
        return list(
            session.exec(
                select(Outbox)
                .where(Outbox.entity == entity.value, Outbox.record_id == record_id)
                .order_by(Outbox.id)
            ).all()
        )


def equal_on_both_sides(stores: Stores, ids: dict[str, int]) -> None:
    """Every field that crosses both ways is equal on the two rows of each map."""
    for entity, sales_id, commerce_id in (
        (Entity.ORGANIZATION, ids["account"], ids["organization"]),
        (Entity.PERSON, ids["contact"], ids["person"]),
    ):
        here = dual_write.record_values(stores.sales, Side.SALES, entity, sales_id)
        there = dual_write.record_values(stores.commerce, Side.COMMERCE, entity, commerce_id)
        for field in FIELD_MAP[entity]:
            if field.both_ways:
                assert here[field.name] == there[field.name], (entity, field.name)


def test_an_edit_crosses_once_in_order_and_never_comes_back(any_stores: Stores) -> None:
    stores = any_stores
    ids = a_linked_partner(stores)
    for phone in ("+39 02 2", "+39 02 3"):
        dual_write.edit(
            stores.sales,
            Side.SALES,
            Entity.ORGANIZATION,
            ids["account"],
            {"phone": phone},
            "mario",
            NOW,
        )
    # An edit that changes nothing records nothing.
    dual_write.edit(
        stores.sales,
        Side.SALES,
        Entity.ORGANIZATION,
        ids["account"],
        {"phone": "+39 02 3"},
        "mario",
        NOW,
    )
    first, second = mine(stores, Side.SALES, Entity.ORGANIZATION, ids["account"])
    assert first.id < second.id and first.fields == {"phone": "+39 02 2"}

    assert sync(stores, Direction.SALES_TO_COMMERCE).applied >= 2
    with Session(stores.commerce) as session:
        organization = session.get(Customer, ids["organization"])
        assert organization is not None
        assert (organization.phone, organization.synced_change_id) == ("+39 02 3", second.id)
    # Applied by the sync, it is no change of Commerce's: nothing to send back.
    assert mine(stores, Side.COMMERCE, Entity.ORGANIZATION, ids["organization"]) == []

    # The same change again (a retried batch) changes nothing, however old it is.
    again = dual_write.Change.model_validate(first)
    with Session(stores.commerce) as session:
        assert dual_write.apply_change(session, Side.COMMERCE, again) == 0
        session.commit()
        organization = session.get(Customer, ids["organization"])
        assert organization is not None and organization.phone == "+39 02 3"
    assert all(
        c.state == ChangeState.APPLIED
        for c in mine(stores, Side.SALES, Entity.ORGANIZATION, ids["account"])
    )
    equal_on_both_sides(stores, ids)


def test_concurrent_edits_of_one_field_are_decided_by_its_master(any_stores: Stores) -> None:
    stores = any_stores
    ids = a_linked_partner(stores)
    # Both sides change the name (Sales') and the phone (Commerce's) before either crosses.
    dual_write.edit(
        stores.sales,
        Side.SALES,
        Entity.ORGANIZATION,
        ids["account"],
        {"name": "Contoso Sales", "phone": "+39 02 1111"},
        "mario",
        NOW,
    )
    dual_write.edit(
        stores.commerce,
        Side.COMMERCE,
        Entity.ORGANIZATION,
        ids["organization"],
        {"name": "Contoso Commerce", "phone": "+39 02 2222"},
        "anna",
        NOW,
    )
    settle(stores)
    equal_on_both_sides(stores, ids)
    now = dual_write.record_values(stores.sales, Side.SALES, Entity.ORGANIZATION, ids["account"])
    assert (now["name"], now["phone"]) == ("Contoso Sales", "+39 02 2222")
    decided = {
        c.field: c
        for c in dual_write.conflicts(dual_write.engines_of(stores.sales, stores.commerce))
        if c.sales_record_id == ids["account"] or c.commerce_record_id == ids["organization"]
    }
    assert set(decided) == {"name", "phone"}
    assert (decided["name"].winner, decided["name"].lost_value) == (Side.SALES, "Contoso Commerce")
    assert (decided["phone"].winner, decided["phone"].lost_value) == (Side.COMMERCE, "+39 02 1111")

    # A later edit, made knowing the other side's, is no conflict.
    dual_write.edit(
        stores.commerce,
        Side.COMMERCE,
        Entity.ORGANIZATION,
        ids["organization"],
        {"name": "Contoso 2"},
        "anna",
        NOW,
    )
    settle(stores)
    now = dual_write.record_values(stores.sales, Side.SALES, Entity.ORGANIZATION, ids["account"])
    assert now["name"] == "Contoso 2"


def test_a_refused_change_waits_on_the_error_list_with_its_records_later_changes(
    any_stores: Stores,
) -> None:
    stores = any_stores
    ids = a_linked_partner(stores)
    other = a_linked_partner(stores)
    # Another program wrote Commerce a phone no Sales form would take.
    with Session(stores.commerce) as session:
        session.add(
            commerce.SyncChange(
                entity="person",
                record_id=ids["person"],
                counterpart_id=ids["contact"],
                fields={"phone": "call me maybe"},
                actor="import",
                created_at=NOW,
            )
        )
        session.commit()
    dual_write.edit(
        stores.commerce,
        Side.COMMERCE,
        Entity.PERSON,
        ids["person"],
        {"job_title": "CEO"},
        "anna",
        NOW,
    )
    dual_write.edit(
        stores.commerce,
        Side.COMMERCE,
        Entity.PERSON,
        other["person"],
        {"job_title": "CFO"},
        "anna",
        NOW,
    )
    engines = dual_write.engines_of(stores.sales, stores.commerce)
    settle(stores)

    refused = [e for e in dual_write.errors(engines) if e.record_id == ids["person"]]
    assert len(refused) == 1 and "phone" in refused[0].error and "call me" not in refused[0].error
    # Its later change waits behind it; another record's does not.
    assert (
        dual_write.record_values(stores.sales, Side.SALES, Entity.PERSON, ids["contact"])[
            "job_title"
        ]
        is None
    )
    assert (
        dual_write.record_values(stores.sales, Side.SALES, Entity.PERSON, other["contact"])[
            "job_title"
        ]
        == "CFO"
    )
    waiting = {b.direction: b for b in dual_write.backlog(engines)}[Direction.COMMERCE_TO_SALES]
    assert waiting.failed >= 1 and waiting.waiting >= 2 and waiting.oldest is not None

    # Retried, it is refused again; skipped (who and why kept), the next one crosses.
    dual_write.retry(stores.commerce, Side.COMMERCE, refused[0].change_id)
    settle(stores)
    assert [e.change_id for e in dual_write.errors(engines) if e.record_id == ids["person"]] == [
        refused[0].change_id
    ]
    dual_write.skip(
        stores.commerce, Side.COMMERCE, refused[0].change_id, "anna", "typed by mistake"
    )
    settle(stores)
    assert (
        dual_write.record_values(stores.sales, Side.SALES, Entity.PERSON, ids["contact"])[
            "job_title"
        ]
        == "CEO"
    )
    skipped = mine(stores, Side.COMMERCE, Entity.PERSON, ids["person"])[0]
    assert (skipped.state, skipped.skipped_by, skipped.skip_reason) == (
        "skipped",
        "anna",
        "typed by mistake",
    )
    with pytest.raises(dual_write.NotOnTheErrorList):
        dual_write.skip(stores.commerce, Side.COMMERCE, refused[0].change_id, "anna", "again")


def test_the_credit_limit_reaches_the_account_read_only(any_stores: Stores) -> None:
    stores = any_stores
    ids = a_linked_partner(stores)
    set_credit_limit(
        stores.commerce,
        ids["organization"],
        CreditLimitValues(amount=Decimal("9999999999999999.99"), currency="EUR"),
        "anna",
        NOW,
    )
    settle(stores)
    account = dual_write.record_values(
        stores.sales, Side.SALES, Entity.ORGANIZATION, ids["account"]
    )
    assert (account["credit_limit_amount"], account["credit_limit_currency"]) == (
        "9999999999999999.99",
        "EUR",
    )


# --- end to end: the sync workflows on the dev server, through the API -------------------


@pytest.fixture
async def dual_write_running(
    client: Client, settings: Settings, worker: None
) -> AsyncIterator[None]:
    """The two sync workflows for this test alone, on its worker's task queue: ended after
    it, so no other test's worker drains these stores.

    A run left by another test is ended first: a `python worker.py` of test_metrics or
    test_health starts both on its own task queue and exits, and `ensure_running` (which
    keeps a running one) would then leave this test's changes to a queue nobody polls.
    """
    for direction in Direction:
        try:
            await client.get_workflow_handle(dual_write_client.workflow_id(direction)).terminate(
                reason="a dual-write test starts its own"
            )
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
    await dual_write_client.ensure_running(client, settings.onboarding_task_queue)
    yield
    for direction in Direction:
        workflow_id = dual_write_client.workflow_id(direction)
        # Batches, a pause and a resume: what a change to the sync workflow must replay.
        await keep_history(client, workflow_id, f"dual_write_{direction.value}")
        await client.get_workflow_handle(workflow_id).terminate()


async def test_an_edit_in_either_store_is_seen_in_the_other_and_a_new_user_becomes_a_contact(
    web: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    stores: Stores,
    dual_write_running: None,
) -> None:
    records = await an_approved_partner(client, settings)
    account, organization = records.account_id, records.organization_customer_id
    contact, person = records.contact_id, records.person_customer_id
    assert account and organization and contact and person
    # Written at approval from the same request: in step before any edit.
    ids = {"account": account, "contact": contact, "organization": organization, "person": person}
    equal_on_both_sides(stores, ids)

    edited = await web.patch(
        f"/api/sales/accounts/{account}", json={"phone": "+39 02 5555"}, headers=bearer(REP)
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["read_only"] == ["credit_limit_amount", "credit_limit_currency"]

    async def commerce_phone() -> Any:
        seen = await web.get(f"/api/customers/{organization}", headers=bearer(ADMIN))
        return seen.json()["fields"]["phone"] == "+39 02 5555"

    await eventually(commerce_phone, what="the account's phone in Commerce")

    back = await web.patch(
        f"/api/customers/{person}", json={"job_title": "Buyer"}, headers=bearer(ADMIN)
    )
    assert back.status_code == 200, back.text

    async def sales_job_title() -> Any:
        seen = await web.get(f"/api/sales/contacts/{contact}", headers=bearer(REP))
        return seen.json()["fields"]["job_title"] == "Buyer"

    await eventually(sales_job_title, what="the person's job title in Sales")

    # Bad input: 422 with the reason; a rep may not edit Commerce, nor an admin Sales.
    bad = await web.patch(
        f"/api/customers/{person}", json={"phone": "call me"}, headers=bearer(ADMIN)
    )
    assert bad.status_code == 422 and "phone" in bad.text
    wrong = await web.patch(
        f"/api/customers/{organization}", json={"first_name": "X"}, headers=bearer(ADMIN)
    )
    assert wrong.status_code == 422
    assert (
        await web.patch(f"/api/customers/{person}", json={}, headers=bearer(REP))
    ).status_code == 403
    assert (
        await web.patch(f"/api/sales/accounts/{account}", json={}, headers=bearer(ADMIN))
    ).status_code == 403
    assert (
        await web.patch("/api/sales/accounts/999999", json={}, headers=bearer(REP))
    ).status_code == 404

    # The partner adds a user: a contact on the account, with its role.
    email = f"luca.{uuid.uuid4().hex[:8]}@contoso.example"
    await invite_partner_user(
        client,
        settings,
        InviteInput(
            organization_customer_id=organization,
            user=NewPartnerUser(first_name="Luca", last_name="Bianchi", email=email),
            actor="partner:1",
        ),
    )

    def new_contact() -> Contact | None:
        with Session(stores.sales) as session:
            return session.exec(select(Contact).where(Contact.email == email)).first()

    made = await eventually(new_contact, what="the new user's contact")
    assert (made.account_id, made.partner_role, made.active) == (account, "b2b_user", True)
    assert (made.first_name, made.last_name) == ("Luca", "Bianchi")
    await sign_in(web, REP)
    listed = text_of((await web.get(f"/sales/accounts/{account}")).text)
    assert "Luca Bianchi (User)" in listed and "(Administrator)" in listed

    # Paused: changes wait (counted in the backlog and /metrics), then cross in order.
    paused = await web.post("/api/dual-write/pause", headers=bearer(ADMIN))
    assert paused.status_code == 200, paused.text
    assert all(d["paused"] and d["paused_by"] == "anna" for d in paused.json()["directions"])
    assert (await web.post("/api/dual-write/pause", headers=bearer(ADMIN))).status_code == 409
    for phone in ("+39 02 1111", "+39 02 2222", "+39 02 3333"):
        await web.patch(
            f"/api/sales/accounts/{account}", json={"phone": phone}, headers=bearer(REP)
        )
    state = (await web.get("/api/dual-write", headers=bearer(REP))).json()
    waiting = {b["direction"]: b for b in state["backlog"]}["sales_to_commerce"]
    assert waiting["waiting"] == 3 and waiting["oldest"] is not None
    metrics = (await web.get("/metrics")).text
    assert 'b2b_dual_write_waiting{direction="sales_to_commerce"} 3.0' in metrics
    with Session(stores.commerce) as session:
        row = session.get(Customer, organization)
        assert row is not None and row.phone == "+39 02 5555"

    resumed = await web.post("/api/dual-write/resume", headers=bearer(ADMIN))
    assert resumed.status_code == 200, resumed.text

    async def all_crossed() -> Any:
        seen = await web.get(f"/api/customers/{organization}", headers=bearer(ADMIN))
        return seen.json()["fields"]["phone"] == "+39 02 3333"

    await eventually(all_crossed, what="the changes made while paused")
    state = (await web.get("/api/dual-write", headers=bearer(REP))).json()
    assert {b["direction"]: b["waiting"] for b in state["backlog"]}["sales_to_commerce"] == 0


def contact_by_email(stores: Stores, email: str) -> Contact | None:
    with Session(stores.sales) as session:
        return session.exec(select(Contact).where(Contact.email == email)).first()


async def invited(
    client: Client, settings: Settings, organization: int, first_name: str
) -> tuple[str, int]:
    """A user the partner administrator adds: their email and partner user id."""
    email = f"{first_name.lower()}.{uuid.uuid4().hex[:8]}@contoso.example"
    changed = await invite_partner_user(
        client,
        settings,
        InviteInput(
            organization_customer_id=organization,
            user=NewPartnerUser(first_name=first_name, last_name="Verdi", email=email),
            actor="partner:1",
        ),
    )
    return email, changed.partner_user_id


async def test_a_removed_user_s_contact_stays_on_the_account_inactive(
    web: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    stores: Stores,
    dual_write_running: None,
) -> None:
    records = await an_approved_partner(client, settings)
    account, organization = records.account_id, records.organization_customer_id
    assert account and organization
    email, partner_user_id = await invited(client, settings, organization, "Giulia")
    made = await eventually(lambda: contact_by_email(stores, email), what="the user's contact")
    assert (made.account_id, made.active) == (account, True)
    await sign_in(web, REP)
    shown = text_of((await web.get(f"/sales/contacts/{made.id}")).text)
    assert "Role on the B2B site (from Commerce) User" in shown
    assert "Still a user of the B2B site (from Commerce) yes" in shown

    await remove_partner_user(
        client,
        settings,
        email,
        RemoveInput(
            partner_user_id=partner_user_id,
            actor="partner:1",
            organization_customer_id=organization,
        ),
    )

    def inactive() -> Contact | None:
        contact = contact_by_email(stores, email)
        return contact if contact is not None and not contact.active else None

    removed = await eventually(inactive, what="the removed user's contact inactive")
    # The same contact, kept with its history, and no longer in the partner's hierarchy.
    assert (removed.id, removed.account_id, removed.first_name) == (made.id, account, "Giulia")
    assert removed.partner_role is None
    listed = text_of((await web.get(f"/sales/accounts/{account}")).text)
    assert "Giulia Verdi (no longer a user)" in listed
    shown = text_of((await web.get(f"/sales/contacts/{made.id}")).text)
    assert "Role on the B2B site (from Commerce) —" in shown
    assert "Still a user of the B2B site (from Commerce) no" in shown


async def test_the_initial_sync_makes_a_contact_for_a_user_without_one_then_nothing(
    client: Client,
    settings: Settings,
    stores: Stores,
    worker: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = await an_approved_partner(client, settings)
    account, organization = records.account_id, records.organization_customer_id
    assert account and organization
    # A partner whose administrator's data was erased: each store keeps its placeholders.
    erased_request, _ = await approved_partner(client, settings)
    await erase_personal_data(client, stores, erased_request, actor="anna", reason="asked")
    with Session(stores.commerce) as session:
        erased = session.exec(
            select(Customer.id).where(
                Customer.onboarding_id == erased_request, Customer.customer_type == "person"
            )
        ).one()
    assert erased is not None
    # A user added before this release: no change of theirs waits, Sales has no contact.
    email, _ = await invited(client, settings, organization, "Paolo")
    with Session(stores.commerce) as session:
        person = session.exec(select(Customer.id).where(Customer.email == email)).one()
        for change in session.exec(
            select(commerce.SyncChange).where(commerce.SyncChange.record_id == person)
        ).all():
            session.delete(change)
        session.commit()
    # What did wait (the approval's own changes) has crossed, as before a release.
    settle(stores)
    assert contact_by_email(stores, email) is None

    async def initial_sync() -> dict[str, int]:
        command = ["dual-write-initial-sync", "--actor", "cli:ops"]
        assert await starter.run(command, settings=settings) == 0
        return dict(json.loads(capsys.readouterr().out))

    first = await initial_sync()
    assert first["contacts_to_make"] >= 1 and first["changes"] >= first["contacts_to_make"]
    settle(stores)
    # Nothing recorded for the erased person (their contact's email may not be empty).
    assert not [
        change
        for change in mine(stores, Side.COMMERCE, Entity.PERSON, erased)
        if change.actor == "cli:ops"
    ]
    made = contact_by_email(stores, email)
    assert made is not None
    assert (made.account_id, made.commerce_customer_id, made.partner_role, made.active) == (
        account,
        person,
        "b2b_user",
        True,
    )

    # Everything is in step now: a second run records nothing and makes no contact.
    second = await initial_sync()
    assert (second["changes"], second["contacts_to_make"]) == (0, 0)
    assert (second["persons"], second["waiting"]) == (first["persons"], first["waiting"])
    with Session(stores.sales) as session:
        assert len(session.exec(select(Contact).where(Contact.email == email)).all()) == 1


def test_the_initial_sync_brings_earlier_rows_in_step_once_and_resumably(
    any_stores: Stores,
) -> None:
    stores = any_stores
    ids = a_linked_partner(stores)
    # Before this release: Commerce's phone and credit limit never reached Sales; Sales'
    # website never reached Commerce; a partner user has no contact.
    with Session(stores.commerce) as session:
        organization = session.get(Customer, ids["organization"])
        assert organization is not None
        organization.phone = "+39 02 4444 4444"
        session.add(organization)
        session.commit()
    with Session(stores.sales) as session:
        account = session.get(Account, ids["account"])
        assert account is not None
        account.website = "https://contoso.example"
        session.add(account)
        session.commit()
    set_credit_limit(
        stores.commerce,
        ids["organization"],
        CreditLimitValues(amount=Decimal("500"), currency="CHF"),
        "anna",
        NOW,
    )
    with Session(stores.commerce) as session:
        # The credit limit's own change would cross by itself; this store predates it.
        for change in session.exec(
            select(commerce.SyncChange).where(commerce.SyncChange.record_id == ids["organization"])
        ).all():
            session.delete(change)
        session.commit()
    engines = dual_write.engines_of(stores.sales, stores.commerce)

    first = dual_write.initial_sync(engines, "cli:ops", NOW)
    assert first.changes >= 2 and first.organizations >= 1
    settle(stores)
    equal_on_both_sides(stores, ids)
    account_now = dual_write.record_values(
        stores.sales, Side.SALES, Entity.ORGANIZATION, ids["account"]
    )
    assert (account_now["phone"], account_now["credit_limit_amount"]) == (
        "+39 02 4444 4444",
        "500.00",
    )
    customer_now = dual_write.record_values(
        stores.commerce, Side.COMMERCE, Entity.ORGANIZATION, ids["organization"]
    )
    assert customer_now["website"] == "https://contoso.example"

    # In step now: a second run (as after an interruption) records nothing for these rows.
    before = len(mine(stores, Side.COMMERCE, Entity.ORGANIZATION, ids["organization"]))
    dual_write.initial_sync(engines, "cli:ops", NOW)
    assert len(mine(stores, Side.COMMERCE, Entity.ORGANIZATION, ids["organization"])) == before
    assert mine(stores, Side.SALES, Entity.ORGANIZATION, ids["account"])[-1].state == "applied"


def test_the_guide_prints_the_field_map_as_declared() -> None:
    guide = (Path(__file__).parents[1] / "docs" / "dual-write.md").read_text()
    for map_, name, master, rule, words in field_map_rows():
        assert f"| {map_} | `{name}` | {master} | {rule} | {words} |" in guide, name


def test_the_readme_prints_the_field_map_as_declared() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    every = [f for fields in FIELD_MAP.values() for f in fields]
    # Its table has no column for a field only Sales writes: there is none.
    assert not [f for f in every if f.master is Side.SALES and not f.both_ways]
    for entity, fields in FIELD_MAP.items():
        cells = [
            ", ".join(f"`{f.name}`" for f in fields if (f.master, f.both_ways) == kind)
            for kind in ((Side.SALES, True), (Side.COMMERCE, True), (Side.COMMERCE, False))
        ]
        tables = TABLES[entity]
        row = f"| {tables[Side.SALES]} ↔ {tables[Side.COMMERCE]} | {' | '.join(cells)} |"
        assert row in readme, row


async def test_the_initial_sync_command_prints_what_it_did(
    settings: Settings, stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    a_linked_partner(stores)
    assert (
        await starter.run(["dual-write-initial-sync", "--actor", "cli:ops"], settings=settings) == 0
    )
    said = json.loads(capsys.readouterr().out)
    assert set(said) == {"organizations", "persons", "changes", "contacts_to_make", "waiting"}
    assert said["organizations"] >= 1


async def test_an_email_already_another_partner_user_s_is_refused_with_409(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores, worker: None
) -> None:
    first, _ = await approved_partner(client, settings)
    _, taken = await approved_partner(client, settings)
    person = (await status(client, first)).records.person_customer_id
    refused = await web.patch(
        f"/api/customers/{person}", json={"email": taken}, headers=bearer(ADMIN)
    )
    assert refused.status_code == 409, refused.text
    assert "refused by the store" in refused.json()["detail"] and taken not in refused.text
