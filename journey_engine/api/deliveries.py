"""Native API of an action's webhooks: `/v1/workspaces/{W}/actions/{A}/...`.

- `GET deliveries?status=&limit=&cursor=` (read): newest first, each with its attempts (`attemptsLog`);
  `{"data": [...], "next": cursor | null}`.
- `POST deliveries/{D}/redeliver` (admin): a delivered or dead delivery is due again now, under the same
  webhook id; 409 while it is pending, delivering or paused.
- `POST deliveries/redeliver-dead` (admin): every dead delivery of the action; `{"redelivered": n}`.
- `GET triggers` (read); `POST triggers/{i}/pause`, `POST triggers/{i}/resume` (admin): resume also
  clears a disable left by a 410 Gone.
- `GET secrets`, `POST secrets/rotate` (admin): the Standard Webhooks secrets, newest first. Receivers
  need them to verify, so admins may read them; they are never logged nor shown on the JDS paths.
  Rotation adds a new secret; the previous one keeps signing beside it until the next rotation.
"""

from __future__ import annotations

import re

from aiohttp import web

from actions import catalog, outbox
from actions.catalog import ActionRecord
from actions.outbox import Delivery, DeliveryBusy, DeliveryCursor, DeliveryNotFound, TriggerState
from journey_engine.api.bodies import query_int
from journey_engine.cloudevents import format_time
from journey_engine.context import POOL
from journey_engine.errors import Conflict, NotFound, Problem
from journey_engine.feed import bad
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response

routes = web.RouteTableDef()

PATH = "/v1/workspaces/{workspace_id}/actions/{action_id}"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
_NO_STORE = {"Cache-Control": "no-store"}


def delivery_json(d: Delivery) -> dict[str, object]:
    return {
        "webhookId": d.delivery_id,
        "firingId": d.firing_id,
        "personId": d.person_id,
        "triggerIndex": d.trigger_index,
        "method": d.method,
        "url": d.url,
        "status": d.status,
        "attempts": d.attempts,
        "nextAttemptAt": format_time(d.next_attempt_at) if d.next_attempt_at else None,
        "createdAt": format_time(d.created_at),
        "finishedAt": format_time(d.finished_at) if d.finished_at else None,
        "lastError": d.last_error,
        "attemptsLog": [
            {
                "attempt": a.attempt,
                "startedAt": format_time(a.started_at),
                "statusCode": a.status_code,
                "latencyMs": round(a.latency_ms, 3),
                "error": a.error,
            }
            for a in d.attempts_log
        ],
    }


def trigger_json(state: TriggerState) -> dict[str, object]:
    return {
        "index": state.index,
        "webhookURL": state.url,
        "paused": state.paused,
        "disabledReason": state.disabled_reason,
    }


async def _action(request: web.Request) -> ActionRecord:
    action_id = request.match_info["action_id"]
    async with request.app[POOL].acquire() as conn:
        record = await catalog.get(conn, principal(request).workspace_id, action_id)
    if record is None:
        raise NotFound(f"action '{action_id[:64]}' not found")
    return record


@routes.get(PATH + "/deliveries")
@access("read")
async def list_deliveries(request: web.Request) -> web.Response:
    query = request.query
    status = query.get("status") or None
    if status is not None and status not in outbox.STATUSES:
        raise bad("status", f"must be one of {', '.join(outbox.STATUSES)}, got {status[:40]!r}")
    limit = query_int(query, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    try:
        cursor = DeliveryCursor.decode(query["cursor"]) if query.get("cursor") else None
    except ValueError as exc:
        raise bad("cursor", str(exc)) from None
    action = await _action(request)
    async with request.app[POOL].acquire() as conn:
        page, following = await outbox.list_deliveries(
            conn, action_id=action.action_id, workspace_id=principal(request).workspace_id,
            status=status, limit=limit, after=cursor,
        )  # fmt: skip
    return json_response(
        {"data": [delivery_json(d) for d in page], "next": following.encode() if following else None}
    )


@routes.post(PATH + "/deliveries/{delivery_id}/redeliver")
@access("admin")
async def redeliver(request: web.Request) -> web.Response:
    action = await _action(request)
    delivery_id = request.match_info["delivery_id"]
    async with request.app[POOL].acquire() as conn:
        try:
            await outbox.redeliver(conn, principal(request).workspace_id, action.action_id, delivery_id)
        except DeliveryNotFound:
            raise NotFound(f"delivery '{delivery_id[:64]}' not found") from None
        except DeliveryBusy as exc:
            reason = f"the delivery is {exc.status}; only a delivered or dead delivery can be redelivered"
            raise Conflict(reason, [Problem("status", reason)]) from None
    return json_response({"webhookId": delivery_id, "status": "pending"}, status=202)


@routes.post(PATH + "/deliveries/redeliver-dead")
@access("admin")
async def redeliver_dead(request: web.Request) -> web.Response:
    action = await _action(request)
    async with request.app[POOL].acquire() as conn:
        count = await outbox.redeliver_dead(conn, principal(request).workspace_id, action.action_id)
    return json_response({"redelivered": count}, status=202)


@routes.get(PATH + "/triggers")
@access("read")
async def list_triggers(request: web.Request) -> web.Response:
    action = await _action(request)
    async with request.app[POOL].acquire() as conn:
        states = await outbox.trigger_states(conn, principal(request).workspace_id, action)
    return json_response({"data": [trigger_json(s) for s in states]})


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    action = await _action(request)
    text = request.match_info["index"]
    count = len(action.spec.actionTriggers)
    if not _WHOLE_NUMBER.fullmatch(text) or int(text) >= count:
        raise NotFound(f"trigger {text[:16]!r} not found: the action has {count} trigger(s), from index 0")
    async with request.app[POOL].acquire() as conn:
        state = await outbox.set_trigger_paused(
            conn, principal(request).workspace_id, action, int(text), paused
        )
    return json_response(trigger_json(state))


@routes.post(PATH + "/triggers/{index}/pause")
@access("admin")
async def pause_trigger(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


@routes.post(PATH + "/triggers/{index}/resume")
@access("admin")
async def resume_trigger(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


@routes.get(PATH + "/secrets")
@access("admin")
async def list_secrets(request: web.Request) -> web.Response:
    action = await _action(request)
    return json_response({"secrets": list(action.secrets)}, headers=_NO_STORE)


@routes.post(PATH + "/secrets/rotate")
@access("admin")
async def rotate_secret(request: web.Request) -> web.Response:
    action = await _action(request)
    async with request.app[POOL].acquire() as conn:
        secrets = await catalog.rotate_secret(conn, principal(request).workspace_id, action.action_id)
    if secrets is None:  # deleted meanwhile
        raise NotFound(f"action '{action.action_id}' not found")
    return json_response({"secret": secrets[0], "secrets": list(secrets)}, headers=_NO_STORE)
