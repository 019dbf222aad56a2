"""Two releases of the product side by side, as a deploy meets them.

A `Release` is a checkout with a venv of its own: its worker (`worker.py`) and its
command line (`starter.py`) run as real processes from that checkout. An earlier release
is a git worktree of its commit with a fresh venv, into which `pip install .` puts the
package and its dependencies (not the dev extras). A `Deployment` is what outlives a
deploy: the Temporal dev server, the mail sink and the stores (SQLite files), all in one
directory.

Only the product's outside is used here, so that the test keeps its meaning whatever
changes inside: the two commands, the settings' environment variables, Temporal's own
API, the stores' tables (the CONTRACT's) and the emails the sink keeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from scripts import temporal_dev
from scripts.mailsink import SpoolHandler, read_spool
from tests.conftest import eventually, free_port

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# The command line's exit statuses a careful caller answers by trying again with the
# same key: Temporal unreachable (5), recorded but not yet confirmed (6).
TRY_AGAIN = {5, 6}
SECRET = "a-secret-for-the-deploy-test-0123456789"


class Service:
    """A long-running child process, its output in a log file, stopped as systemd does."""

    def __init__(self, name: str, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.cwd, self.env = name, list(argv), cwd, env
        self.popen: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None
        self._log_file: IO[bytes] | None = None

    def start(self, logs: Path) -> None:
        self.log = logs / f"{self.name}.log"
        self._log_file = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then wait; SIGKILL only if it will not stop. Its exit status."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Answer:
    """What one command of the command line printed, and its exit status."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        assert self.code == 0, f"{' '.join(self.argv)}: exit {self.code}: {self.stderr.strip()}"
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed


@dataclass
class Release:
    """A checkout of the product and the Python of its own venv."""

    name: str
    checkout: Path
    python: Path
    # How long making its venv took, for an earlier release.
    installed_in: float = 0.0
    # Settings of its own, as its deploy pipeline sets them (a versioned release's build id).
    env: dict[str, str] = field(default_factory=dict)

    def worker(self, env: dict[str, str], tag: str = "") -> Service:
        return Service(
            f"worker-{self.name}{tag}",
            [str(self.python), "worker.py"],
            self.checkout,
            {**env, **self.env},
        )

    def search_attributes(self) -> list[str]:
        """`Name=Type` of each search attribute this release's worker wants registered."""
        listed = subprocess.run(
            [
                str(self.python), "-c",
                "from models import search_attributes as s; "
                "print(*(f'{k.name}={s.type_name(k.indexed_value_type)}' for k in s.ALL))",
            ],
            cwd=self.checkout, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, f"{self.name}'s search attributes: {listed.stderr}"
        return listed.stdout.split()

    async def command(self, env: dict[str, str], *args: str, timeout: float = 60) -> Answer:
        """`python starter.py ARGS`, run in the checkout; retried with the same `--key`,
        as a careful caller does, while no worker has taken it up yet."""
        if args[0] not in ("status", "deploy"):
            args = (*args, "--key", f"deploy-{uuid.uuid4().hex}")
        argv = [str(self.python), "starter.py", *args]
        deadline = time.monotonic() + timeout
        while True:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.checkout,
                env={**os.environ, **env, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(
                    process.communicate(), deadline - time.monotonic()
                )
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError(f"{' '.join(argv)}: no answer in {timeout:.0f} s") from None
            answer = Answer(argv, process.returncode or 0, out.decode(), err.decode())
            if answer.code not in TRY_AGAIN or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(1)


def this_release() -> Release:
    """The checkout these tests run from, with `make`'s venv."""
    return Release("new", PROJECT, Path(sys.executable))


# What a checkout holds besides its code: not part of a release.
NOT_RELEASED = shutil.ignore_patterns(
    ".git", ".venv", "var", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build"
)


def versioned_release(
    build_id: str, directory: Path, edit: Callable[[Path], None] | None = None
) -> Release:
    """This checkout as the release `build_id` (its `WORKER_BUILD_ID`), copied into
    `directory` and changed there by `edit(checkout)` if given; run with this venv, whose
    Python finds the copy's modules first (a script's own directory leads `sys.path`)."""
    if edit is None:
        return Release(build_id, PROJECT, Path(sys.executable), env={"WORKER_BUILD_ID": build_id})
    checkout = directory / "checkout"
    shutil.copytree(PROJECT, checkout, ignore=NOT_RELEASED)
    edit(checkout)
    return Release(build_id, checkout, Path(sys.executable), env={"WORKER_BUILD_ID": build_id})


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True, timeout=60)


@contextmanager
def earlier_release(commit: str, directory: Path, build_id: str | None = None) -> Iterator[Release]:
    """`commit` checked out as a git worktree in `directory`, installed into a venv of its
    own (pip's cache makes that about 20 s); the worktree is removed afterwards. A
    versioned release's workers take `build_id` (its `WORKER_BUILD_ID`) if given, else
    their own: the package version and the commit, as in production."""
    if git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        pytest.fail(
            f"commit {commit}, the release this test deploys over, is not in this clone"
            " (a shallow clone?): fetch the whole history of main"
        )
    checkout, venv = directory / "checkout", directory / "venv"
    added = git("worktree", "add", "--detach", str(checkout), commit)
    assert added.returncode == 0, f"git worktree add: {added.stderr}"
    started = time.monotonic()
    try:
        # This venv's pip installs into the new one: quicker than bootstrapping its own.
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
        )
        installed = subprocess.run(
            [
                sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                "install", "--quiet", "--disable-pip-version-check", str(checkout),
            ],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert installed.returncode == 0, f"installing {commit}: {installed.stderr[-3000:]}"
        yield Release(
            commit[:7],
            checkout,
            venv / "bin" / "python",
            time.monotonic() - started,
            env={"WORKER_BUILD_ID": build_id} if build_id else {},
        )
    finally:
        git("worktree", "remove", "--force", str(checkout))
        shutil.rmtree(venv, ignore_errors=True)


class Deployment:
    """What a deploy leaves running: Temporal, the mail server and the stores."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.logs = directory / "logs"
        self.logs.mkdir()
        self.spool = directory / "mail"
        self.temporal_port, self.smtp_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.temporal_port}"
        self.server = Service(
            "temporal",
            [
                str(BIN / "temporal"), "server", "start-dev",
                "--db-filename", str(directory / "temporal.db"),
                "--port", str(self.temporal_port), "--headless", "--log-level", "error",
                *temporal_dev.TUNING,
            ],
            directory,
            {},
        )  # fmt: skip
        self.urls = {
            store: f"sqlite:///{directory / f'{store}.db'}" for store in ("sales", "commerce")
        }
        self.env = {
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_NAMESPACE": "default",
            "ONBOARDING_TASK_QUEUE": f"deploy-{uuid.uuid4().hex[:8]}",
            "SALES_DATABASE_URL": self.urls["sales"],
            "COMMERCE_DATABASE_URL": self.urls["commerce"],
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "SMTP_TIMEOUT_SECONDS": "2",
            "MAIL_FROM": "B2B Partner Onboarding <no-reply@b2b.test>",
            "B2B_SITE_URL": "http://b2b.test",
            "WEB_SECRET_KEY": SECRET,
            "WORKER_METRICS_ADDRESS": "",
            "WORKER_HEALTH_ADDRESS": "",
            # A decided request's email applies again within the case's minutes.
            "REAPPLY_COOLDOWN": "0",
        }
        self.services: list[Service] = [self.server]
        # Command-line processes at once: more only queue for the machine's cores.
        self._commands = asyncio.Semaphore(4)
        self.sink: Controller | None = None
        self._client: Client | None = None
        self._engines: dict[str, Engine] = {}

    async def start(self) -> None:
        self.server.start(self.logs)

        async def connected() -> Client | None:
            try:
                return await Client.connect(self.address)
            except RuntimeError:
                return None

        self._client = await eventually(connected, 30, f"Temporal at {self.address}")
        self.start_mail_server()

    @property
    def client(self) -> Client:
        assert self._client is not None
        return self._client

    def stop(self) -> None:
        for service in reversed(self.services):
            # Shown by pytest when the test fails; the logs stay in the test's directory.
            print(f"--- {service.name} ({service.log}):\n{service.tail()}")
            service.stop()
        self.stop_mail_server()
        for engine in self._engines.values():
            engine.dispose()

    async def command(self, release: Release, *args: str, timeout: float = 60) -> Answer:
        """`release`'s command line, pointed at this deployment."""
        async with self._commands:
            return await release.command(self.env, *args, timeout=timeout)

    # --- the mail server --------------------------------------------------------------

    def start_mail_server(self) -> None:
        self.sink = Controller(SpoolHandler(self.spool), hostname="127.0.0.1", port=self.smtp_port)
        self.sink.start()

    def stop_mail_server(self) -> None:
        """Down: the port refuses connections, as a relay that is down does."""
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

    def emails(self, onboarding_id: str) -> list[EmailMessage]:
        return [m for m in read_spool(self.spool) if m["X-Onboarding-Id"] == onboarding_id]

    async def email_arrived(self, onboarding_id: str, event: str, timeout: float = 30) -> None:
        async def arrived() -> bool | None:
            events = {m["X-Onboarding-Event"] for m in self.emails(onboarding_id)}
            return True if event in events else None

        await eventually(arrived, timeout, f"the {event} email of {onboarding_id}")

    # --- Temporal -----------------------------------------------------------------------

    async def register_search_attributes(self, attributes: Sequence[str]) -> None:
        """Each `Name=Type` the namespace lacks, with the Temporal CLI, as "Register the
        search attributes" (docs/production.md) does before a worker that needs them starts."""
        response = await self.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        for attribute in attributes:
            name, kind = attribute.split("=")
            if name in response.custom_attributes:
                continue
            created = subprocess.run(
                [
                    str(BIN / "temporal"), "operator", "search-attribute", "create",
                    "--address", self.address, "--namespace", "default",
                    "--name", name, "--type", kind,
                ],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert created.returncode == 0, f"registering {attribute}: {created.stderr}"

    async def start_worker(self, release: Release, tag: str = "", **env: str) -> Service:
        """`release`'s worker, once it polls the task queue (its poller identity is the
        SDK's default, `<pid>@<host>`)."""
        worker = release.worker({**self.env, **env}, tag)
        self.services.append(worker)
        worker.start(self.logs)

        async def polling() -> bool | None:
            assert worker.running(), f"{worker.name} exited:\n{worker.tail()}"
            response = await self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=self.env["ONBOARDING_TASK_QUEUE"]),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            mine = f"{worker.pid}@"
            return True if any(p.identity.startswith(mine) for p in response.pollers) else None

        await eventually(polling, 60, f"{worker.name} polling")
        return worker

    # --- the stores ---------------------------------------------------------------------

    def query(self, store: str, sql: str, **params: Any) -> list[Any]:
        """Rows of a plain SQL query on one store ("sales" or "commerce")."""
        if store not in self._engines:
            self._engines[store] = create_engine(self.urls[store])
        with self._engines[store].connect() as connection:
            return list(connection.execute(text(sql), params).all())
