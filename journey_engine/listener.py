"""LISTEN on a PostgreSQL channel from a connection of its own (outside the pool), reconnecting.

Notifications carry no bodies: a notification only wakes the one who waits (the delivery worker);
it then reads the rows. A lost connection is reopened after a second; meanwhile waiters poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)


async def listen(dsn: str, channel: str, on_notify: Callable[[], None], stop: asyncio.Event) -> None:
    """Call `on_notify` for each notification on `channel` until `stop` is set."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN %s: cannot connect (%s); retrying", channel, exc)
            await _sleep_or_stop(1.0, stop)
            continue
        try:
            await _listen_on(conn, channel, on_notify, stop)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("LISTEN %s: connection lost (%s); reconnecting", channel, exc)
        finally:
            if not conn.is_closed():
                await conn.close(timeout=5)
        if not stop.is_set():
            await _sleep_or_stop(1.0, stop)


async def _listen_on(
    conn: asyncpg.Connection, channel: str, on_notify: Callable[[], None], stop: asyncio.Event
) -> None:
    """Until `stop` is set or the connection is lost."""
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())
    await conn.add_listener(channel, lambda *_args: on_notify())
    on_notify()  # rows committed while nobody listened
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
