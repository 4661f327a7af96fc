"""Test helpers: those used by the fixtures in conftest.py, and a few the tests share."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from multidict import CIMultiDict


def strict(value: Any) -> Any:
    """A decoded JSON value with its types spelled out, for comparisons where 1e16 must differ from 10**16
    and -0.0 from 0.0 (object keys in any order)."""
    if isinstance(value, dict):
        return sorted((k, strict(v)) for k, v in value.items())
    if isinstance(value, list):
        return [strict(v) for v in value]
    return (type(value).__name__, repr(value))


async def waits_for_a_lock(db: asyncpg.Connection, other: asyncpg.Connection, what: str) -> None:
    """Return once `other`'s statement waits for a lock (seen from `db`); fail after 2 s, saying `what`."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'"
    for _ in range(200):
        if await db.fetchval(waiting, other.get_server_pid()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} never waited for a lock")


@dataclass(frozen=True)
class WorkspaceKey:
    """A workspace and one API key of it."""

    workspace_id: str
    key_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    at: float


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0


class WebhookReceiver:
    """An aiohttp server on 127.0.0.1 that records requests; `answer_next` scripts its replies."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: list[Answer] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def answer_next(self, *answers: Answer) -> None:
        """Reply to the next requests with these answers, in order; then 200 again."""
        self._script.extend(answers)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self._script.pop(0) if self._script else Answer()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        async with self._arrived:
            self.received.append(
                Received(
                    request.method,
                    request.path,
                    dict(request.query),
                    CIMultiDict(request.headers),
                    body,
                    time.monotonic(),
                )
            )
            self._arrived.notify_all()
        return web.Response(status=answer.status, headers=answer.headers, text=answer.body)

    async def wait_for(self, count: int, within: float = 5.0) -> list[Received]:
        """Wait until at least `count` requests have arrived (at most `within` seconds); return them all."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return list(self.received)
