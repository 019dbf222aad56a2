"""Workers and the web app on other hosts: each in a network namespace of its own.

The Temporal dev server, two workers and the web app each get a namespace and an address
on a bridge (veth pairs); the test, the mail sink and the stores' files stay on the host.
Requests are submitted through the web app's API and decided through Temporal while one
worker's host is cut off the network (its link down: packets dropped, no reset) and then
healed. The counts are the fault suite's: nothing lost, nothing duplicated.

Network namespaces need root (CI has them); where they are missing the test fails saying
so rather than passing silently.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from temporalio.client import Client

from client.converter import data_converter
from models import search_attributes
from scripts import temporal_dev
from scripts.mailsink import SpoolHandler
from stores import Stores
from stores.engine import make_engine
from tests.conftest import ADMIN, REP, eventually
from tests.faults.harness import BIN, PATHS, Process, Site, connected
from tests.faults.test_faults import decide_all
from tests.scenario import a_request

pytestmark = [pytest.mark.faults, pytest.mark.storm]

REQUESTS = 100
CUT_FOR = 15.0
TEMPORAL_PORT, WEB_PORT = 7233, 8000
TOKENS = ",".join(":".join(user) for user in (REP, ADMIN))


def ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    ran = subprocess.run([*prefix, "ip", *args], capture_output=True, text=True)
    if ran.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {ran.stderr.strip()}")


class Network:
    """A bridge on the host, and hosts (namespaces) on it, each with one address."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}{uuid.uuid4().hex[:3]}"
        self.bridge = f"b2b{tag}"
        self.prefix = f"10.213.{random.randrange(1, 254)}"
        self.gateway = f"{self.prefix}.1"
        self.hosts: dict[str, tuple[str, str]] = {}
        self.tag = tag

    def create(self) -> None:
        try:
            ip("link", "add", self.bridge, "type", "bridge")
        except (RuntimeError, FileNotFoundError) as err:
            pytest.fail(f"network namespaces are not available here (root and iproute2): {err}")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def host(self, name: str) -> str:
        """A namespace with an address on the bridge: the address."""
        number = len(self.hosts) + 2
        namespace = f"b2b-{self.tag}-{name}"
        outside, inside = f"v{self.tag}{number}h", f"v{self.tag}{number}n"
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", namespace)
        ip("link", "set", outside, "master", self.bridge, "up")
        address = f"{self.prefix}.{number}"
        ip("addr", "add", f"{address}/24", "dev", inside, namespace=namespace)
        ip("link", "set", inside, "up", namespace=namespace)
        ip("link", "set", "lo", "up", namespace=namespace)
        self.hosts[name] = (namespace, inside)
        return address

    def run_in(self, name: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[name][0], *argv]

    @contextmanager
    def cut_off(self, name: str) -> Iterator[None]:
        """The host's link down: its packets are dropped, its connections left hanging."""
        namespace, inside = self.hosts[name]
        ip("link", "set", inside, "down", namespace=namespace)
        try:
            yield
        finally:
            ip("link", "set", inside, "up", namespace=namespace)

    def destroy(self) -> None:
        for namespace, _ in self.hosts.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class NetworkSite(Site):
    """The fault suite's site, with the server, the workers and the web app on hosts."""

    def __init__(self, directory: Path, stores: Stores, urls: dict[str, str], net: Network):
        super().__init__(directory, stores, urls["sales"], urls["commerce"])
        self.net = net
        self.server_address = net.host("temporal")
        net.host("worker1")
        net.host("worker2")
        self.web_address = net.host("web")
        temporal = f"{self.server_address}:{TEMPORAL_PORT}"
        # All its addresses: the dev server dials its own services on 127.0.0.1, and its
        # namespace holds nothing else.
        self.server = Process(
            "temporal",
            net.run_in(
                "temporal",
                [
                    str(BIN / "temporal"), "server", "start-dev",
                    "--db-filename", str(directory / "temporal.db"),
                    "--ip", "0.0.0.0", "--port", str(TEMPORAL_PORT),
                    "--headless", "--log-level", "error",
                    *search_attributes.dev_server_flags(), *temporal_dev.TUNING,
                ],
            ),
            {},
            ready="Temporal Server:",
        )  # fmt: skip
        self.worker_env.update(TEMPORAL_ADDRESS=temporal, SMTP_HOST=net.gateway)
        self.settings = self.settings.model_copy(update={"temporal_address": temporal})
        self.web = Process(
            "web",
            net.run_in("web", [sys.executable, "-m", "web"]),
            {
                "TEMPORAL_ADDRESS": temporal,
                "ONBOARDING_TASK_QUEUE": self.task_queue,
                "SALES_DATABASE_URL": urls["sales"],
                "COMMERCE_DATABASE_URL": urls["commerce"],
                "WEB_HOST": self.web_address,
                "WEB_PORT": str(WEB_PORT),
                "API_TOKENS": TOKENS,
                "WEB_SECRET_KEY": "a-secret-for-the-tests-only-0123456789",
                "SUBMIT_RATE_LIMIT": "100000/minute",
            },
            ready="Uvicorn running on",
        )

    async def start(self) -> None:
        await super().start()
        self.web.start()

    async def connect(self) -> Client:
        return await connected(
            f"{self.server_address}:{TEMPORAL_PORT}",
            data_converter(self.settings, self.stores.commerce),
        )

    def start_sink(self, slow_once: float | None = None) -> None:

        self.sink = Controller(
            SpoolHandler(self.spool), hostname=self.net.gateway, port=self.smtp_port
        )
        self.sink.start()

    def start_worker_on(self, host: str) -> Process:
        worker = Process(
            f"worker-{host}",
            self.net.run_in(host, [sys.executable, "worker.py"]),
            self.worker_env,
            ready="worker polling",
        )
        worker.start()
        self.workers.append(worker)
        return worker

    async def _submit_one(self, timeout: float) -> str:
        """Through the web app's API, as a partner's browser or system would, with its key."""
        body = a_request().model_dump(mode="json", exclude_none=True)
        key = f"net-{uuid.uuid4().hex}"
        async with httpx.AsyncClient(timeout=30) as http:

            async def answered() -> str:
                try:
                    answer = await http.post(
                        f"http://{self.web_address}:{WEB_PORT}/api/onboarding-requests",
                        json=body,
                        headers={"Idempotency-Key": key},
                    )
                except httpx.TransportError as err:
                    raise AssertionError(f"submission {key} never answered: {err!r}") from err
                if answer.status_code == 202 and "onboarding_id" in answer.json():
                    return str(answer.json()["onboarding_id"])
                raise AssertionError(f"submission {key} never answered: {answer.status_code}")

            return await eventually(answered, timeout, every=0.5)

    def stop(self) -> None:
        self.web.stop()
        super().stop()


@pytest.fixture
async def network_site(tmp_path: Path) -> AsyncIterator[NetworkSite]:
    net = Network()
    net.create()
    urls = {store: f"sqlite:///{tmp_path / f'{store}.db'}" for store in ("sales", "commerce")}
    stores = Stores(sales=make_engine(urls["sales"]), commerce=make_engine(urls["commerce"]))
    stores.migrate()
    try:
        site = NetworkSite(tmp_path, stores, urls, net)
        await site.start()
        try:
            yield site
        finally:
            site.stop()
    finally:
        stores.dispose()
        net.destroy()


async def test_10_a_storm_while_one_workers_host_is_cut_off_and_healed(
    network_site: NetworkSite,
) -> None:
    site = network_site
    site.start_worker_on("worker1")
    site.start_worker_on("worker2")
    rng = random.Random(10)
    ids = await site.submit(REQUESTS)
    paths = {oid: rng.choice(list(PATHS)) for oid in ids}

    async def partition() -> None:
        await asyncio.sleep(1)
        with site.net.cut_off("worker1"):
            await asyncio.sleep(CUT_FOR)

    async def work() -> None:
        await site.recorded(list(paths), timeout=300)
        for step in (0, 1):
            await decide_all(site, paths, step)

    await asyncio.gather(partition(), work())
    tally = await site.tally(paths)

    # One resend allowed: a message the sink took while its answer was cut off is sent
    # again, with the same Message-ID, as in case 5.
    tally.assert_nothing_lost_or_duplicated(resends=1)
    assert all(worker.popen and worker.popen.poll() is None for worker in site.workers)
