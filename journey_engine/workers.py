"""The background work of an engine process: webhook delivery (woken by NOTIFY, polling as a fallback)
and the time-decay sweep. `serve` runs them beside the HTTP API; `journey-engine worker` runs them alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import asyncpg

from actions.delivery import DeliveryWorker
from actions.egress import DenyListResolver
from journey_engine.listener import listen
from journey_engine.pipeline import on_values_aged
from journey_engine.scheduler import DecaySweeper, start_scheduler
from journey_engine.settings import Settings

DELIVERY_CHANNEL = "journey_deliveries_v1"


@contextlib.asynccontextmanager
async def running(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the workers until the block ends; yields their tasks (a task that ends early is a failure)."""
    assert settings.database_url is not None
    delivery = settings.delivery_settings()
    connector = aiohttp.TCPConnector(resolver=DenyListResolver(delivery.deny), limit=delivery.concurrency)
    session = aiohttp.ClientSession(connector=connector)
    worker = DeliveryWorker(pool, session, delivery)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(worker.run(stop), name="webhook-delivery"),
        asyncio.create_task(
            listen(settings.database_url, DELIVERY_CHANNEL, worker.wake, stop), name="listen"
        ),
    ]
    scheduler = start_scheduler(DecaySweeper(pool, on_changes=on_values_aged), settings.sweep_interval)
    try:
        yield tasks
    finally:
        scheduler.shutdown(wait=False)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
