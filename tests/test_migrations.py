"""Each store's schema comes from its own migration history and equals the models."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client

from models.commerce import CommerceTable
from models.sales import SalesTable
from stores import queues as q
from stores.engine import make_engine
from stores.migrations import (
    SchemaMismatch,
    config,
    current,
    differences,
    head,
    keep_triggers,
    migrate,
)
from tests.conftest import postgres_databases

STORES = {"sales": SalesTable.metadata, "commerce": CommerceTable.metadata}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with nothing in it, on each backend the product supports."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        yield engine
        engine.dispose()
        return
    with postgres_databases("migrations") as (url,):
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.mark.parametrize("store", ["sales", "commerce"])
def test_the_migrated_schema_equals_the_models(empty_database: Engine, store: str) -> None:
    migrate(empty_database, store)
    with empty_database.connect() as connection:
        assert differences(connection, store) == []
        assert current(connection, store) == head(store)
    other = "commerce" if store == "sales" else "sales"
    tables = set(inspect(empty_database).get_table_names())
    assert set(STORES[store].tables) <= tables
    assert not set(STORES[other].tables) & tables, "a store holds only its own tables"


def test_migrating_again_changes_nothing(empty_database: Engine) -> None:
    migrate(empty_database, "sales")
    migrate(empty_database, "sales")
    with empty_database.connect() as connection:
        assert current(connection, "sales") == head("sales")


def test_both_stores_in_one_database_keep_their_own_histories(empty_database: Engine) -> None:
    migrate(empty_database, "sales")
    migrate(empty_database, "commerce")
    with empty_database.connect() as connection:
        assert current(connection, "sales") == head("sales")
        assert current(connection, "commerce") == head("commerce")
        for store in STORES:
            assert differences(connection, store) == []


def test_a_store_made_before_migrations_is_adopted_when_it_matches(
    empty_database: Engine,
) -> None:
    SalesTable.metadata.create_all(empty_database)
    migrate(empty_database, "sales")
    with empty_database.connect() as connection:
        assert current(connection, "sales") == head("sales")


def test_a_store_that_differs_without_a_history_is_refused_with_the_reason(
    empty_database: Engine,
) -> None:
    CommerceTable.metadata.create_all(empty_database)
    with empty_database.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE prospect DROP COLUMN comments")
    with pytest.raises(SchemaMismatch, match=r"no migration history.*make clean"):
        migrate(empty_database, "commerce")


async def test_the_worker_migrates_both_stores_when_it_starts(
    client: Client, tmp_path: Path
) -> None:
    urls = {store: f"sqlite:///{tmp_path / f'{store}.db'}" for store in STORES}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", cwd=Path(__file__).resolve().parent.parent,
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "ONBOARDING_TASK_QUEUE": f"migrations-{tmp_path.name}",
            "SALES_DATABASE_URL": urls["sales"],
            "COMMERCE_DATABASE_URL": urls["commerce"],
        },
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"worker polling" not in (line := await process.stdout.readline()):
                assert line, "the worker stopped before polling"
    finally:
        process.terminate()
        await process.wait()
    for store, url in urls.items():
        engine = make_engine(url)
        with engine.connect() as connection:
            assert current(connection, store) == head(store)
            assert differences(connection, store) == []
        engine.dispose()


def sent_email(connection: Connection, kind: str, message_id: str, **period: str) -> None:
    """An outbox row as the code of the time wrote it (`period` only once it exists)."""
    columns = ["onboarding_id", "kind", "recipient", "subject", "locale", "message_id"]
    columns += ["created_at", "attempts", *period]
    values = {
        "onboarding_id": "0123456789abcdef",
        "kind": kind,
        "recipient": "giulia@contoso.example",
        "subject": "Subject",
        "locale": "en",
        "message_id": message_id,
        "created_at": datetime.now(UTC),
        "attempts": 1,
        **period,
    }
    names = ", ".join(columns)
    connection.execute(
        text(f"INSERT INTO email_message ({names}) VALUES (:{', :'.join(columns)})"), values
    )


def test_the_outbox_keeps_its_rows_and_takes_a_reminder_an_hour(empty_database: Engine) -> None:
    with empty_database.begin() as connection:
        command.upgrade(config("commerce", connection), "0001")
        sent_email(connection, "prospect_approved", "<a@b2b.test>")

    migrate(empty_database, "commerce")

    with empty_database.begin() as connection:
        kept = connection.execute(text("SELECT kind, period FROM email_message")).all()
        assert [tuple(row) for row in kept] == [("prospect_approved", "")]
        for hour in ("2026-11-29T14", "2026-11-29T15"):
            sent_email(connection, "status_link_reminder", f"<{hour}@b2b.test>", period=hour)
    with pytest.raises(IntegrityError), empty_database.begin() as connection:
        sent_email(connection, "status_link_reminder", "<again@b2b.test>", period=hour)


def test_administrators_approved_before_accounts_existed_get_one_to_activate(
    empty_database: Engine,
) -> None:
    now = datetime.now(UTC)
    with empty_database.begin() as connection:
        command.upgrade(config("commerce", connection), "0001")
        insert = "INSERT INTO customer (customer_type, name, first_name, last_name, email, locale,"
        insert += " created_at) VALUES (:type, :name, :first, :last, :email, 'it', :now)"
        for type_, name, first, last, email in (
            ("organization", "Contoso Srl", None, None, None),
            ("person", "Giulia Rossi", "Giulia", "Rossi", "Giulia@Contoso.example"),
        ):
            connection.execute(
                text(insert),
                {
                    "type": type_,
                    "name": name,
                    "first": first,
                    "last": last,
                    "email": email,
                    "now": now,
                },
            )
        organization, person = (
            row[0] for row in connection.execute(text("SELECT id FROM customer ORDER BY id"))
        )
        connection.execute(
            text(
                "INSERT INTO customer_hierarchy (name, root_customer_id, created_at)"
                " VALUES ('Contoso Srl', :root, :now)"
            ),
            {"root": organization, "now": now},
        )
        hierarchy = connection.execute(text("SELECT id FROM customer_hierarchy")).scalar_one()
        for customer, parent, role in (
            (organization, None, "organization"),
            (person, organization, "b2b_admin"),
        ):
            connection.execute(
                text(
                    "INSERT INTO customer_hierarchy_member (hierarchy_id, customer_id,"
                    " parent_customer_id, role) VALUES (:h, :c, :p, :r)"
                ),
                {"h": hierarchy, "c": customer, "p": parent, "r": role},
            )

    migrate(empty_database, "commerce")

    with empty_database.begin() as connection:
        users = connection.execute(
            text("SELECT email, state, customer_id, organization_customer_id FROM partner_user")
        ).all()
        assert [tuple(user) for user in users] == [
            ("giulia@contoso.example", "invited", person, organization)
        ]
        invoice = connection.execute(
            text("SELECT invoice_customer_id FROM customer WHERE id = :id"), {"id": person}
        ).scalar_one()
        assert invoice == organization


def test_requests_stored_before_the_queues_are_found_and_counted(empty_database: Engine) -> None:
    now = datetime.now(UTC)
    with empty_database.begin() as connection:
        command.upgrade(config("commerce", connection), "0005")
        command.upgrade(config("sales", connection), "0002")
        for number, status in ((1, "pending"), (2, "rejected")):
            connection.execute(
                text(
                    "INSERT INTO prospect (onboarding_id, status, company_name, first_name,"
                    " last_name, email, locale, sales_integration_enabled, created_at)"
                    " VALUES (:id, :status, 'Société Générale', 'Zoë', 'Łaski',"
                    " :email, 'it', :on, :now)"
                ),
                {"id": f"{number:016x}", "status": status, "email": f"z{number}@x.example",
                 "on": True, "now": now},
            )  # fmt: skip
        connection.execute(
            text(
                "INSERT INTO lead (onboarding_id, source, status, topic, first_name, last_name,"
                " email, company_name, locale, created_at) VALUES ('0000000000000001',"
                " 'commerce_b2b', 'open', 'Topic', 'Zoë', 'Łaski', 'z1@x.example',"
                " 'Société Générale', 'it', :now)"
            ),
            {"now": now},
        )

    migrate(empty_database, "commerce")
    migrate(empty_database, "sales")

    with empty_database.begin() as connection:
        words = connection.execute(text("SELECT search_text, company_key FROM prospect")).all()
        assert {tuple(row) for row in words} == {
            ("societe generale zoe laski z1@x.example 0000000000000001", "societe generale"),
            ("societe generale zoe laski z2@x.example 0000000000000002", "societe generale"),
        }
        tally = connection.execute(
            text("SELECT status, reason_code, row_count FROM prospect_tally ORDER BY status")
        ).all()
        assert [tuple(row) for row in tally] == [("pending", "", 1), ("rejected", "", 1)]
        (lead,) = connection.execute(text("SELECT search_text FROM lead")).all()
        assert lead[0].startswith("societe generale zoe laski")
        leads = connection.execute(text("SELECT status, row_count FROM lead_tally")).all()
        assert [tuple(row) for row in leads] == [("open", 1)]


def test_the_queues_revisions_go_down_and_up_again(empty_database: Engine) -> None:
    migrate(empty_database, "commerce")
    migrate(empty_database, "sales")
    with empty_database.begin() as connection:
        command.downgrade(config("commerce", connection), "0005")
        command.downgrade(config("sales", connection), "0002")
        tables = set(inspect(connection).get_table_names())
        assert not {"prospect_tally", "lead_tally", "opportunity_tally"} & tables
    migrate(empty_database, "commerce")
    migrate(empty_database, "sales")
    with empty_database.connect() as connection:
        for store in STORES:
            assert differences(connection, store) == []


def test_triggers_a_revision_loses_are_made_again_and_what_they_keep_refilled(
    empty_database: Engine,
) -> None:
    migrate(empty_database, "commerce")
    now = datetime.now(UTC)
    insert = (
        "INSERT INTO prospect (onboarding_id, status, company_name, first_name, last_name,"
        " email, locale, sales_integration_enabled, created_at, search_text, company_key)"
        " VALUES (:id, 'pending', 'Caffè Nero', 'Zoë', 'Łaski', :email, 'en', :on, :now,"
        " :words, 'caffe nero')"
    )
    with empty_database.begin() as connection:
        connection.execute(
            text(insert),
            {"id": "0" * 16, "email": "a@x.example", "on": True, "now": now,
             "words": "caffe nero zoe laski a@x.example 0000000000000000"},
        )  # fmt: skip
        # What a later revision may do: SQLite's batch mode rebuilds the table, and the
        # table's triggers go with it; elsewhere, someone drops one.
        if connection.dialect.name == "sqlite":
            operations = Operations(MigrationContext.configure(connection))
            with operations.batch_alter_table("prospect", recreate="always") as batch:
                batch.alter_column("hold_note", existing_type=sa.String(1000))
        else:
            connection.execute(text("DROP TRIGGER prospect_tally_update ON prospect"))
        connection.execute(
            text(insert),
            {"id": "1" * 16, "email": "b@x.example", "on": True, "now": now,
             "words": "caffe nero zoe laski b@x.example 1111111111111111"},
        )  # fmt: skip
        assert keep_triggers(connection, "commerce") != []
        assert keep_triggers(connection, "commerce") == []

    with empty_database.begin() as connection:
        tally = connection.execute(text("SELECT status, row_count FROM prospect_tally")).all()
        assert [tuple(row) for row in tally] == [("pending", 2)]
        connection.execute(text("UPDATE prospect SET status = 'approved'"))
        tally = connection.execute(text("SELECT status, row_count FROM prospect_tally")).all()
        assert sorted(tuple(row) for row in tally) == [("approved", 2), ("pending", 0)]
    found = q.page(empty_database, q.PROSPECTS, q.View(q="nero laski"), now)
    assert len(found.rows) == 2


def test_prospects_stored_before_the_stage_was_kept_get_the_stage_their_rows_show(
    empty_database: Engine,
) -> None:
    now = datetime.now(UTC)
    # (reference, status, Sales integration, customers written by the qualify step)
    stored = {
        "0000000000000001": ("pending", True, False),
        "0000000000000002": ("pending", True, True),
        "0000000000000003": ("pending", False, False),
        "0000000000000004": ("approved", True, True),
        "0000000000000005": ("rejected", False, False),
    }
    with empty_database.begin() as connection:
        command.upgrade(config("commerce", connection), "0009")
        for reference, (status, integration, qualified) in stored.items():
            connection.execute(
                text(
                    "INSERT INTO prospect (onboarding_id, status, company_name, first_name,"
                    " last_name, email, locale, sales_integration_enabled, created_at)"
                    " VALUES (:id, :status, 'Contoso Srl', 'Giulia', 'Rossi', :email, 'en',"
                    " :on, :now)"
                ),
                {"id": reference, "status": status, "email": f"{reference}@x.example",
                 "on": integration, "now": now},
            )  # fmt: skip
            if qualified:
                connection.execute(
                    text(
                        "INSERT INTO customer (onboarding_id, customer_type, name, locale,"
                        " created_at) VALUES (:id, 'organization', 'Contoso Srl', 'en', :now)"
                    ),
                    {"id": reference, "now": now},
                )

    migrate(empty_database, "commerce")

    with empty_database.connect() as connection:
        kept = connection.execute(text("SELECT onboarding_id, stage FROM prospect")).all()
    assert {reference: stage for reference, stage in kept} == {
        "0000000000000001": "lead_open",
        "0000000000000002": "opportunity_open",
        "0000000000000003": "awaiting_approval",
        "0000000000000004": "approved",
        "0000000000000005": "rejected",
    }


def test_the_stage_revision_goes_down_and_up_again(empty_database: Engine) -> None:
    migrate(empty_database, "commerce")
    with empty_database.begin() as connection:
        command.downgrade(config("commerce", connection), "0009")
        columns = {column["name"] for column in inspect(connection).get_columns("prospect")}
        assert "stage" not in columns
    migrate(empty_database, "commerce")
    with empty_database.connect() as connection:
        assert differences(connection, "commerce") == []


def test_contacts_stored_before_dual_write_keep_their_opportunities(
    empty_database: Engine,
) -> None:
    # A contact an opportunity names, as the release before dual-write stored them. On
    # SQLite, rebuilding `contact` to add a column drops the table an opportunity's
    # foreign key points at, which fails while foreign keys are enforced.
    now = datetime.now(UTC)
    with empty_database.begin() as connection:
        command.upgrade(config("sales", connection), "0004")
        lead = connection.execute(
            text(
                "INSERT INTO lead (onboarding_id, source, status, topic, first_name, last_name,"
                " email, company_name, locale, created_at) VALUES ('0000000000000001',"
                " 'commerce_b2b', 'qualified', 'Topic', 'Giulia', 'Rossi', 'g@x.example',"
                " 'Contoso Srl', 'it', :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        account = connection.execute(
            text(
                "INSERT INTO account (onboarding_id, name, originating_lead_id, created_at)"
                " VALUES ('0000000000000001', 'Contoso Srl', :lead, :now) RETURNING id"
            ),
            {"lead": lead, "now": now},
        ).scalar_one()
        contact = connection.execute(
            text(
                "INSERT INTO contact (onboarding_id, first_name, last_name, email, locale,"
                " account_id, originating_lead_id, created_at) VALUES ('0000000000000001',"
                " 'Giulia', 'Rossi', 'g@x.example', 'it', :account, :lead, :now) RETURNING id"
            ),
            {"account": account, "lead": lead, "now": now},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO opportunity (onboarding_id, name, status, lead_id, account_id,"
                " contact_id, created_at) VALUES ('0000000000000001', 'Contoso Srl', 'open',"
                " :lead, :account, :contact, :now)"
            ),
            {"lead": lead, "account": account, "contact": contact, "now": now},
        )

    migrate(empty_database, "sales")

    with empty_database.connect() as connection:
        assert current(connection, "sales") == head("sales")
        assert differences(connection, "sales") == []
        kept = connection.execute(
            text(
                "SELECT contact.id, contact.active FROM opportunity"
                " JOIN contact ON contact.id = opportunity.contact_id"
            )
        ).all()
        assert [(row[0], bool(row[1])) for row in kept] == [(contact, True)]
