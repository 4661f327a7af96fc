"""Scheduled work (APScheduler): the time-decay sweep of profile values.

Every `interval` seconds (a quarter second by default) the sweep recomputes the stored values whose next
change is due (an event left a window, or a future-stamped one entered), in transactions of up to 500,
until none is due. Several engine processes may sweep one database: each skips the persons another
holds, so a value is recomputed once. A run that overlaps the previous one is skipped, not queued.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from profiles import store

log = logging.getLogger(__name__)

OnChanges = Callable[[asyncpg.Connection, Sequence[store.Change]], Awaitable[None]]


class DecaySweeper:
    def __init__(self, pool: asyncpg.Pool, *, batch: int = 500, on_changes: OnChanges | None = None) -> None:
        self._pool = pool
        self._batch = batch
        self._on_changes = on_changes

    async def sweep(self) -> int:
        """Recompute every due value; the number recomputed."""
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                changes = await store.sweep_due(conn, datetime.now(UTC), self._batch)
                if changes and self._on_changes is not None:
                    await self._on_changes(conn, changes)
            total += len(changes)
            if len(changes) < self._batch:
                return total


def start_scheduler(sweeper: DecaySweeper, interval: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        _logged(sweeper.sweep), "interval", seconds=interval, id="decay-sweep", max_instances=1, coalesce=True
    )
    scheduler.start()
    return scheduler


def _logged(job: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            count = await job()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("decay sweep failed, retrying at the next run: %s", exc)
            return
        if count:
            log.debug("decay sweep recomputed %d values", count)

    return run
