"""What routes need, as `Annotated` dependencies: settings, the Temporal client, the stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from client.connection import Connection
from settings import Settings
from stores import Stores
from web.metrics import WebMetrics

T = TypeVar("T")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_temporal(request: Request) -> Connection:
    connection: Connection = request.app.state.temporal
    return connection


async def get_client(request: Request) -> Client:
    return await get_temporal(request).get()


def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


def get_metrics(request: Request) -> WebMetrics:
    metrics: WebMetrics = request.app.state.metrics
    return metrics


def get_secret(request: Request) -> bytes:
    secret: bytes = request.app.state.secret
    return secret


SettingsDep = Annotated[Settings, Depends(get_settings)]
SecretDep = Annotated[bytes, Depends(get_secret)]
ClientDep = Annotated[Client, Depends(get_client)]
# For routes that can answer from the stores while Temporal is down: connect on demand.
TemporalDep = Annotated[Connection, Depends(get_temporal)]
StoresDep = Annotated[Stores, Depends(get_stores)]
MetricsDep = Annotated[WebMetrics, Depends(get_metrics)]


async def read(view: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run one of the stores' (synchronous) read views without blocking the event loop."""
    return await run_in_threadpool(view, *args, **kwargs)
