"""What routes need, as `Annotated` dependencies: settings, the Temporal client, the stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

import client as onboarding
from settings import Settings
from stores import Stores

T = TypeVar("T")


class TemporalConnection:
    """Connects on first use and keeps the client, so the web app starts before Temporal."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self.client is None:
            async with self._lock:
                if self.client is None:
                    self.client = await onboarding.connect(self.settings)
        return self.client


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_temporal(request: Request) -> TemporalConnection:
    connection: TemporalConnection = request.app.state.temporal
    return connection


async def get_client(request: Request) -> Client:
    return await get_temporal(request).get()


def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


def get_secret(request: Request) -> bytes:
    secret: bytes = request.app.state.secret
    return secret


SettingsDep = Annotated[Settings, Depends(get_settings)]
SecretDep = Annotated[bytes, Depends(get_secret)]
ClientDep = Annotated[Client, Depends(get_client)]
# For routes that can answer from the stores while Temporal is down: connect on demand.
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]
StoresDep = Annotated[Stores, Depends(get_stores)]


async def read(view: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run one of the stores' (synchronous) read views without blocking the event loop."""
    return await run_in_threadpool(view, *args, **kwargs)
