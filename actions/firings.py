"""A person's firings as JDS shows them: `systemMetdata.journeyActionTriggerHistories` of a profile view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from actions.firing import QUERIES


def jds_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z` and milliseconds (`2022-10-18T04:21:34.124Z`), as JDS writes times."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


async def firing_history(
    conn: asyncpg.Connection, workspace_id: str, person_id: str, template_id: str, limit: int
) -> list[dict[str, Any]]:
    """The person's latest firings of the template's actions, newest first (JDS
    JourneyActionTriggerHistory: `actionId`, `triggeredAt`, and `doNotDisturbPeriod`, the action's cooldown
    in minutes at the firing, as a string)."""
    rows = await conn.fetch(QUERIES["person_firings"], workspace_id, person_id, template_id, limit)
    return [
        {
            "actionId": r["action_id"],
            "triggeredAt": jds_time(r["fired_at"]),
            "doNotDisturbPeriod": str(r["cooldown_minutes"]),
        }
        for r in rows
    ]
