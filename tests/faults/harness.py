"""The product on real processes, and the counts every fault case ends with.

A `Site` runs a Temporal dev server (state in a file, so it can be restarted), worker
processes that can be killed with SIGKILL, an SMTP sink that can be stopped or made
slow, and both stores. `Site.tally` computes, from both stores, the sink and Temporal:
requests lost, duplicate rows, requests with exactly the right emails (one "we received
your request", one of the decision, and an expired request's reminders), and duplicate
deliveries.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from temporalio.client import Client
from temporalio.converter import DataConverter

from client.connection import NotYetConfirmed, TemporalUnavailable
from client.converter import data_converter
from client.requests import decide, status, submit
from models import search_attributes
from models.lifecycle import Action, Stage
from models.status import DecisionAnswer, EmailKind, OnboardingStatus
from scripts import temporal_dev
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from stores import Stores
from tests.conftest import TEST_SECRET, eventually, free_port
from tests.scenario import ROWS_OF_A_WON_REQUEST, a_request, row_counts

PROJECT = Path(__file__).resolve().parents[2]
REPORT = PROJECT / "test-output" / "faults.txt"
BIN = Path(sys.executable).parent

# The paths a request can take, as the decisions a rep makes on it.
PATHS: dict[str, tuple[Action, ...]] = {
    "won": (Action.QUALIFY, Action.WON),
    "lost": (Action.QUALIFY, Action.LOST),
    "cancelled": (Action.CANCEL,),
}
# A careful caller waits a moment before it tries again, as the API's Retry-After asks:
# Temporal refuses an Update at once while the request's task is failing over, and
# callers retrying in a tight loop would keep a recovering server busy.
RETRY_AFTER = 1.0
FINAL = {
    "won": Stage.APPROVED,
    "lost": Stage.REJECTED,
    "cancelled": Stage.REJECTED,
    # Left undecided past EXPIRE_AFTER (`EXPIRING`): rejected by the system.
    "expired": Stage.REJECTED,
}
# Every request's emails: received on submission, then the decision's, one of each.
EMAILS = {
    Stage.APPROVED: {EmailKind.REQUEST_RECEIVED.event, EmailKind.PROSPECT_APPROVED.event},
    Stage.REJECTED: {EmailKind.REQUEST_RECEIVED.event, EmailKind.PROSPECT_REJECTED.event},
}
# Clocks of seconds: reminded at 3 s and 6 s, expired at 8 s (the reminder due at 9 s
# never is). Set in a worker's environment, they leave a request the "expired" path.
EXPIRING = {"REMIND_AFTER": "3", "REMIND_EVERY": "3", "EXPIRE_AFTER": "8"}
EXPIRING_REMINDERS = 2


def expected_emails(path: str) -> Counter[str]:
    """How many distinct messages of each kind a request of `path` ends with."""
    expected = Counter(EMAILS[FINAL[path]])
    if path == "expired":
        expected[EmailKind.TEAM_REMINDER.event] = EXPIRING_REMINDERS
    return expected


# Every row each path leaves in both stores, exactly.
ROWS: dict[str, dict[str, int]] = {
    "won": ROWS_OF_A_WON_REQUEST,
    "lost": {
        **ROWS_OF_A_WON_REQUEST,
        "customer_hierarchy": 0,
        "customer_hierarchy_member": 0,
    },
    "cancelled": {
        **{table: 0 for table in ROWS_OF_A_WON_REQUEST},
        "lead": 1,
        "timeline_note": 2,
        "prospect": 1,
        "email_message": 2,
    },
}
# Expired: as cancelled (by the system), with its reminders in the outbox.
ROWS["expired"] = {**ROWS["cancelled"], "email_message": 2 + EXPIRING_REMINDERS}


async def connected(address: str, converter: DataConverter) -> Client:
    """A client of the Temporal server at `address`, once it answers (it may be starting)."""

    async def answering() -> Client:
        try:
            return await Client.connect(address, data_converter=converter)
        except RuntimeError as err:
            raise AssertionError(f"Temporal at {address} does not answer: {err}") from err

    return await eventually(answering, 30, every=0.2)


class Process:
    """A child process whose output is kept, started and killed at will."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], ready: str) -> None:
        self.name, self.argv, self.env, self.ready_text = name, list(argv), env, ready
        self.popen: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    def start(self, timeout: float = 60) -> None:
        self._ready.clear()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=PROJECT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.popen,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            tail = "".join(self.output[-20:])
            raise AssertionError(f"{self.name} did not start in {timeout}s:\n{tail}")

    def _read(self, popen: subprocess.Popen[str]) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            self.output.append(line)
            if self.ready_text in line:
                self._ready.set()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last words, as a crash or an OOM kill."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class SlowOnceHandler(SpoolHandler):
    """Keeps each message, but answers its first delivery only after the client gave up."""

    def __init__(self, directory: Path, delay: float) -> None:
        super().__init__(directory)
        self.delay = delay
        self.seen: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        content = (envelope.original_content or envelope.content).decode(errors="replace")
        message_id = next(
            (line for line in content.splitlines() if line.lower().startswith("message-id:")), ""
        )
        if message_id not in self.seen:
            self.seen.add(message_id)
            await asyncio.sleep(self.delay)
        return answer


@dataclass
class Tally:
    """What every fault case ends with."""

    requests: int
    lost: list[str] = field(default_factory=list)
    duplicate_rows: list[str] = field(default_factory=list)
    with_the_right_emails: int = 0
    deliveries: int = 0
    distinct_messages: int = 0
    # The most times one email reached the mail server.
    most_copies: int = 0

    @property
    def duplicate_deliveries(self) -> int:
        return self.deliveries - self.distinct_messages

    @property
    def right_emails_share(self) -> float:
        return self.with_the_right_emails / self.requests if self.requests else 1.0

    def line(self) -> str:
        return (
            f"{self.requests} requests: lost {len(self.lost)}, duplicate rows"
            f" {len(self.duplicate_rows)}, exactly the right emails"
            f" {self.right_emails_share:.0%}, duplicate deliveries {self.duplicate_deliveries}"
        )

    def assert_nothing_lost_or_duplicated(self, resends: int = 0) -> None:
        """`resends`: how often the case may make one email go out again; a worker killed
        between the server's acceptance and the outbox's mark sends it once more."""
        assert self.lost == [], f"lost: {self.lost}"
        assert self.duplicate_rows == [], f"duplicate rows: {self.duplicate_rows}"
        assert self.right_emails_share == 1.0, f"the right emails for {self.right_emails_share:.0%}"
        assert self.most_copies <= 1 + resends, f"an email went out {self.most_copies} times"


class Site:
    """Everything the product runs on, for one fault case."""

    def __init__(self, directory: Path, stores: Stores, sales_url: str, commerce_url: str) -> None:
        self.directory = directory
        self.stores = stores
        self.spool = directory / "mail"
        self.temporal_port = free_port()
        self.smtp_port = free_port()
        self.task_queue = f"faults-{directory.name}"
        self.server = Process(
            "temporal",
            [
                str(BIN / "temporal"), "server", "start-dev",
                "--db-filename", str(directory / "temporal.db"),
                "--port", str(self.temporal_port), "--headless", "--log-level", "error",
                *search_attributes.dev_server_flags(), *temporal_dev.TUNING,
            ],
            {},
            ready="Temporal Server:",
        )  # fmt: skip
        self.worker_env = {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "ONBOARDING_TASK_QUEUE": self.task_queue,
            "SALES_DATABASE_URL": sales_url,
            "COMMERCE_DATABASE_URL": commerce_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "SMTP_TIMEOUT_SECONDS": "2",
            "MAIL_FROM": "B2B Partner Onboarding <no-reply@b2b.test>",
            "WEB_SECRET_KEY": TEST_SECRET,
            "FAULT_PAUSE_FILE": str(directory / "pause"),
            "FAULT_COMMITTED_FILE": str(directory / "committed"),
        }
        self.workers: list[Process] = []
        self.sink: Controller | None = None
        self.client: Client | None = None
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            temporal_address=f"127.0.0.1:{self.temporal_port}",
            onboarding_task_queue=self.task_queue,
        )

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.server.start()
        self.client = await self.connect()
        self.start_sink()

    async def connect(self) -> Client:
        return await connected(
            f"127.0.0.1:{self.temporal_port}",
            data_converter(self.settings, self.stores.commerce),
        )

    def start_worker(self) -> Process:
        worker = Process(
            f"worker-{len(self.workers) + 1}",
            [sys.executable, "tests/faults/pausing_worker.py"],
            self.worker_env,
            ready="worker polling",
        )
        worker.start()
        self.workers.append(worker)
        return worker

    def start_sink(self, slow_once: float | None = None) -> None:
        handler = (
            SpoolHandler(self.spool)
            if slow_once is None
            else SlowOnceHandler(self.spool, slow_once)
        )
        self.sink = Controller(handler, hostname="127.0.0.1", port=self.smtp_port)
        self.sink.start()

    def stop_sink(self) -> None:
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

    async def restart_server(self) -> None:
        self.server.stop()
        self.server.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.stop_sink()
        self.server.stop()

    # --- driving requests -------------------------------------------------------------

    async def submit(self, count: int, timeout: float = 300) -> list[str]:
        """Submit `count` requests at once, each retried with its own idempotency key."""
        return list(await asyncio.gather(*(self._submit_one(timeout) for _ in range(count))))

    async def _submit_one(self, timeout: float) -> str:
        assert self.client is not None
        client = self.client
        request, key = a_request(), f"faults-{uuid.uuid4().hex}"

        async def answered() -> str:
            try:
                submitted = await submit(client, request, self.settings, idempotency_key=key)
            except (TemporalUnavailable, NotYetConfirmed) as err:
                raise AssertionError(f"submission {key} has no answer: {err}") from err
            return submitted.onboarding_id

        return await eventually(answered, timeout, every=RETRY_AFTER)

    async def recorded(self, onboarding_ids: Sequence[str], timeout: float = 60) -> None:
        await self.until(onboarding_ids, lambda s: s.stage is not Stage.SUBMITTED, timeout)

    async def decide(
        self, onboarding_id: str, action: Action, timeout: float = 120
    ) -> OnboardingStatus:
        """Decide as a careful caller does: on no answer, again (soon) with the same decision id."""
        client = self.client
        assert client is not None
        decision_id = f"faults-{uuid.uuid4().hex}"

        async def answered() -> DecisionAnswer:
            try:
                return await decide(
                    client, onboarding_id, action, actor="faults", decision_id=decision_id
                )
            except (TemporalUnavailable, NotYetConfirmed) as err:
                raise AssertionError(
                    f"{action.value} of {onboarding_id}: no answer: {err}"
                ) from err

        await eventually(answered, timeout, every=RETRY_AFTER)
        # Its whole status once applied (the Update answers with less); accepted and still
        # being applied, should a store or the worker have been down: waited for.
        applied = await self.until([onboarding_id], lambda s: s.pending_action is None, timeout)
        return applied[onboarding_id]

    async def until(
        self, onboarding_ids: Sequence[str], done: Any, timeout: float = 120
    ) -> dict[str, OnboardingStatus]:
        """Poll until `done(status)` holds for every request."""
        client = self.client
        assert client is not None
        pending = set(onboarding_ids)
        seen: dict[str, OnboardingStatus] = {}

        async def all_there() -> dict[str, OnboardingStatus]:
            for onboarding_id in list(pending):
                try:
                    current = await status(client, onboarding_id)
                except TemporalUnavailable:
                    continue
                seen[onboarding_id] = current
                if done(current):
                    pending.discard(onboarding_id)
            assert not pending, f"{len(pending)} requests never got there: {sorted(pending)}"
            return seen

        return await eventually(all_there, timeout, every=0.2)

    async def finished(self, onboarding_ids: Sequence[str], timeout: float = 120) -> None:
        await self.until(onboarding_ids, lambda s: s.workflow_status == "completed", timeout)

    # --- counting -----------------------------------------------------------------------

    async def tally(self, paths: dict[str, str]) -> Tally:
        """The counts, once every request's workflow has completed."""
        await self.finished(list(paths))
        assert self.client is not None
        messages = [m for m in read_spool(self.spool) if m["X-Onboarding-Id"] in paths]
        tally = Tally(
            requests=len(paths),
            deliveries=len(messages),
            distinct_messages=len({m["Message-ID"] for m in messages}),
        )
        for onboarding_id, path in paths.items():
            current = await status(self.client, onboarding_id)
            counts = row_counts(self.stores, onboarding_id)
            extra = {t: n for t, n in counts.items() if n > ROWS[path].get(t, 0)}
            missing = {t: n for t, n in ROWS[path].items() if counts.get(t, 0) < n}
            if extra:
                tally.duplicate_rows.append(f"{onboarding_id}: {extra}")
            if missing or current.stage is not FINAL[path]:
                tally.lost.append(f"{onboarding_id} {current.stage}: missing {missing}")
            mine = [m for m in messages if m["X-Onboarding-Id"] == onboarding_id]
            copies = Counter(m["Message-ID"] for m in mine)
            tally.most_copies = max(tally.most_copies, *copies.values(), 0)
            # One distinct message of each expected kind, and of no other.
            kinds = Counter(
                event for event, _ in {(m["X-Onboarding-Event"], m["Message-ID"]) for m in mine}
            )
            if kinds == expected_emails(path):
                tally.with_the_right_emails += 1
        case = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        record(case, f"{tally.line()}, {time.monotonic() - self.started_at:.0f} s")
        return tally


def record(case: str, line: str) -> None:
    """Every case's last counts, one line each, for a person to read after the suite."""
    REPORT.parent.mkdir(exist_ok=True)
    lines = REPORT.read_text().splitlines() if REPORT.exists() else []
    lines = [kept for kept in lines if not kept.startswith(f"{case}: ")] + [f"{case}: {line}"]
    REPORT.write_text("\n".join(sorted(lines)) + "\n")
