"""`python starter.py …` as people and scripts run it: JSON out, exit codes, one-line errors.

Each command runs in this process (`starter.run`, its settings read from the environment
the command would have): a Python process per command took a third of `make test`'s time
on a busy 2-core machine. `starter_process` runs the real `python starter.py` once, for
what only a process shows (the exit status, the flushed output).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import uuid
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import Client

from client.requests import submit, wait_until_recorded
from models.commerce import Prospect
from settings import Settings
from starter import run as starter_command
from stores import Stores
from tests.conftest import eventually, free_port, until_confirmed
from tests.scenario import a_request
from worker import build_worker

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("worker")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def command_env(client: Client, settings: Settings) -> dict[str, str]:
    """What the test's environment adds for a command."""
    return {
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "ONBOARDING_TASK_QUEUE": settings.onboarding_task_queue,
        # The worker's stores: `submit` asks them the re-apply policy, `status` reads them,
        # and Commerce keeps the requests' data keys.
        "SALES_DATABASE_URL": settings.sales_database_url,
        "COMMERCE_DATABASE_URL": settings.commerce_database_url,
    }


@pytest.fixture
def starter(command_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    async def run(*args: str, **overrides: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as environment:
            for name, value in {**command_env, **overrides}.items():
                environment.setenv(name, value)
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = await starter_command(list(args), settings=Settings(_env_file=None))  # type: ignore[call-arg]
                except SystemExit as exited:  # argparse's, for --help and bad usage
                    code = int(exited.code or 0)
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def starter_process(command_env: dict[str, str]):  # type: ignore[no-untyped-def]
    async def run(*args: str) -> Run:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "starter.py",
            *args,
            cwd=PROJECT,
            env={**os.environ, **command_env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    return run


def one_line_reason(run: Run, *words: str) -> None:
    assert run.out == ""
    assert run.err.count("\n") == 1 and "Traceback" not in run.err, run.err
    for word in words:
        assert word in run.err


SUBMIT = ("submit", "--company", "Contoso Srl", "--first-name", "Giulia", "--last-name", "Rossi")


async def test_a_rep_works_a_request_from_the_command_line(starter) -> None:  # type: ignore[no-untyped-def]
    submitted = await starter(*SUBMIT, "--email", "giulia.cli@contoso.example", "--locale", "it")
    assert submitted.code == 0, submitted.err
    oid = submitted.json["onboarding_id"]
    assert submitted.json["workflow_id"] == f"onboarding-{oid}"
    assert submitted.json["stage"] == "lead_open"

    qualified = await starter("qualify", oid, "--actor", "rep:mario")
    assert qualified.code == 0 and qualified.json["stage"] == "opportunity_open"
    won = await starter("won", oid)
    assert won.code == 0 and won.json["stage"] == "approved"

    # Every record is in place once the workflow has ended (its approval email out).
    async def ended() -> Run:
        status = await starter("status", oid)
        assert status.code == 0 and status.json["workflow_status"] == "completed", status
        return status

    status = await eventually(ended, every=0.1)
    assert status.json["stage"] == "approved" and status.json["prospect_status"] == "approved"
    assert all(value is not None for value in status.json["records"].values())

    refused = await starter("lost", oid, "--reason", "too late")
    assert refused.code == 3
    one_line_reason(refused, "lost is not allowed", "approved")


async def test_an_admin_erases_a_decided_request_from_the_command_line(starter) -> None:  # type: ignore[no-untyped-def]
    email = f"erase.{uuid.uuid4().hex[:8]}@contoso.example"
    oid = (await starter(*SUBMIT, "--email", email)).json["onboarding_id"]
    undecided = await starter("erase", oid, "--reason", "asked by phone")
    assert undecided.code == 3
    one_line_reason(undecided, "lead_open")
    assert (await starter("cancel", oid)).code == 0
    # Once its workflow has ended (the rejection email out): closed, the stores are erased
    # directly and its key destroyed.

    async def closed() -> bool:
        return (await starter("status", oid)).json["workflow_status"] == "completed"

    await eventually(closed, every=0.1)

    erased = await starter("erase", oid, "--reason", "asked by phone", "--actor", "cli:anna")

    assert erased.code == 0, erased.err
    assert erased.json["anonymised_by"] == "cli:anna"
    assert erased.json["history"] == "key_destroyed"
    status = await starter("status", oid)
    assert status.code == 0 and email not in status.out
    assert status.json["workflow_status"] == "anonymised"
    rewrapped = await starter("rewrap-keys")
    assert rewrapped.code == 0 and rewrapped.json["rewrapped"] >= 0


@pytest.mark.usefixtures("worker_integration_off")
async def test_with_integration_off_an_admin_rejects_from_the_command_line(
    starter, settings_integration_off: Settings
) -> None:  # type: ignore[no-untyped-def]
    off = {"ONBOARDING_TASK_QUEUE": settings_integration_off.onboarding_task_queue}
    submitted = await starter(*SUBMIT, "--email", "off.cli@contoso.example", **off)
    assert submitted.code == 0 and submitted.json["stage"] == "awaiting_approval"
    qualify = await starter("qualify", submitted.json["onboarding_id"], **off)
    assert qualify.code == 3
    one_line_reason(qualify, "awaiting_approval")
    rejected = await starter("reject", submitted.json["onboarding_id"], "--reason", "No VAT", **off)
    assert rejected.code == 0 and rejected.json["stage"] == "rejected"


async def test_bad_input_exits_2_with_a_one_line_reason(starter) -> None:  # type: ignore[no-untyped-def]
    bad_email = await starter(*SUBMIT, "--email", "not-an-email")
    assert bad_email.code == 2
    one_line_reason(bad_email, "--email")
    bad_locale = await starter(*SUBMIT, "--email", "a@contoso.example", "--locale", "fr")
    assert bad_locale.code == 2
    one_line_reason(bad_locale, "--locale")
    newline = await starter(
        *SUBMIT[:2], "Evil\r\nBcc: x@y.z", *SUBMIT[3:], "--email", "a@b.example"
    )
    assert newline.code == 2
    one_line_reason(newline, "--company")
    missing = await starter("qualify")
    assert missing.code == 2
    one_line_reason(missing, "ID")
    unknown = await starter("promote", "x")
    assert unknown.code == 2


async def test_an_unknown_request_exits_4(starter, starter_process) -> None:  # type: ignore[no-untyped-def]
    for args in (("status", "0000000000000000"), ("qualify", "0000000000000000")):
        run = await starter(*args)
        assert run.code == 4
        one_line_reason(run, "no onboarding request 0000000000000000")
    # From a process of its own: the status is its exit status.
    run = await starter_process("status", "0000000000000000")
    assert run.code == 4
    one_line_reason(run, "no onboarding request 0000000000000000")


async def test_an_unreachable_temporal_exits_5_with_a_one_line_reason(starter) -> None:  # type: ignore[no-untyped-def]
    run = await starter("status", "abc", TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    assert run.code == 5
    one_line_reason(run, "cannot reach Temporal")


async def test_a_namespace_that_does_not_exist_exits_5_not_4(starter) -> None:  # type: ignore[no-untyped-def]
    for args in (("status", "abc"), (*SUBMIT, "--email", "ns@contoso.example")):
        run = await starter(*args, TEMPORAL_NAMESPACE="no-such-namespace")
        assert run.code == 5
        one_line_reason(run, "no namespace", "no-such-namespace")


@pytest.mark.usefixtures("short_accept_wait")
async def test_with_the_worker_stopped_status_answers_and_a_decision_exits_6(
    starter, client: Client, settings: Settings, stores: Stores, activity_executor: Any
) -> None:  # type: ignore[no-untyped-def]
    stopped = settings.model_copy(update={"onboarding_task_queue": f"stopped-{uuid.uuid4().hex}"})
    async with build_worker(client, stopped, stores, activity_executor):
        submitted = await submit(client, a_request(), stopped)
        await wait_until_recorded(client, submitted.onboarding_id)
    oid, key = submitted.onboarding_id, f"cli-test-{uuid.uuid4().hex}"
    env = {
        "ONBOARDING_TASK_QUEUE": stopped.onboarding_task_queue,
        "SALES_DATABASE_URL": settings.sales_database_url,
        "COMMERCE_DATABASE_URL": settings.commerce_database_url,
    }

    status = await starter("status", oid, **env)
    assert status.code == 0, status.err
    assert (status.json["stage"], status.json["workflow_status"]) == (
        "lead_open",
        "worker_unavailable",
    )
    qualify = await starter("qualify", oid, "--key", key, **env)
    assert qualify.code == 6
    one_line_reason(qualify, "not yet confirmed", f"--key {key}")

    async with build_worker(client, stopped, stores, activity_executor):
        again = await until_confirmed(
            lambda: starter("qualify", oid, "--key", key, **env), lambda run: run.code == 6
        )
        assert again.code == 0, again.err
        assert again.json["stage"] == "opportunity_open"
        assert [d["action"] for d in again.json["decisions"]] == ["qualify"]


async def test_the_help_names_every_exit_status(starter) -> None:  # type: ignore[no-untyped-def]
    shown = await starter("--help")
    assert shown.code == 0
    assert "6 recorded but not yet confirmed" in " ".join(shown.out.split())


async def test_a_rep_holds_resumes_and_cancels_with_a_code_and_a_note(starter) -> None:  # type: ignore[no-untyped-def]
    submitted = await starter(*SUBMIT, "--email", f"hold.{uuid.uuid4().hex[:8]}@contoso.example")
    assert submitted.code == 0, submitted.err
    oid = submitted.json["onboarding_id"]

    held = await starter("hold", oid, "--note", "Waiting for their VAT certificate")
    assert held.code == 0, held.err
    assert held.json["held"]["note"] == "Waiting for their VAT certificate"
    assert held.json["held"]["by"].startswith("cli:")
    twice = await starter("hold", oid, "--note", "again")
    assert twice.code == 3
    one_line_reason(twice, "hold is not allowed", "already on hold")
    no_note = await starter("hold", oid)
    assert no_note.code == 2
    one_line_reason(no_note, "--note")
    status = await starter("status", oid)
    assert status.json["held"]["note"] == "Waiting for their VAT certificate"
    assert status.json["next_reminder_at"] is None and status.json["expires_at"] is None

    resumed = await starter("resume", oid, "--actor", "rep:mario")
    assert resumed.code == 0, resumed.err
    assert resumed.json["held"] is None and resumed.json["expires_at"] is not None

    system_s = await starter("cancel", oid, "--reason-code", "expired")
    assert system_s.code == 2
    one_line_reason(system_s, "--reason-code")
    cancelled = await starter(
        "cancel", oid, "--reason", "No shop of their own", "--reason-code", "not_eligible",
        "--note", "Checked their website",
    )  # fmt: skip
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json["reason_code"] == "not_eligible"
    assert cancelled.json["decisions"][-1]["note"] == "Checked their website"


async def test_applying_again_inside_the_cool_down_exits_3_naming_the_date(
    starter, stores: Stores
) -> None:  # type: ignore[no-untyped-def]
    email = f"again.{uuid.uuid4().hex[:8]}@contoso.example"
    first = await starter(*SUBMIT, "--email", email)
    assert first.code == 0, first.err
    assert (await starter("cancel", first.json["onboarding_id"])).code == 0

    refused = await starter(*SUBMIT, "--email", email)
    assert refused.code == 3
    one_line_reason(refused, "may apply again from 20")
    with Session(stores.commerce) as session:
        assert len(session.exec(select(Prospect).where(Prospect.email == email)).all()) == 1

    at_once = await starter(*SUBMIT, "--email", email, REAPPLY_COOLDOWN="0")
    assert at_once.code == 0, at_once.err
    assert at_once.json["onboarding_id"] != first.json["onboarding_id"]


async def test_an_approved_email_exits_3_saying_where_to_sign_in(starter) -> None:  # type: ignore[no-untyped-def]
    email = f"partner.{uuid.uuid4().hex[:8]}@contoso.example"
    first = await starter(*SUBMIT, "--email", email)
    for action in ("qualify", "won"):
        assert (await starter(action, first.json["onboarding_id"])).code == 0
    refused = await starter(*SUBMIT, "--email", email, REAPPLY_COOLDOWN="0")
    assert refused.code == 3
    one_line_reason(refused, "already a partner", "/signin")


async def test_the_help_says_who_reads_the_reason_and_offers_staff_s_codes(starter) -> None:  # type: ignore[no-untyped-def]
    shown = await starter("cancel", "--help")
    assert shown.code == 0
    words = " ".join(shown.out.split())
    assert "The requester reads this in the rejection email." in words
    assert "never emailed" in words
    assert "not_eligible (Not eligible)" in words and "expired" not in words
