"""The web app's Prometheus metrics, served at `/metrics`.

HTTP requests by route template (never the raw path, whose ids would make a series per
request) and status, with latency; decisions by action and the deciding user's role,
and how long their requests waited; requests by stage, counted in the stores at each
scrape. The worker's metrics (the SDK's, and emails by kind and outcome) are its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.lifecycle import Action
from models.status import DecisionAnswer
from stores import Stores, dual_write, views

log = logging.getLogger("web")

# From a request decided within the minute to one that waited a month.
DECISION_BUCKETS = tuple(
    float(seconds)
    for seconds in (60, 600, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
)


class WebMetrics:
    """One app's metrics, in a registry of its own: every app a test builds starts at zero."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "b2b_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "b2b_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "b2b_decisions",
            "Decisions applied through the web app, by action and the deciding user's role",
            ["action", "role"],
            registry=self.registry,
        )
        self.time_to_decision = Histogram(
            "b2b_time_to_decision_seconds",
            "From a request's submission to the decision that approved or rejected it",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )

    def watch_stages(self, stores: Stores) -> None:
        self.registry.register(StageCollector(stores))
        self.registry.register(DualWriteCollector(stores))

    def decided(self, action: Action, role: str, answer: DecisionAnswer) -> None:
        self.decisions.labels(action.value, role).inc()
        if answer.stage.decided:
            # Decided since its stage began: the decision's writes are done then.
            waited = answer.stage_since - answer.submitted_at
            self.time_to_decision.observe(waited.total_seconds())


class StageCollector(Collector):
    """`b2b_onboarding_requests{stage}`, read from the stores when Prometheus scrapes."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        try:
            counts = views.stage_counts(self.stores)
        except SQLAlchemyError as err:
            # The other metrics still answer; /readyz says which store is down.
            log.warning("requests by stage left out of the metrics: %s", err)
            return
        family = GaugeMetricFamily(
            "b2b_onboarding_requests", "Onboarding requests in each stage", labels=["stage"]
        )
        for stage, count in counts.items():
            family.add_metric([stage.value], count)
        yield family


class DualWriteCollector(Collector):
    """Dual-write's backlog per direction, read from the outboxes when Prometheus scrapes:
    `b2b_dual_write_waiting` (changes not yet crossed, refused ones included),
    `b2b_dual_write_failed` (on the error list) and `b2b_dual_write_oldest_age_seconds`."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def collect(self) -> Iterator[Metric]:
        try:
            backlog = dual_write.backlog(
                dual_write.engines_of(self.stores.sales, self.stores.commerce)
            )
        except SQLAlchemyError as err:
            log.warning("dual-write's backlog left out of the metrics: %s", err)
            return
        labels = ["direction"]
        waiting = GaugeMetricFamily(
            "b2b_dual_write_waiting", "Changes waiting to cross, by direction", labels=labels
        )
        failed = GaugeMetricFamily(
            "b2b_dual_write_failed",
            "Changes the other store refused, on the error list, by direction",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "b2b_dual_write_oldest_age_seconds",
            "How long the oldest waiting change has waited (0: none), by direction",
            labels=labels,
        )
        now = time.time()
        for direction in backlog:
            label = [direction.direction.value]
            waiting.add_metric(label, direction.waiting)
            failed.add_metric(label, direction.failed)
            age = now - direction.oldest.timestamp() if direction.oldest else 0.0
            oldest.add_metric(label, max(age, 0.0))
        yield from (waiting, failed, oldest)


class HttpMetrics:
    """Counts and times every answer, errors included; outermost, so nothing escapes it."""

    def __init__(self, app: ASGIApp, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            route = _template(scope.get("route"))
            self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.http_latency.labels(scope["method"], route).observe(
                time.perf_counter() - started
            )


def _template(route: Any) -> str:
    # Paths no route matched are one series, whatever a scanner tries.
    return route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else "unmatched"
