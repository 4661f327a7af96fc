"""Journey actions end to end: rules on profile values fire signed webhooks to a real receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from actions import catalog as actions_catalog
from actions.delivery import DeliverySettings, DeliveryWorker
from actions.models import ActionSpec
from actions.signing import verify
from journey_engine import workspaces
from journey_engine.cloudevents import parse_event
from journey_engine.db import connect, create_pool
from journey_engine.events import EventRow
from journey_engine.pipeline import IngestPipeline
from profiles import catalog
from profiles.templates import TemplateSpec
from tests.helpers import Answer, WebhookReceiver, WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
FAST = {"webhook_retry_schedule": "0.2,0.2,0.2", "sweep_interval": 0.1}
_n = 0


def closed_queue(identity: str = "+12263762555", when: datetime | None = None) -> dict[str, Any]:
    global _n
    _n += 1
    body = {"id": f"cq{_n}", "specversion": "1.0", "type": "Closed Queue", "source": "/flow",
            "identity": identity, "identitytype": "phone", "data": {"category": "billing"}}  # fmt: skip
    if when is not None:
        body["time"] = when.isoformat()
    return body


async def post(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 202, await response.text()


async def settled_delivery(db: asyncpg.Connection, status: str, within: float = 2.5) -> asyncpg.Record:
    """The (only) delivery once it has `status`, or as it is when `within` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        delivery = await db.fetchrow("SELECT * FROM deliveries")
        if (
            delivery is not None and delivery["status"] == status
        ) or asyncio.get_running_loop().time() > deadline:
            assert delivery is not None, "no delivery was recorded"
            return delivery
        await asyncio.sleep(0.05)


async def setup_action(
    db: asyncpg.Connection, ws: WorkspaceKey, url: str, lookback_minutes: int = 60, **action: Any
) -> actions_catalog.ActionRecord:
    template = TemplateSpec.model_validate(
        {"name": "saving", "attributes": [
            {"event": "Closed Queue", "metaDataType": "string", "metaData": "category", "limit": 0,
             "displayName": "closed", "lookBackDurationType": "minutes", "lookBackPeriod": lookback_minutes,
             "aggregationMode": "Count"}]}
    )  # fmt: skip
    stored = await catalog.create(db, ws.workspace_id, template, "test")
    spec = ActionSpec.model_validate(
        {
            "name": "sms",
            "cooldownPeriodInMinutes": 10,
            "rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value GTE 2"},
            "actionTriggers": [
                {"type": "Webhook", "webhookURL": f"{url}/sms",
                 "attributes": {"httpverb": "post", "authorizationScheme": "Bearer",
                                "authorization": "s3cret",
                                "requestbody": '{"to": "{{aliases.phone}}", "n": "{{values.closed}}"}'}}
            ],
            **action,
        }
    )  # fmt: skip
    return await actions_catalog.create(db, ws.workspace_id, stored.template_id, template, spec, "test")


async def test_webhook_fires_when_the_count_reaches_two_signed_and_rendered(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    action = await setup_action(db, workspace, webhook_receiver.url)
    await post(client, workspace, closed_queue())
    await asyncio.sleep(0.3)
    assert webhook_receiver.received == []
    await post(client, workspace, closed_queue())
    (got,) = await webhook_receiver.wait_for(1)
    assert got.method == "POST"
    assert got.path == "/sms"
    assert json.loads(got.body) == {"to": "+12263762555", "n": "2"}
    assert got.headers["Authorization"] == "Bearer s3cret"
    assert got.headers["Content-Type"] == "application/json"
    verify(action.secrets, got.headers, got.body)
    firing = await db.fetchrow("SELECT * FROM firings")
    assert (firing["action_id"], firing["cause"]) == (action.action_id, "event")


async def test_cooldown_suppresses_firing_again_for_the_same_person(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    await setup_action(db, workspace, webhook_receiver.url)
    await post(client, workspace, closed_queue(), closed_queue())
    await webhook_receiver.wait_for(1)
    await post(client, workspace, closed_queue())
    await post(client, workspace, closed_queue("+12263760000"), closed_queue("+12263760000"))
    received = await webhook_receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert len(received) == len(webhook_receiver.received) == 2
    assert await db.fetchval("SELECT count(*) FROM firings") == 2


async def test_on_enter_fires_only_when_the_rules_become_true(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    await setup_action(db, workspace, webhook_receiver.url, fire="on_enter", cooldownPeriodInMinutes=0)
    await post(client, workspace, closed_queue(), closed_queue())
    await post(client, workspace, closed_queue())
    await webhook_receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(webhook_receiver.received) == 1


async def test_failed_delivery_is_retried_under_the_same_webhook_id(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    await setup_action(db, workspace, webhook_receiver.url)
    webhook_receiver.answer_next(Answer(500), Answer(429, headers={"Retry-After": "0"}))
    await post(client, workspace, closed_queue(), closed_queue())
    received = await webhook_receiver.wait_for(3)
    assert len({r.headers["webhook-id"] for r in received}) == 1
    delivery = await settled_delivery(db, "delivered")
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    attempts = await db.fetch("SELECT status_code FROM delivery_attempts ORDER BY attempt")
    assert [a["status_code"] for a in attempts] == [500, 429, 200]


async def test_delivery_is_dead_lettered_after_the_last_attempt(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    await setup_action(db, workspace, webhook_receiver.url)
    webhook_receiver.answer_next(*[Answer(502)] * 4)
    await post(client, workspace, closed_queue(), closed_queue())
    await webhook_receiver.wait_for(4)
    delivery = await settled_delivery(db, "dead")
    assert (delivery["status"], delivery["attempts"]) == ("dead", 4)
    assert "gave up after 4 attempts" in delivery["last_error"]


async def test_410_gone_disables_the_trigger(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    await setup_action(db, workspace, webhook_receiver.url, cooldownPeriodInMinutes=0)
    webhook_receiver.answer_next(Answer(410))
    await post(client, workspace, closed_queue(), closed_queue())
    await webhook_receiver.wait_for(1)
    for _ in range(50):
        if await db.fetchval("SELECT disabled_reason FROM action_triggers"):
            break
        await asyncio.sleep(0.05)
    assert "410 Gone" in await db.fetchval("SELECT disabled_reason FROM action_triggers")
    await post(client, workspace, closed_queue())
    await asyncio.sleep(0.4)
    assert len(webhook_receiver.received) == 1
    assert await db.fetchval("SELECT count(*) FROM firings") == 2  # it fired; the trigger sent nothing


async def test_a_retry_after_its_action_was_deleted_is_dead_letter_not_sent(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(webhook_retry_schedule="1,1,1", sweep_interval=0.1)
    action = await setup_action(db, workspace, webhook_receiver.url, cooldownPeriodInMinutes=0)
    webhook_receiver.answer_next(Answer(503))
    await post(client, workspace, closed_queue(), closed_queue())
    await webhook_receiver.wait_for(1)
    await settled_delivery(db, "pending")
    assert await actions_catalog.delete(db, workspace.workspace_id, action.template_id, action.action_id)
    delivery = await settled_delivery(db, "dead", within=5)
    assert (delivery["last_error"], delivery["attempts"]) == ("the action or its trigger was deleted", 2)
    assert len(webhook_receiver.received) == 1


async def test_a_value_aging_out_fires_an_action_on_the_lower_count(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    rules = {"logic": "SINGLE", "condition": "Closed Queue,category,string,Count LT 1"}
    await setup_action(db, workspace, webhook_receiver.url, lookback_minutes=1, rules=rules, fire="on_enter")
    await post(client, workspace, closed_queue(when=datetime.now(UTC) - timedelta(seconds=59)))
    (got,) = await webhook_receiver.wait_for(1, within=5)
    assert json.loads(got.body)["n"] == "0"
    assert await db.fetchval("SELECT cause FROM firings") == "decay"


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest", "http://[fe80::1]/x"])
async def test_webhooks_to_denied_networks_are_refused(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, db: asyncpg.Connection, url: str
) -> None:
    client = await make_client(**FAST)
    await setup_action(db, workspace, url.rsplit("/", 1)[0])
    await post(client, workspace, closed_queue(), closed_queue())
    delivery = await settled_delivery(db, "dead")
    assert delivery["status"] == "dead"
    assert "destination denied" in delivery["last_error"]


async def test_the_jds_profile_view_lists_the_persons_firings(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    action = await setup_action(db, workspace, webhook_receiver.url)
    await post(client, workspace, closed_queue(), closed_queue())
    response = await client.get(
        f"/v1/api/progressive-profile-view/workspace-id/{workspace.workspace_id}"
        "/identity/+12263762555/template-name/saving",
        headers=workspace.headers,
    )
    assert response.status == 200
    (view,) = (await response.json())["data"]
    (history,) = view["systemMetdata"]["journeyActionTriggerHistories"]
    assert history["actionId"] == action.action_id
    assert history["doNotDisturbPeriod"] == "10"
    fired_at = await db.fetchval("SELECT fired_at FROM firings")
    assert datetime.fromisoformat(history["triggeredAt"].replace("Z", "+00:00")) == fired_at.replace(
        microsecond=fired_at.microsecond // 1000 * 1000
    )


async def test_replacing_an_action_keeps_trigger_state_only_where_the_destination_stayed(
    workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    action = await setup_action(db, workspace, "http://127.0.0.1:9")
    template = await catalog.find(db, workspace.workspace_id, "saving")
    assert template is not None
    await actions_catalog.set_paused(db, workspace.workspace_id, action.action_id, 0, True)
    renamed = action.spec.model_copy(update={"name": "sms2"})
    await actions_catalog.replace(
        db, workspace.workspace_id, template.template_id, action.action_id, template.spec, renamed, "t"
    )
    assert await db.fetchval("SELECT paused FROM action_triggers") is True
    moved = ActionSpec.model_validate(
        {**renamed.model_dump(mode="json"),
         "actionTriggers": [{"type": "Webhook", "webhookURL": "http://127.0.0.1:10/elsewhere"}]}
    )  # fmt: skip
    await actions_catalog.replace(
        db, workspace.workspace_id, template.template_id, action.action_id, template.spec, moved, "t"
    )
    assert await db.fetchval("SELECT count(*) FROM action_triggers") == 0


async def test_export_holds_the_persons_firings_and_deliveries_and_erase_removes_them(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    webhook_receiver: WebhookReceiver,
) -> None:
    client = await make_client(**FAST)
    action = await setup_action(db, workspace, webhook_receiver.url)
    await post(client, workspace, closed_queue(), closed_queue())
    (got,) = await webhook_receiver.wait_for(1)
    path = f"/v1/workspaces/{workspace.workspace_id}/persons/+12263762555"
    export = await (await client.get(f"{path}/export", headers=workspace.headers)).json()
    (firing,) = export["firings"]
    assert firing["actionId"] == action.action_id
    (delivery,) = export["deliveries"]
    assert delivery["deliveryId"] == got.headers["webhook-id"]
    assert delivery["body"] == got.body.decode()
    await settled_delivery(db, "delivered")
    export = await (await client.get(f"{path}/export", headers=workspace.headers)).json()
    assert [a["statusCode"] for a in export["deliveries"][0]["attemptsLog"]] == [200]
    erased = await (await client.delete(path, headers=workspace.headers)).json()
    assert (erased["erased"]["firings"], erased["erased"]["deliveries"]) == (1, 1)
    for table in ("firings", "deliveries", "delivery_attempts", "profile_values"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_a_delivery_committed_while_the_worker_claims_is_sent_at_once_not_at_the_next_poll(
    fresh_database: str, webhook_receiver: WebhookReceiver
) -> None:
    conn = await connect(fresh_database)
    created = await workspaces.create_workspace(conn, "w")
    await setup_action(conn, WorkspaceKey(created.workspace_id, "-", "-"), webhook_receiver.url)
    rows = [
        EventRow(created.workspace_id, parse_event(closed_queue(), default_region="US"), datetime.now(UTC))
        for _ in range(2)
    ]

    class Racing(DeliveryWorker):
        """Its first claim sees no delivery; one commits and its wake-up arrives before the claim ends."""

        claims = 0

        async def _claim(self, limit: int) -> list[asyncpg.Record]:
            claimed = await super()._claim(limit)
            self.claims += 1
            if self.claims == 1:
                async with conn.transaction():
                    await IngestPipeline("US")(conn, rows)
                self.wake()
            return claimed

    pool = await create_pool(fresh_database)
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        worker = asyncio.create_task(Racing(pool, session, DeliverySettings(poll_interval=60)).run(stop))
        try:
            (got,) = await webhook_receiver.wait_for(1, within=5)
            assert got.path == "/sms"
        finally:
            stop.set()
            await worker
            await pool.close()
            await conn.close()
