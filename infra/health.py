"""Readiness: whether what a process needs answers now, and if not, which and why.

The web app's `/readyz` and the worker's both ask the same four: Temporal, the Sales
store, the Commerce store and the mail relay (connected, secured and logged in to as the
emails will be).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from activities import smtp
from client.connection import RPC_TIMEOUT, Connection
from settings import Settings
from stores import Stores

# Each check answers within this, or counts as not answering.
CHECK_WITHIN = 5.0
OK = "ok"
# What `/healthz` answers: the process is up, whatever its dependencies say.
UP = '{"status":"up"}'


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    # Each dependency: "ok", or why not.
    checks: dict[str, str]


async def readiness(settings: Settings, temporal: Connection, stores: Stores) -> Readiness:
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "temporal": lambda: _temporal(temporal),
        "sales_store": lambda: _store(stores.sales),
        "commerce_store": lambda: _store(stores.commerce),
        "mail_server": lambda: _mail(settings),
    }
    answers = await asyncio.gather(*(_answer(check) for check in checks.values()))
    results = dict(zip(checks, answers, strict=True))
    ready = all(result == OK for result in results.values())
    return Readiness(status="ready" if ready else "not ready", checks=results)


async def _answer(check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_WITHIN)
    except TimeoutError:
        return f"no answer within {CHECK_WITHIN:.0f} s"
    except SQLAlchemyError as err:
        return str(getattr(err, "orig", None) or err).strip().splitlines()[0]
    except Exception as err:
        reason = smtp.refusal(err) or str(err) or type(err).__name__
        return " ".join(reason.split())
    return OK


async def _temporal(temporal: Connection) -> None:
    client = await temporal.get()
    await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=RPC_TIMEOUT)


async def _store(engine: Engine) -> None:
    def ping() -> None:
        for attempt in (1, 2):
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return
            except DBAPIError as err:
                # A pooled connection the server closed since its last use (the pool pings
                # only idle ones): the pool is dropped, and a new connection says what the
                # store says now.
                if not err.connection_invalidated or attempt == 2:
                    raise

    await asyncio.to_thread(ping)


async def _mail(settings: Settings) -> None:
    async with smtp.relay(settings):
        pass


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (`[::1]:port` for IPv6)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(address: str, ready: Callable[[], Awaitable[Readiness]]) -> asyncio.Server:
    """`/healthz` and `/readyz` over plain HTTP, for a process without a web server: the worker.

    One request per connection, answered as the web app answers them.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), CHECK_WITHIN)
            path = line.decode("latin-1").split()[1].partition("?")[0]
            if path == "/healthz":
                status, body = 200, UP
            elif path == "/readyz":
                state = await ready()
                status, body = (200 if state.status == "ready" else 503), state.model_dump_json()
            else:
                status, body = 404, '{"detail":"Not Found"}'
            writer.write(
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        except (TimeoutError, IndexError, ConnectionError):
            pass
        finally:
            writer.close()

    host, port = split_address(address)
    return await asyncio.start_server(answer, host, port)
