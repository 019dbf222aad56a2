"""Runs the Temporal worker: builds the stores and the mailer, registers everything."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import (
    Worker,
    WorkerDeploymentConfig,
)

from activities.commerce import CommerceActivities
from activities.dual_write import DualWriteActivities
from activities.email import EmailActivities, EmailRenderer
from activities.partners import PartnerActivities
from activities.requests import RequestActivities, request_timing
from activities.sales import SalesActivities
from client import deployment
from client.connection import Connection, OnboardingError, connect, exit_process
from client.dual_write import ensure_running
from client.personal_data import shred_keys
from infra import health, logs, tracing
from infra.links import site_secret
from models import search_attributes
from settings import PROBE_PORT_STEP, WORKERS_PER_HOST, Settings, describe, get_settings
from stores import Stores
from stores.migrations import SchemaMismatch
from workflows.interceptors import INTERCEPTORS
from workflows.registry import WORKFLOWS, workflow_runner

# Store activities are blocking (SQLAlchemy) and run on this many threads.
ACTIVITY_THREADS = 32
# Workflows kept in memory between their tasks, each about 0.15 MB: a request's, for
# many more requests than are worked at once. Beyond it,
# a request idle while it waits for a rep is evicted and replayed from its short history
# when the rep acts, so memory stays flat however many requests wait (see the bench).
MAX_CACHED_WORKFLOWS = 500
# How often the worker destroys the data keys of requests anonymised while their workflow
# ran, now that it has closed (client.personal_data.shred_keys).
SHRED_EVERY = 300.0


class MissingSearchAttributes(Exception):
    pass


def deployment_config(settings: Settings) -> WorkerDeploymentConfig:
    """This build as a version of the deployment. Each workflow type says whether it is
    pinned to the version that started it or moves to the current one (its
    `versioning_behavior`), which only a versioned worker may run."""
    return WorkerDeploymentConfig(
        version=deployment.this_version(settings), use_worker_versioning=True
    )


def build_worker(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    task_queue: str | None = None,
) -> Worker:
    """The worker, its workflows and activities on the task queue."""
    sales = SalesActivities(stores.sales)
    commerce = CommerceActivities(stores.commerce, settings.sales_integration_enabled)
    renderer = EmailRenderer(settings.b2b_site_url, site_secret(settings))
    email = EmailActivities(stores.commerce, settings, renderer)
    partners = PartnerActivities(stores.commerce)
    requests = RequestActivities(commerce, sales, request_timing(settings))
    dual_write = DualWriteActivities(stores.sales, stores.commerce)
    return Worker(
        client,
        task_queue=task_queue or settings.onboarding_task_queue,
        workflows=WORKFLOWS,
        activities=[
            requests.record_request,
            requests.apply_decision,
            requests.anonymise_request,
            commerce.release_email,
            commerce.record_hold,
            email.send_team_reminder,
            email.send_onboarding_email,
            email.resend_onboarding_email,
            email.send_access_link,
            partners.add_partner_user,
            partners.remove_partner_user,
            partners.partner_user_facts,
            partners.expire_links,
            dual_write.sync_batch,
        ],
        workflow_runner=workflow_runner(),
        interceptors=[*INTERCEPTORS, logs.RefusalsInOneLine()],
        activity_executor=activity_executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        max_concurrent_local_activities=ACTIVITY_THREADS,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        deployment_config=deployment_config(settings),
    )


async def check_search_attributes(client: Client, namespace: str) -> None:
    """Refuse to start without the search attributes admins filter on, naming the missing."""
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    problems = []
    for key in search_attributes.ALL:
        have = response.custom_attributes.get(key.name)
        want = search_attributes.type_name(key.indexed_value_type)
        if have is None:
            problems.append(f"{key.name} ({want}) is missing")
        elif have != key.indexed_value_type:
            problems.append(f"{key.name} is {search_attributes.type_name(have)}, not {want}")
    if problems:
        flags = " ".join(search_attributes.dev_server_flags())
        raise MissingSearchAttributes(
            f"namespace {namespace!r}: {'; '.join(problems)}. Register them with "
            f"`temporal operator search-attribute create`, or start the dev server with {flags}"
        )


def telemetry(metrics_address: str) -> TelemetryConfig:
    """The SDK's own metrics and the activities' (`b2b_emails`) in Prometheus text."""
    return TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address))


def probe_addresses(configured: str) -> list[str]:
    """Where a probe may listen, in order: the address configured, then the next pairs of
    ports up, so that each worker sharing a host finds its own; none for empty."""
    if not configured:
        return []
    host, _, port = configured.rpartition(":")
    return [f"{host}:{int(port) + PROBE_PORT_STEP * n}" for n in range(WORKERS_PER_HOST)]


def serve_metrics(configured: str) -> str | None:
    """Make the default runtime serve Prometheus at the first free address; that address."""
    taken: ValueError | None = None
    for address in probe_addresses(configured):
        try:
            Runtime.set_default(Runtime(telemetry=telemetry(address)))
            return address
        except ValueError as err:
            if "in use" not in str(err):
                raise
            taken = err
    if taken is not None:
        raise taken
    return None


async def serve_health(
    settings: Settings, client: Client, stores: Stores
) -> tuple[asyncio.Server | None, str | None]:
    """/healthz and /readyz at the first free address; the server and that address."""
    temporal = Connection(settings, client)
    taken: OSError | None = None
    for address in probe_addresses(settings.worker_health_address):
        try:
            server = await health.serve(
                address, lambda: health.readiness(settings, temporal, stores)
            )
            return server, address
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            taken = err
    if taken is not None:
        raise taken
    return None, None


async def shred_keys_every(client: Client, interval: float = SHRED_EVERY) -> None:
    """Destroy the keys that may go, every `interval` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            shredded = await shred_keys(client)
        except Exception:
            logging.exception("data keys: the sweep failed; it runs again in %.0f s", interval)
            continue
        if shredded:
            logging.info("data keys: %d destroyed, their workflows closed", shredded)


async def main() -> int:
    # Every line redacted of email addresses, whoever prints it (our code never does).
    logs.install(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every migration context it opens; a person needs only its errors.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = get_settings()
    except ValidationError as err:
        print(f"worker: {describe(err)}", file=sys.stderr)
        return 1
    try:
        # Before anything connects: every client and worker reports through this runtime.
        metrics_at = serve_metrics(settings.worker_metrics_address)
    except ValueError as err:
        print(
            f"worker: cannot serve metrics at {settings.worker_metrics_address}: {err}",
            file=sys.stderr,
        )
        return 1
    tracing.configure(settings, "b2b-onboarding-worker")
    stores = Stores.from_settings(settings)
    try:
        # The requests' data keys are kept in Commerce (infra/encryption.py).
        client = await connect(settings, stores.commerce)
        await check_search_attributes(client, client.namespace)
    except (OnboardingError, MissingSearchAttributes) as err:
        print(f"worker: {err}", file=sys.stderr)
        return 1
    try:
        stores.migrate()
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        print(f"worker: cannot open the stores: {reason}", file=sys.stderr)
        return 1
    except SchemaMismatch as err:
        print(f"worker: {err}", file=sys.stderr)
        return 1
    logging.info(
        "stores: sales %s, commerce %s; mail via %s:%s; Sales integration %s",
        stores.sales.url.render_as_string(hide_password=True),
        stores.commerce.url.render_as_string(hide_password=True),
        settings.smtp_host,
        settings.smtp_port,
        "on" if settings.sales_integration_enabled else "off",
    )

    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    try:
        probes, health_at = await serve_health(settings, client, stores)
    except OSError as err:
        print(
            f"worker: cannot serve health at {settings.worker_health_address}: {err}",
            file=sys.stderr,
        )
        return 1
    logging.info("probes: metrics at %s, health at %s", metrics_at or "none", health_at or "none")
    executor = ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="activity")
    shredding = asyncio.create_task(shred_keys_every(client))
    code = 0
    async with build_worker(client, settings, stores, executor):
        version = deployment.this_version(settings)
        try:
            current = await deployment.make_current_if_none(client, settings)
        except (deployment.DeploymentError, RPCError) as err:
            print(f"worker: deployment {version.deployment_name!r}: {err}", file=sys.stderr)
            code = 1
        else:
            if current != version.build_id:
                current += f"; `deploy current {version.build_id}` makes this build current"
            logging.info(
                "worker polling task queue %s as build %s of deployment %s (current: %s)",
                settings.onboarding_task_queue,
                version.build_id,
                version.deployment_name,
                "this build" if current == version.build_id else current,
            )
            # Dual-write's two workflows run from the first worker on; later ones find them.
            await ensure_running(client, settings.onboarding_task_queue)
            await interrupted.wait()
            logging.info("worker shutting down")
    shredding.cancel()
    if probes is not None:
        probes.close()
    executor.shutdown()
    stores.dispose()
    return code


def run() -> NoReturn:
    exit_process(asyncio.run(main()))


if __name__ == "__main__":
    run()
