"""Two versioned releases: A's requests finish on A's workers while B takes the new ones.

Two cases. In the first, A is this checkout and B the same with an incompatible change to
the onboarding workflow and no `workflow.patched` (its first workflow task writes a memo
before anything else, so no history of A replays on B). In the second, the deploy this
release makes: A is the release that landed before it (`LANDED`, the first versioned
one), checked out with a venv of its own, and B is this checkout as it is.
Requests are opened on A at every stage (lead, opportunity, awaiting approval, held, an
email retrying, decided with its email out), B's workers start beside A's (migrating the
stores, which A's code goes on using), the operator makes B current with
`deploy current`, and then: a new request runs on B, A's requests, decided with B's
command line, finish on A's workers with the usual rows and emails, and `deploy status`
reports A drained, after which A's workers stop and B alone answers. With the planted
change, `deploy move` refuses to move A's held request to B (its history does not replay
there) and B's memo shows B's code ran.

Only the product's outside is used (see `releases`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually
from tests.faults.deploy_requests import (
    Request,
    all_workflows_done,
    assert_finished,
    decide,
    decide_in_turn,
    each,
    open_request,
    status,
)
from tests.faults.harness import record
from tests.faults.releases import Deployment, Release, earlier_release, versioned_release

pytestmark = [pytest.mark.faults, pytest.mark.storm]

# The release this one is deployed over: the first versioned release. Its requests (and
# those of the unversioned releases, which `deploy move unversioned` pinned to its build)
# finish on its workers; this release's code neither runs nor replays them.
LANDED = "2d7489217c90fc2b054ba08075cae5a3adadf753"
# The whole case, once the landed release's venv exists.
WITHIN = 300
# B's change: a command in the first workflow task that A never issued.
ANCHOR = "        for _ in range(CLAIM_ATTEMPTS):\n"
B_CHANGE = '        workflow.upsert_memo({"release": "B"})\n'


def incompatible_change(checkout: Path) -> None:
    onboarding = checkout / "workflows" / "onboarding.py"
    code = onboarding.read_text()
    assert code.count(ANCHOR) == 1, "the onboarding workflow's first step moved: update B"
    onboarding.write_text(code.replace(ANCHOR, B_CHANGE + ANCHOR))


@dataclass(frozen=True)
class Releases:
    a: Release
    b: Release
    # B is A with `incompatible_change`: B's memo tells its code ran, and no request of
    # A's replays on B.
    planted: bool


@pytest.fixture(scope="module", params=["planted-change", "from-the-landed-release"])
def releases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Releases]:
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "planted-change":
        a = versioned_release("release-a", directory)
        b = versioned_release("release-b", directory / "b", incompatible_change)
        yield Releases(a, b, planted=True)
        return
    with earlier_release(LANDED, directory, build_id="release-a") as a:
        yield Releases(a, versioned_release("release-b", directory), planted=False)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    deployment = Deployment(tmp_path)
    try:
        await deployment.start()
        yield deployment
    finally:
        deployment.stop()


async def deploy(deployment: Deployment, release: Release, *args: str) -> dict[str, Any]:
    return (await deployment.command(release, "deploy", *args)).json()


async def on_version(deployment: Deployment, request: Request) -> tuple[str, int, bool]:
    """The build a request's workflow runs on, its behavior (1: pinned), and whether it
    has the planted change's memo (B's code ran it)."""
    handle = deployment.client.get_workflow_handle(f"onboarding-{request.onboarding_id}")
    info = (await handle.describe()).raw_description.workflow_execution_info
    version = info.versioning_info
    return version.deployment_version.build_id, version.behavior, "release" in info.memo.fields


async def test_a_requests_finish_on_a_while_b_is_current_and_a_is_reported_drained(
    releases: Releases, deployment: Deployment
) -> None:
    a, b = releases.a, releases.b
    off = [Request("approve", "awaiting_approval", "approved", new=("approve",), integration=False)]
    held = Request("held", "lead_open", "approved", new=("resume", "qualify", "won"))
    decided = Request("decided", "rejected", "rejected", old=("cancel",))
    approval_retrying = Request("approval retrying", "approved", "approved", old=("qualify",))
    on = [
        Request("lead won", "lead_open", "approved", new=("qualify", "won"), locale="it"),
        Request("opportunity lost", "opportunity_open", "rejected", ("qualify",), ("lost",)),
        held,
        decided,
        approval_retrying,
    ]
    received_retrying = Request("received retrying", "lead_open", "rejected", new=("cancel",))
    on_b = Request("on b", "", "rejected", new=("cancel",))
    requests = [*off, *on, received_retrying]
    started = time.monotonic()

    async with asyncio.timeout(WITHIN):
        # Release A, the deployment's first version: its first worker makes it current.
        await deployment.register_search_attributes(a.search_attributes())
        worker = await deployment.start_worker(a, "-off", SALES_INTEGRATION_ENABLED="false")
        await each(off, lambda r: open_request(deployment, a, r))
        # Their received emails out before the worker stops: a worker stopped mid-send
        # has the email sent again from the next one (two emails, one Message-ID).
        for request in off:
            await deployment.email_arrived(request.onboarding_id, "request-received")
        assert worker.stop() == 0, worker.tail()
        a_worker = await deployment.start_worker(a, "-on")
        await each(on, lambda r: open_request(deployment, a, r))
        await each(on, lambda r: decide_in_turn(deployment, a, r, r.old))
        held_now = await deployment.command(
            a, "hold", held.onboarding_id, "--note", "waiting for their papers", "--actor", "rep:a"
        )
        assert held_now.json()["held"] is not None, held_now.stdout
        for request in [*off, *on]:
            await deployment.email_arrived(request.onboarding_id, "request-received")
        await deployment.email_arrived(decided.onboarding_id, "prospect-rejected")
        deployment.stop_mail_server()
        await asyncio.gather(
            open_request(deployment, a, received_retrying),
            decide(deployment, a, approval_retrying, "won"),
        )
        assert approval_retrying.answer["notification"]["state"] == "sending"

        # Release B's workers start beside A's (migrating the stores A goes on using): B is
        # a version, not yet current.
        await deployment.register_search_attributes(b.search_attributes())
        b_worker = await deployment.start_worker(b)
        report = await deploy(deployment, b, "status")
        assert report["current"] == "release-a", report
        assert {v["build_id"]: v["state"] for v in report["versions"]} == {
            "release-a": "current",
            "release-b": "drained",
        }
        on_a = {
            (group["workflow_type"], group["stage"]): group["count"]
            for group in report["versions"][0]["open"]
        }
        assert on_a[("OnboardingWorkflow", "lead_open")] == 3, report
        # The operator makes B current: A drains.
        report = await deploy(deployment, b, "current", "release-b")
        assert {v["build_id"]: v["state"] for v in report["versions"]} == {
            "release-a": "draining",
            "release-b": "current",
        }

        # A new request starts on B, pinned there.
        await open_request(deployment, b, on_b)
        assert await on_version(deployment, on_b) == ("release-b", 1, releases.planted)
        requests.append(on_b)
        if releases.planted:
            # A held request cannot be moved to B: its history does not replay on B's code.
            moved = await deploy(deployment, b, "move", "release-a")
            refused = {w["workflow_id"]: w["refused"] for w in moved["workflows"]}
            assert not any(w["moved"] for w in moved["workflows"]), moved
            assert "nondetermin" in refused[f"onboarding-{held.onboarding_id}"].lower(), refused

        # A's requests are decided with B's command line, and finish on A's workers.
        deployment.start_mail_server()
        await each(requests, lambda r: decide_in_turn(deployment, b, r, r.new))
        await all_workflows_done(deployment, requests)
        finals = await asyncio.gather(*(status(deployment, b, r) for r in requests))
        for request, final in zip(requests, finals, strict=True):
            assert_finished(deployment, request, final)
            on_b_here = request is on_b
            assert await on_version(deployment, request) == (
                "release-b" if on_b_here else "release-a",
                1,
                on_b_here and releases.planted,
            ), request.label

        # Nothing is left pinned to A: the command says so, and A's workers stop.
        async def drained() -> dict[str, Any] | None:
            report = await deploy(deployment, b, "status")
            states = {v["build_id"]: v["state"] for v in report["versions"]}
            return report if states["release-a"] == "drained" else None

        report = await eventually(drained, 60, "release-a drained")
        assert a_worker.stop() == 0, a_worker.tail()
        # B alone answers what comes next.
        after = Request("after a", "", "rejected", new=("cancel",))
        await open_request(deployment, b, after)
        await decide_in_turn(deployment, b, after, after.new)
        await all_workflows_done(deployment, [*requests, after])
        assert (await on_version(deployment, after))[0] == "release-b"
        assert b_worker.running()
    which = (
        "B incompatible, no patch"
        if releases.planted
        else f"A the landed {a.name}, B this checkout; {a.installed_in:.0f} s for A's venv"
    )
    record(
        os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0],
        f"{len(requests) + 1} requests across a versioned deploy ({which}): A's finished on A,"
        f" new ones on B, A reported drained and stopped, {time.monotonic() - started:.0f} s",
    )
