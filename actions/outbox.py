"""The outbox as its users see it: deliveries with their attempts, redelivery, and trigger pause.

- Deliveries are listed newest first with every attempt (status code, latency, error), by keyset cursor.
- Redelivery makes a finished delivery (`delivered` or `dead`) due at once under the SAME delivery id, so
  the receiver sees the same `webhook-id` and can deduplicate. Its attempts go on counting (the log keeps
  the earlier ones), and retries follow the rest of the schedule: a dead-lettered delivery, having used
  the whole schedule, gets one more attempt. A delivery still in flight (`pending`, `delivering`) or held
  by a paused trigger (`paused`) is not redelivered (`DeliveryBusy`).
- Pausing a trigger holds its deliveries (new ones are created `paused`); resuming makes them due at once
  and also clears a disable left by a 410 Gone: resuming is the user saying the endpoint is back. The
  deliveries that died while it was disabled stay dead until redelivered.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from actions import catalog
from actions.catalog import ActionRecord
from profiles.sqlfiles import load_queries

QUERIES = load_queries("actions")
STATUSES = ("pending", "delivering", "delivered", "dead", "paused")


class DeliveryNotFound(Exception):
    """The action has no delivery of this id."""


class DeliveryBusy(Exception):
    """The delivery is not finished (pending, delivering, or paused), so it cannot be redelivered."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    firing_id: int
    person_id: str
    trigger_index: int
    method: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    attempts_log: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class DeliveryCursor:
    """A position in an action's deliveries: the (created_at, delivery_id) of the last one a page held."""

    created_at: datetime
    delivery_id: str

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "d": self.delivery_id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> DeliveryCursor:
        """ValueError when `text` is not a cursor `encode` made."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            moment, delivery_id = datetime.fromisoformat(raw["t"]), raw["d"]
        except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
            raise ValueError("not a cursor this list gave out") from None
        if moment.tzinfo is None or not isinstance(delivery_id, str):
            raise ValueError("not a cursor this list gave out")
        return cls(moment, delivery_id)


@dataclass(frozen=True, slots=True)
class TriggerState:
    index: int
    url: str
    paused: bool
    disabled_reason: str | None


async def list_deliveries(
    conn: asyncpg.Connection,
    workspace_id: str,
    action_id: str,
    *,
    status: str | None,
    limit: int,
    after: DeliveryCursor | None,
) -> tuple[list[Delivery], DeliveryCursor | None]:
    """A page of the action's deliveries, newest first, and the cursor of the next page (None: no more)."""
    rows = await conn.fetch(
        QUERIES["list_deliveries"], workspace_id, action_id, status,
        after.created_at if after else None, after.delivery_id if after else None, limit + 1,
    )  # fmt: skip
    rows, more = rows[:limit], len(rows) > limit
    logs: dict[str, list[Attempt]] = {r["delivery_id"]: [] for r in rows}
    if rows:
        for a in await conn.fetch(QUERIES["delivery_attempts"], workspace_id, list(logs)):
            logs[a["delivery_id"]].append(
                Attempt(a["attempt"], a["started_at"], a["status_code"], a["latency_ms"], a["error"])
            )
    page = [_delivery(r, tuple(logs[r["delivery_id"]])) for r in rows]
    following = DeliveryCursor(page[-1].created_at, page[-1].delivery_id) if more and page else None
    return page, following


def _delivery(r: asyncpg.Record, log: tuple[Attempt, ...]) -> Delivery:
    return Delivery(
        r["delivery_id"], r["firing_id"], r["person_id"], r["trigger_index"], r["method"], r["url"],
        r["status"], r["attempts"],
        r["next_attempt_at"] if r["status"] in ("pending", "delivering") else None,
        r["created_at"], r["finished_at"], r["last_error"], log,
    )  # fmt: skip


async def redeliver(conn: asyncpg.Connection, workspace_id: str, action_id: str, delivery_id: str) -> None:
    """Make a finished delivery due now under the same id (DeliveryNotFound, DeliveryBusy)."""
    async with conn.transaction():
        if await conn.fetchval(QUERIES["redeliver"], workspace_id, action_id, delivery_id) is None:
            status = await conn.fetchval(QUERIES["delivery_status"], workspace_id, action_id, delivery_id)
            if status is None:
                raise DeliveryNotFound(delivery_id)
            raise DeliveryBusy(status)
        await conn.execute(QUERIES["notify_deliveries"], "")


async def redeliver_dead(conn: asyncpg.Connection, workspace_id: str, action_id: str) -> int:
    """Make every dead delivery of the action due now; how many there were."""
    async with conn.transaction():
        count: int = await conn.fetchval(QUERIES["redeliver_dead"], workspace_id, action_id)
        if count:
            await conn.execute(QUERIES["notify_deliveries"], "")
    return count


async def trigger_states(
    conn: asyncpg.Connection, workspace_id: str, action: ActionRecord
) -> list[TriggerState]:
    """The state of each trigger the action has now."""
    rows = await conn.fetch(QUERIES["trigger_states"], workspace_id, [action.action_id])
    states = {r["trigger_index"]: (r["paused"], r["disabled_reason"]) for r in rows}
    return [
        TriggerState(index, trigger.webhookURL, *states.get(index, (False, None)))
        for index, trigger in enumerate(action.spec.actionTriggers)
    ]


async def set_trigger_paused(
    conn: asyncpg.Connection, workspace_id: str, action: ActionRecord, index: int, paused: bool
) -> TriggerState:
    """Pause a trigger, or resume it (clearing a 410 disable); `index` must be one of the action's."""
    if not 0 <= index < len(action.spec.actionTriggers):
        raise IndexError(index)
    async with conn.transaction():
        await catalog.set_paused(conn, workspace_id, action.action_id, index, paused)
        if not paused:
            await conn.execute(QUERIES["enable_trigger"], workspace_id, action.action_id, index)
            await conn.execute(QUERIES["notify_deliveries"], "")
    return (await trigger_states(conn, workspace_id, action))[index]
