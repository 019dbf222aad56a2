"""Requests open under the last release finish after the deploy, with only new workers.

An earlier release (each of `OLD_COMMITS`) is checked out as a git worktree with its own
venv; its worker and its command line open requests at every stage
a request waits in: a lead to qualify or cancel, an opportunity to close, a prospect for
a Commerce admin (the Sales integration off), an approval email and a received email
still retrying while the mail server is down. Then the deploy, as an operator runs it:
the old worker stopped (SIGTERM), the search attributes the new code needs registered,
the new worker started (it migrates the stores), and nothing of the old release left
running. The new release's command line finishes every request, submits one open
request's email again (the same request answers) and a decided one's (a new request),
and the test counts what a user would see: each request's stage, its rows in both
stores, its emails, and its workflows done.

Only the product's outside is used (see `releases`), so the test holds its meaning
whatever the new release changes inside.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.conftest import eventually
from tests.faults.harness import record
from tests.faults.releases import Deployment, Release, earlier_release, this_release

pytestmark = [pytest.mark.faults, pytest.mark.storm]

# The releases this one may replace: the last before the redesign of issue 12
# (`applicant-<hash>` parents and `onboarding-<id>` children), the last before request
# time (one workflow per request, no clocks), and the last before Worker Versioning (its
# workers unversioned; holds). A request open under any of them finishes on this
# release's code: with no current version yet, this release's first worker makes its
# build current, and each unversioned request moves to it on its next task and is pinned
# there from then on (so the patches for those releases stay until they are done).
OLD_COMMITS = {
    "before-one-workflow": "a0efe07b03d84dfa319718a6a1a38f42452c9c7e",
    "before-request-time": "d81ffb3b701b88a0b201f5bf3df115755e976aac",
    "before-versioning": "c63d49bc4adbf6769869a6cb6083fbc82686b140",
}
# The releases whose command line puts a request on hold.
HOLDS = {OLD_COMMITS["before-versioning"][:7]}
# The whole case, once both venvs exist.
WITHIN = 300
DECISION_EMAIL = {"approved": "prospect-approved", "rejected": "prospect-rejected"}


@dataclass
class Request:
    """One request of the case: what each release does to it, and where it ends."""

    label: str
    # Its stage when the deploy comes (none for a request made after it), and at the end.
    at_deploy: str
    final: str
    # The decisions made on it with the old release's command line, then the new one's.
    old: tuple[str, ...] = ()
    new: tuple[str, ...] = ()
    integration: bool = True
    locale: str = "en"
    email: str = field(default_factory=lambda: f"giulia.{uuid.uuid4().hex[:10]}@deploy.example")
    onboarding_id: str = ""
    # What the command line last answered about it: the submission, or the decision
    # with the request's status after it.
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> bool:
        return "qualify" in self.old + self.new


@pytest.fixture(scope="module", params=list(OLD_COMMITS))
def old_release(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    commit = OLD_COMMITS[request.param]
    with earlier_release(commit, tmp_path_factory.mktemp("old-release")) as release:
        yield release


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    deployment = Deployment(tmp_path)
    try:
        await deployment.start()
        yield deployment
    finally:
        deployment.stop()


async def submit(deployment: Deployment, release: Release, request: Request) -> dict[str, Any]:
    answer = await deployment.command(
        release, "submit", "--company", f"Contoso {request.label}", "--first-name", "Giulia",
        "--last-name", "Rossi", "--email", request.email, "--locale", request.locale,
    )  # fmt: skip
    return answer.json()


async def open_request(deployment: Deployment, release: Release, request: Request) -> None:
    request.answer = await submit(deployment, release, request)
    assert request.answer["duplicate"] is False, f"{request.label}: {request.answer}"
    request.onboarding_id = str(request.answer["onboarding_id"])


async def decide(deployment: Deployment, release: Release, request: Request, action: str) -> None:
    args = [action, request.onboarding_id, "--actor", f"rep:{release.name}"]
    if action in ("cancel", "lost", "reject"):
        args += ["--reason", f"{action} across the deploy"]
    request.answer = (await deployment.command(release, *args)).json()


async def decide_in_turn(
    deployment: Deployment, release: Release, request: Request, actions: tuple[str, ...]
) -> None:
    for action in actions:
        await decide(deployment, release, request, action)


async def status(deployment: Deployment, release: Release, request: Request) -> dict[str, Any]:
    return (await deployment.command(release, "status", request.onboarding_id)).json()


async def each(requests: list[Request], step: Callable[[Request], Awaitable[None]]) -> None:
    """`step(request)` for every request at once, as reps working in parallel."""
    await asyncio.gather(*(step(request) for request in requests))


async def test_requests_open_at_every_stage_finish_after_the_deploy(
    old_release: Release, deployment: Deployment
) -> None:
    old, new = old_release, this_release()
    off = [
        Request("approve", "awaiting_approval", "approved", new=("approve",), integration=False),
        Request("reject", "awaiting_approval", "rejected", new=("reject",), integration=False),
    ]
    lead_won = Request("lead won", "lead_open", "approved", new=("qualify", "won"), locale="it")
    submitted_again = Request("again", "lead_open", "approved", new=("qualify", "won"))
    decided = Request("decided", "rejected", "rejected", old=("cancel",))
    approval_retrying = Request("approval retrying", "approved", "approved", old=("qualify",))
    on = [
        lead_won,
        Request("lead cancelled", "lead_open", "rejected", new=("cancel",)),
        Request("opportunity won", "opportunity_open", "approved", ("qualify",), ("won",)),
        Request("opportunity lost", "opportunity_open", "rejected", ("qualify",), ("lost",)),
        submitted_again,
        decided,
        approval_retrying,
    ]
    received_retrying = Request("received retrying", "lead_open", "rejected", new=("cancel",))
    reapplied = Request("reapplied", "", "rejected", new=("cancel",), email=decided.email)
    held = Request("held", "lead_open", "rejected", new=("resume", "cancel"))
    if old.name in HOLDS:
        on.append(held)
    requests = [*off, *on, received_retrying]
    started = time.monotonic()

    async with asyncio.timeout(WITHIN):
        # Under the old release, requests at every stage.
        await deployment.register_search_attributes(old.search_attributes())
        worker = await deployment.start_worker(old, "-off", SALES_INTEGRATION_ENABLED="false")
        await each(off, lambda r: open_request(deployment, old, r))
        # Their received emails out before the worker stops: one stopped mid-send has its
        # email cancelled after the mail server took it, and an earlier release sends it
        # again (its Message-ID the same) from the next worker.
        for request in off:
            await deployment.email_arrived(request.onboarding_id, "request-received")
        assert worker.stop() == 0, worker.tail()
        worker = await deployment.start_worker(old, "-on")
        await each(on, lambda r: open_request(deployment, old, r))
        await each(on, lambda r: decide_in_turn(deployment, old, r, r.old))
        if held in on:
            put_on_hold = await deployment.command(
                old, "hold", held.onboarding_id, "--note", "across the deploy", "--actor", "rep:old"
            )
            assert put_on_hold.json()["held"] is not None, put_on_hold.stdout
        for request in [*off, *on]:
            await deployment.email_arrived(request.onboarding_id, "request-received")
        await deployment.email_arrived(decided.onboarding_id, "prospect-rejected")
        # The mail server goes down as a request is won and another submitted: their
        # emails are retrying when the deploy comes.
        deployment.stop_mail_server()
        await asyncio.gather(
            open_request(deployment, old, received_retrying),
            decide(deployment, old, approval_retrying, "won"),
        )
        # Where the command line's answers left each request (a submission's answer has
        # its stage, a decision's the whole status).
        assert {r.label: r.answer["stage"] for r in requests} == {
            r.label: r.at_deploy for r in requests
        }
        assert approval_retrying.answer["notification"]["state"] == "sending"
        received = await status(deployment, old, received_retrying)
        assert received["received_notification"]["state"] == "sending"

        # The deploy: the old worker stopped, what the new code needs registered, the new
        # worker started (it brings the stores' schemas up to date), the mail server back.
        assert worker.stop() == 0, worker.tail()
        await deployment.register_search_attributes(new.search_attributes())
        await deployment.start_worker(new)
        deployment.start_mail_server()
        # Its first worker made the new build current; the old release's open requests
        # are pinned to it at once, each after its history replays on the new code (those
        # whose emails retried meanwhile are there already: pinned by their first task).
        moved = (await deployment.command(new, "deploy", "move", "unversioned")).json()
        assert moved["workflows"] and all(w["moved"] for w in moved["workflows"]), moved
        report = (await deployment.command(new, "deploy", "status")).json()
        left = {group["workflow_type"] for group in report["unversioned"]}
        assert not left & {"OnboardingWorkflow", "ApplicantWorkflow"}, report

        # Under the new release: the same email while its request is open is that request;
        # a decided request's email applies again; every request is finished.
        again = await submit(deployment, new, submitted_again)
        assert again["duplicate"] is True, again
        assert again["onboarding_id"] == submitted_again.onboarding_id, again
        await open_request(deployment, new, reapplied)
        assert reapplied.onboarding_id != decided.onboarding_id
        requests.append(reapplied)
        await each(requests, lambda r: decide_in_turn(deployment, new, r, r.new))

        await all_workflows_done(deployment, requests)
        finals = await asyncio.gather(*(status(deployment, new, r) for r in requests))
        for request, final in zip(requests, finals, strict=True):
            assert_finished(deployment, request, final, reminded=request is submitted_again)
        assert_one_request_per_undecided_email(deployment, requests, submitted_again, decided)
        await no_old_workflow_left_running(deployment)
        # All but the one decided, its emails out, before the deploy.
        await crossed_to_the_first_version(
            deployment, new, [r for r in requests if r is not decided]
        )
    record(
        os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0],
        f"{len(requests)} requests across the deploy from {old.name}: every one finished with"
        f" its rows and emails exactly, {time.monotonic() - started:.0f} s"
        f" (and {old.installed_in:.0f} s for the old release's venv)",
    )


async def crossed_to_the_first_version(
    deployment: Deployment, new: Release, requests: list[Request]
) -> None:
    """The new release's build was made current by its first worker, and each of
    `requests` finished on it, pinned there by `deploy move unversioned` (or by its first
    task after the deploy)."""
    report = (await deployment.command(new, "deploy", "status")).json()
    assert report["current"] == report["this_build"], report
    for request in requests:
        handle = deployment.client.get_workflow_handle(f"onboarding-{request.onboarding_id}")
        described = await handle.describe()
        version = described.raw_description.workflow_execution_info.versioning_info
        assert version.deployment_version.build_id == report["current"], request.label


async def all_workflows_done(deployment: Deployment, requests: list[Request]) -> None:
    """Every request's `onboarding-<id>` workflow has completed; the only other one is the
    duplicate submission's own, which answered with the open request and ended."""
    expected = {f"onboarding-{r.onboarding_id}" for r in requests}

    async def done() -> bool | None:
        states = {
            execution.id: execution.status
            async for execution in deployment.client.list_workflows()
            if execution.id.startswith("onboarding-")
        }
        others = set(states) - expected
        assert len(others) <= 1, f"workflows of no request: {others}"
        complete = states == dict.fromkeys(states, WorkflowExecutionStatus.COMPLETED)
        return True if complete and set(states) >= expected else None

    await eventually(done, 120, "every request's workflow completed")


def assert_finished(
    deployment: Deployment, request: Request, answer: dict[str, Any], reminded: bool
) -> None:
    """The request's final stage (`answer`: its status from the new command line), its
    rows in both stores and its emails, exactly; `reminded`: its email was submitted
    again while it was open."""
    oid, final = request.onboarding_id, request.final
    assert (answer["stage"], answer["prospect_status"]) == (final, final), request.label

    def count(store: str, table: str) -> int:
        query = f"SELECT 1 FROM {table} WHERE onboarding_id = :oid"
        return len(deployment.query(store, query, oid=oid))

    approved = final == "approved"
    with_customers = request.qualified or (approved and not request.integration)
    rows = {
        "prospect": count("commerce", "prospect"),
        "lead": count("sales", "lead"),
        "opportunity": count("sales", "opportunity"),
        "contact": count("sales", "contact"),
        "account": count("sales", "account"),
        "customer": count("commerce", "customer"),
        "customer_hierarchy": count("commerce", "customer_hierarchy"),
    }
    assert rows == {
        "prospect": 1,
        "lead": int(request.integration),
        "opportunity": int(request.qualified),
        "contact": int(request.qualified),
        "account": int(request.qualified),
        "customer": 2 * with_customers,
        "customer_hierarchy": int(approved),
    }, request.label
    ((prospect_status,),) = deployment.query(
        "commerce", "SELECT status FROM prospect WHERE onboarding_id = :oid", oid=oid
    )
    assert prospect_status == final, request.label
    if request.integration:
        ((lead_status,),) = deployment.query(
            "sales", "SELECT status FROM lead WHERE onboarding_id = :oid", oid=oid
        )
        assert lead_status == ("qualified" if request.qualified else "disqualified"), request.label
    if request.qualified:
        ((opportunity_status,),) = deployment.query(
            "sales", "SELECT status FROM opportunity WHERE onboarding_id = :oid", oid=oid
        )
        assert opportunity_status == ("won" if approved else "lost"), request.label

    # One received email and one of the decision, each delivered once; the request whose
    # email was submitted again also emailed its status link once.
    expected = Counter({"request-received": 1, DECISION_EMAIL[final]: 1})
    if reminded:
        expected["status-link-reminder"] = 1
    emails = deployment.emails(oid)
    assert Counter(m["X-Onboarding-Event"] for m in emails) == expected, request.label
    assert len({m["Message-ID"] for m in emails}) == len(emails), f"{request.label}: resent"
    outbox = deployment.query(
        "commerce", "SELECT kind, sent_at FROM email_message WHERE onboarding_id = :oid", oid=oid
    )
    assert Counter(kind.replace("_", "-") for kind, _ in outbox) == expected, request.label
    assert all(sent_at is not None for _, sent_at in outbox), request.label


def assert_one_request_per_undecided_email(
    deployment: Deployment, requests: list[Request], submitted_again: Request, decided: Request
) -> None:
    """No request but the test's: the duplicate made nothing, the decided email a second."""
    prospects = deployment.query("commerce", "SELECT onboarding_id, email FROM prospect")
    assert sorted(oid for oid, _ in prospects) == sorted(r.onboarding_id for r in requests)
    by_email = Counter(email for _, email in prospects)
    assert by_email[submitted_again.email] == 1
    assert by_email[decided.email] == 2
    leads = deployment.query("sales", "SELECT onboarding_id FROM lead")
    assert sorted(oid for (oid,) in leads) == sorted(
        r.onboarding_id for r in requests if r.integration
    )


async def no_old_workflow_left_running(deployment: Deployment) -> None:
    """Nothing per request runs once it is finished: no `applicant-<hash>` either."""

    left: list[str] = []

    async def none_running() -> bool | None:
        running = [
            execution.id
            async for execution in deployment.client.list_workflows("ExecutionStatus = 'Running'")
        ]
        applicants = [
            execution.id
            async for execution in deployment.client.list_workflows(
                "WorkflowType = 'ApplicantWorkflow' AND ExecutionStatus = 'Running'"
            )
        ]
        left[:] = applicants + [
            wid for wid in running if wid.startswith(("applicant-", "onboarding-"))
        ]
        return True if not left else None

    try:
        await eventually(none_running, 15, "no applicant or onboarding workflow running")
    except AssertionError as err:
        raise AssertionError(f"{err}; still running: {sorted(set(left))}") from None
