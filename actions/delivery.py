"""Webhook delivery: workers drain the outbox, at least once, under a stable webhook id.

A worker claims due rows with `FOR UPDATE SKIP LOCKED` (several workers and processes share the outbox),
marking each `delivering` with a lease; a worker that dies mid-attempt leaves a row whose lease runs
out, and another worker takes it again (at least once: receivers deduplicate on `webhook-id`).

Each attempt: the row's method, URL and body; `Content-Type: application/json`; the trigger's
Authorization; Standard Webhooks headers signed with every active secret of the action. Success is a
2xx. Otherwise the next attempt follows the schedule (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
each ±10% jitter), or the receiver's Retry-After on 429 and 503; 410 Gone disables the trigger; after the
last attempt the delivery is dead-lettered. Destinations in denied networks are refused (egress.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import asyncpg
from yarl import URL

from actions.egress import DestinationDenied, Network, check_url
from actions.signing import webhook_headers
from profiles.sqlfiles import load_queries

log = logging.getLogger(__name__)
QUERIES = load_queries("actions")

DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_MAX_REDIRECTS = 3
_ERROR_TEXT = 500


@dataclass(frozen=True)
class DeliverySettings:
    timeout: float = 10.0
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    deny: tuple[Network, ...] = ()
    batch: int = 100
    concurrency: int = 64
    poll_interval: float = 1.0


@dataclass(frozen=True)
class Outcome:
    status: str
    status_code: int | None
    error: str | None
    next_attempt_at: datetime


def backoff(attempt: int, schedule: Sequence[float], now: datetime, rng: random.Random) -> datetime | None:
    """When to try again after `attempt` failed attempts (None: give up)."""
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1]
    return now + timedelta(seconds=delay * rng.uniform(0.9, 1.1))


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """A Retry-After header (seconds or an HTTP date) as an instant, capped at 24 hours."""
    if not value:
        return None
    value = value.strip()
    when: datetime | None
    if value.isdigit():
        when = now + timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return min(max(when, now), now + timedelta(hours=24))


class DeliveryWorker:
    """Claims and sends due deliveries until stopped; `wake()` when new rows are committed."""

    def __init__(
        self, pool: asyncpg.Pool, session: aiohttp.ClientSession, settings: DeliverySettings
    ) -> None:
        self._pool = pool
        self._session = session
        self._settings = settings
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._sending: set[asyncio.Task[None]] = set()
        self._rng = random.Random()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Claim no more than can be sent at once: a claimed row carries the trigger's state and
            # config as read at the claim, so it must not wait behind slow sends for a slot.
            free = self._settings.concurrency - len(self._sending)
            if free <= 0:
                await asyncio.wait(set(self._sending), return_when=asyncio.FIRST_COMPLETED)
                continue
            limit = min(free, self._settings.batch)
            # Cleared before the claim: a wake-up while it runs (a delivery committed after the claim's
            # snapshot) makes the wait below return at once, instead of leaving it for the next poll.
            self._wake.clear()
            claimed = await self._claim(limit)
            for row in claimed:
                await self._slots.acquire()
                task = asyncio.create_task(self._send_and_record(row), name="webhook-delivery")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            if len(claimed) == limit:
                continue
            waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
            await asyncio.wait(
                waiters, timeout=self._settings.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _claim(self, limit: int) -> list[asyncpg.Record]:
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self._settings.timeout * (_MAX_REDIRECTS + 1) + 30)
        try:
            rows: list[asyncpg.Record] = await self._pool.fetch(
                QUERIES["claim_deliveries"], now, lease, limit
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("claiming deliveries failed, retrying: %s", exc)
            return []
        return rows

    async def _send_and_record(self, row: asyncpg.Record) -> None:
        try:
            await self.deliver(row)
        except Exception:
            log.exception(
                "delivery %s failed unexpectedly; its lease will expire and it is retried", row["delivery_id"]
            )
        finally:
            self._slots.release()

    async def deliver(self, row: asyncpg.Record) -> Outcome:
        """Send a claimed delivery (a `claim_deliveries` row) once and record the outcome."""
        workspace_id, delivery_id = row["workspace_id"], row["delivery_id"]
        attempt = row["attempts"] + 1
        started = datetime.now(UTC)
        clock = time.perf_counter()
        if row["attributes"] is None:
            outcome = Outcome("dead", None, "the action or its trigger was deleted", started)
        elif row["disabled_reason"] is not None:
            outcome = Outcome("dead", None, f"trigger disabled: {row['disabled_reason']}", started)
        elif row["paused"]:
            outcome = Outcome("paused", None, None, started)
        else:
            outcome = await self._attempt(row, attempt - row["retry_base"], started)
        latency = (time.perf_counter() - clock) * 1000
        paused = outcome.status == "paused"
        gone = f"410 Gone from {row['url']} at {started.isoformat()}" if outcome.status_code == 410 else None
        await self._pool.execute(
            QUERIES["finish_attempt"], workspace_id, delivery_id, attempt, started, outcome.status_code,
            latency, outcome.error, paused, gone, row["action_id"], row["trigger_index"], outcome.status,
            row["attempts"] if paused else attempt, outcome.next_attempt_at,
        )  # fmt: skip
        return outcome

    async def _attempt(self, row: asyncpg.Record, attempt: int, now: datetime) -> Outcome:
        attributes: dict[str, Any] = row["attributes"]
        body: str = row["body"]
        headers = {"Content-Type": "application/json", "User-Agent": "journey-engine-webhooks/1"}
        auth = attributes.get("authorization")
        if auth:
            scheme = attributes.get("authorizationScheme")
            headers["Authorization"] = f"{scheme} {auth}" if scheme else auth
        headers.update(
            webhook_headers(list(row["secrets"]), row["delivery_id"], int(now.timestamp()), body.encode())
        )
        try:
            status, reply_headers, text = await self._request(row["method"], row["url"], headers, body)
        except DestinationDenied as exc:
            return Outcome("dead", None, f"destination denied: {exc}", now)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._failed(attempt, now, None, f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT], None)
        if 200 <= status < 300:
            return Outcome("delivered", status, None, now)
        if status == 410:
            return Outcome("dead", status, "410 Gone: the trigger is disabled", now)
        hint = retry_after(reply_headers.get("Retry-After"), now) if status in (429, 503) else None
        return self._failed(attempt, now, status, f"HTTP {status}: {text[:200]}", hint)

    def _failed(
        self, attempt: int, now: datetime, status: int | None, error: str, hint: datetime | None
    ) -> Outcome:
        later = backoff(attempt, self._settings.schedule, now, self._rng)
        if later is None:
            return Outcome("dead", status, f"gave up after {attempt} attempts; last: {error}", now)
        return Outcome("pending", status, error, hint or later)

    async def _request(
        self, method: str, url: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, str], str]:
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout)
        for _ in range(_MAX_REDIRECTS + 1):
            check_url(url, self._settings.deny)
            data = body.encode() if method not in ("GET", "DELETE") or body else None
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                text = await response.text(errors="replace")
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    url = str(response.url.join(URL(response.headers["Location"])))
                    if response.status in (301, 302, 303):
                        method, body = "GET", ""
                    continue
                return response.status, dict(response.headers), text
        raise aiohttp.ClientError(f"more than {_MAX_REDIRECTS} redirects")
