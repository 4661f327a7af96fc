"""The native webhook API over HTTP: deliveries and their attempts, redelivery, trigger pause, secrets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from actions.signing import SignatureError, verify
from journey_engine import views, workspaces
from tests.helpers import Answer, WebhookReceiver, WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
FAST = {"webhook_retry_schedule": "0.2,0.2,0.2", "sweep_interval": 0.1}
PHONE = "+12263762555"
_n = 0

TEMPLATE: dict[str, Any] = {
    "name": "saving",
    "attributes": [
        {"event": "Closed Queue", "metaDataType": "string", "metaData": "category", "limit": 0,
         "displayName": "closed", "lookBackDurationType": "minutes", "lookBackPeriod": 60,
         "aggregationMode": "Count"}
    ],
}  # fmt: skip


def closed_queue(identity: str = PHONE) -> dict[str, Any]:
    global _n
    _n += 1
    return {"id": f"dq{_n}", "specversion": "1.0", "type": "Closed Queue", "source": "/flow",
            "identity": identity, "identitytype": "phone", "data": {"category": "billing"}}  # fmt: skip


async def setup_action(client: Client, ws: WorkspaceKey, url: str, **over: Any) -> str:
    """The template and an action firing at 2 Closed Queue events (no cooldown), made through the API."""
    admin = f"/admin/v1/api/profile-view-template/workspace-id/{ws.workspace_id}"
    response = await client.post(admin, data=json.dumps(TEMPLATE), headers=ws.headers)
    assert response.status == 201, await response.text()
    action = {
        "name": "sms", "cooldownPeriodInMinutes": 0,
        "rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value GTE 2"},
        "actionTriggers": [{"type": "Webhook", "webhookURL": f"{url}/sms",
                            "attributes": {"httpverb": "post", "requestbody": '{"n": "{{values.closed}}"}'}}],
        **over,
    }  # fmt: skip
    path = f"/admin/v1/api/journey-actions/workspace-id/{ws.workspace_id}/template-id/saving"
    response = await client.post(path, data=json.dumps(action), headers=ws.headers)
    assert response.status == 201, await response.text()
    action_id: str = (await response.json())["data"]["id"]
    return action_id


async def post(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 202, await response.text()


def native(ws: WorkspaceKey, action_id: str, path: str) -> str:
    return f"/v1/workspaces/{ws.workspace_id}/actions/{action_id}{path}"


async def call(client: Client, ws: WorkspaceKey, method: str, path: str) -> tuple[int, Any]:
    response = await client.request(method, path, headers=ws.headers)
    return response.status, await response.json()


async def deliveries(
    client: Client, ws: WorkspaceKey, action_id: str, query: str = ""
) -> list[dict[str, Any]]:
    status, body = await call(client, ws, "GET", native(ws, action_id, f"/deliveries{query}"))
    assert status == 200, body
    found: list[dict[str, Any]] = body["data"]
    return found


async def settled(
    client: Client, ws: WorkspaceKey, action_id: str, *statuses: str, count: int = 1
) -> list[dict[str, Any]]:
    """The deliveries, once there are `count` and each is in one of `statuses` (within 5 s)."""
    for _ in range(100):
        found = await deliveries(client, ws, action_id)
        if len(found) == count and all(d["status"] in statuses for d in found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries did not settle in {statuses}: {found}")


# --- listing -------------------------------------------------------------------------------------------


async def test_deliveries_list_each_attempt_with_its_status_code_latency_and_error(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    webhook_receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    webhook_receiver.answer_next(Answer(500, body="boom"))
    await post(client, workspace, closed_queue(), closed_queue())
    received = await webhook_receiver.wait_for(2)
    (delivery,) = await settled(client, workspace, action_id, "delivered")
    assert delivery["webhookId"] == received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    assert delivery["personId"] == await db.fetchval("SELECT person_id FROM aliases WHERE alias = $1", PHONE)
    assert isinstance(delivery["firingId"], int)
    assert (delivery["triggerIndex"], delivery["method"]) == (0, "POST")
    assert delivery["url"] == f"{webhook_receiver.url}/sms"
    assert (delivery["status"], delivery["attempts"], delivery["lastError"]) == ("delivered", 2, None)
    assert delivery["nextAttemptAt"] is None
    assert delivery["createdAt"].endswith("Z") and delivery["finishedAt"].endswith("Z")
    first, second = delivery["attemptsLog"]
    assert (first["attempt"], first["statusCode"], first["error"]) == (1, 500, "HTTP 500: boom")
    assert (second["attempt"], second["statusCode"], second["error"]) == (2, 200, None)
    assert first["latencyMs"] >= 0 and first["startedAt"] <= second["startedAt"]


async def test_deliveries_filter_by_status_and_page_by_cursor_newest_first(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    await post(client, workspace, closed_queue(), closed_queue())
    await post(client, workspace, closed_queue())
    await post(client, workspace, closed_queue())
    every = await settled(client, workspace, action_id, "delivered", count=3)
    assert [d["createdAt"] for d in every] == sorted((d["createdAt"] for d in every), reverse=True)
    seen, cursor = [], ""
    while True:
        status, body = await call(
            client, workspace, "GET", native(workspace, action_id, f"/deliveries?limit=2{cursor}")
        )
        assert status == 200
        seen += [d["webhookId"] for d in body["data"]]
        if body["next"] is None:
            break
        cursor = f"&cursor={body['next']}"
    assert seen == [d["webhookId"] for d in every]
    assert await deliveries(client, workspace, action_id, "?status=dead") == []
    assert len(await deliveries(client, workspace, action_id, "?status=delivered")) == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=lost", "status"), ("limit=0", "limit"), ("limit=x", "limit"), ("cursor=zz", "cursor")],
)
async def test_bad_delivery_list_parameters_are_400_naming_the_parameter(
    api_client: Client, workspace: WorkspaceKey, query: str, field: str
) -> None:
    action_id = await setup_action(api_client, workspace, "https://hooks.example.com")
    status, body = await call(
        api_client, workspace, "GET", native(workspace, action_id, f"/deliveries?{query}")
    )
    assert status == 400
    assert body["errors"][0]["field"] == field


# --- redelivery ----------------------------------------------------------------------------------------


async def test_redelivering_a_delivered_webhook_sends_it_again_under_the_same_webhook_id(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    await post(client, workspace, closed_queue(), closed_queue())
    (delivery,) = await settled(client, workspace, action_id, "delivered")
    path = native(workspace, action_id, f"/deliveries/{delivery['webhookId']}/redeliver")
    status, body = await call(client, workspace, "POST", path)
    assert (status, body) == (202, {"webhookId": delivery["webhookId"], "status": "pending"})
    first, again = await webhook_receiver.wait_for(2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery["webhookId"]
    assert first.body == again.body
    (redelivered,) = await settled(client, workspace, action_id, "delivered")
    assert [a["attempt"] for a in redelivered["attemptsLog"]] == [1, 2]


async def test_redeliver_dead_brings_back_every_dead_delivery_and_counts_them(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    webhook_receiver.answer_next(*[Answer(502)] * 4)
    await post(client, workspace, closed_queue(), closed_queue())
    (dead,) = await settled(client, workspace, action_id, "dead")
    assert dead["attempts"] == 4 and "gave up after 4 attempts" in dead["lastError"]
    status, body = await call(
        client, workspace, "POST", native(workspace, action_id, "/deliveries/redeliver-dead")
    )
    assert (status, body) == (202, {"redelivered": 1})
    received = await webhook_receiver.wait_for(5)
    assert received[-1].headers["webhook-id"] == dead["webhookId"]
    (delivered,) = await settled(client, workspace, action_id, "delivered")
    assert [a["statusCode"] for a in delivered["attemptsLog"]] == [502, 502, 502, 502, 200]
    status, body = await call(
        client, workspace, "POST", native(workspace, action_id, "/deliveries/redeliver-dead")
    )
    assert body == {"redelivered": 0}


async def test_a_redelivered_dead_delivery_gets_a_fresh_retry_schedule(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    webhook_receiver.answer_next(*[Answer(502)] * 4)
    await post(client, workspace, closed_queue(), closed_queue())
    await settled(client, workspace, action_id, "dead")
    webhook_receiver.answer_next(Answer(502), Answer(503), Answer(500))
    await call(client, workspace, "POST", native(workspace, action_id, "/deliveries/redeliver-dead"))
    (delivered,) = await settled(client, workspace, action_id, "delivered")
    assert [a["statusCode"] for a in delivered["attemptsLog"]] == [502] * 5 + [503, 500, 200]


async def test_a_delivery_not_yet_finished_is_409_and_an_unknown_one_404(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    await call(client, workspace, "POST", native(workspace, action_id, "/triggers/0/pause"))
    await post(client, workspace, closed_queue(), closed_queue())
    (held,) = await settled(client, workspace, action_id, "paused")
    status, body = await call(
        client, workspace, "POST", native(workspace, action_id, f"/deliveries/{held['webhookId']}/redeliver")
    )
    assert (status, body["status"]) == (409, 409)
    assert body["message"].startswith("the delivery is paused")
    status, body = await call(
        client, workspace, "POST", native(workspace, action_id, "/deliveries/msg_nope/redeliver")
    )
    assert status == 404


# --- pause, resume, 410 --------------------------------------------------------------------------------


async def test_a_paused_trigger_holds_its_deliveries_until_resumed(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    status, state = await call(client, workspace, "POST", native(workspace, action_id, "/triggers/0/pause"))
    assert (status, state["paused"], state["index"]) == (200, True, 0)
    await post(client, workspace, closed_queue(), closed_queue())
    await settled(client, workspace, action_id, "paused")
    await asyncio.sleep(0.5)
    assert webhook_receiver.received == []
    status, state = await call(client, workspace, "POST", native(workspace, action_id, "/triggers/0/resume"))
    assert (status, state["paused"]) == (200, False)
    (got,) = await webhook_receiver.wait_for(1)
    assert json.loads(got.body) == {"n": "2"}
    await settled(client, workspace, action_id, "delivered")


async def test_resuming_a_trigger_clears_the_disable_a_410_left(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    webhook_receiver.answer_next(Answer(410))
    await post(client, workspace, closed_queue(), closed_queue())
    await settled(client, workspace, action_id, "dead")
    status, triggers = await call(client, workspace, "GET", native(workspace, action_id, "/triggers"))
    (trigger,) = triggers["data"]
    assert trigger["webhookURL"] == f"{webhook_receiver.url}/sms"
    assert "410 Gone" in trigger["disabledReason"]
    status, state = await call(client, workspace, "POST", native(workspace, action_id, "/triggers/0/resume"))
    assert (status, state["paused"], state["disabledReason"]) == (200, False, None)
    await call(client, workspace, "POST", native(workspace, action_id, "/deliveries/redeliver-dead"))
    await webhook_receiver.wait_for(2)
    await settled(client, workspace, action_id, "delivered")


@pytest.mark.parametrize("index", ["1", "-1", "x"])
async def test_a_trigger_the_action_does_not_have_is_404(
    api_client: Client, workspace: WorkspaceKey, index: str
) -> None:
    action_id = await setup_action(api_client, workspace, "https://hooks.example.com")
    status, _ = await call(
        api_client, workspace, "POST", native(workspace, action_id, f"/triggers/{index}/pause")
    )
    assert status == 404


# --- secrets -------------------------------------------------------------------------------------------


async def test_after_rotation_webhooks_carry_two_signatures_each_verifying_alone(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url)
    status, before = await call(client, workspace, "GET", native(workspace, action_id, "/secrets"))
    assert status == 200
    (old,) = before["secrets"]
    response = await client.post(native(workspace, action_id, "/secrets/rotate"), headers=workspace.headers)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    rotated = await response.json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated["secrets"] == [new, old]
    assert (await call(client, workspace, "GET", native(workspace, action_id, "/secrets")))[1]["secrets"] == [
        new,
        old,
    ]
    await post(client, workspace, closed_queue(), closed_queue())
    (got,) = await webhook_receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split()) == 2
    verify(new, got.headers, got.body)
    verify(old, got.headers, got.body)
    with pytest.raises(SignatureError):
        verify("whsec_" + "A" * 44, got.headers, got.body)


# --- access --------------------------------------------------------------------------------------------


async def test_read_keys_list_deliveries_but_secrets_and_changes_need_admin(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    action_id = await setup_action(api_client, workspace, "https://hooks.example.com")
    reader = await key_for(workspace, "read")
    assert (await call(api_client, reader, "GET", native(workspace, action_id, "/deliveries")))[0] == 200
    assert (await call(api_client, reader, "GET", native(workspace, action_id, "/triggers")))[0] == 200
    for method, path in [
        ("GET", "/secrets"),
        ("POST", "/secrets/rotate"),
        ("POST", "/deliveries/msg_x/redeliver"),
        ("POST", "/deliveries/redeliver-dead"),
        ("POST", "/triggers/0/pause"),
        ("POST", "/triggers/0/resume"),
    ]:
        status, body = await call(api_client, reader, method, native(workspace, action_id, path))
        assert (status, body["status"]) == (403, 403), path


async def test_another_workspaces_action_is_404_on_every_path(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    action_id = await setup_action(api_client, workspace, "https://hooks.example.com")
    other = await workspaces.create_workspace(db, "other")
    key = await workspaces.create_key(db, other.workspace_id, workspaces.SCOPES)
    stranger = WorkspaceKey(other.workspace_id, key.key_id, key.token)
    paths = ["/deliveries", "/triggers", "/secrets"]
    for path in paths:
        assert (await call(api_client, stranger, "GET", native(workspace, action_id, path)))[0] == 404
        assert (await call(api_client, stranger, "GET", native(stranger, action_id, path)))[0] == 404
    for path in ["/secrets/rotate", "/deliveries/redeliver-dead", "/triggers/0/pause"]:
        assert (await call(api_client, stranger, "POST", native(stranger, action_id, path)))[0] == 404
    status, secrets = await call(api_client, workspace, "GET", native(workspace, action_id, "/secrets"))
    assert status == 200 and len(secrets["secrets"]) == 1  # nothing rotated


# --- the profile view's firing history -----------------------------------------------------------------


async def test_firing_history_lists_a_persons_firings_newest_first_in_jds_shape(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    webhook_receiver: WebhookReceiver,
    db: asyncpg.Connection,
) -> None:
    client = await make_client(**FAST)
    action_id = await setup_action(client, workspace, webhook_receiver.url, cooldownPeriodInMinutes=0)
    await post(client, workspace, closed_queue(), closed_queue())
    await post(client, workspace, closed_queue())
    person_id, template_id = await db.fetchrow("SELECT person_id, template_id FROM firings LIMIT 1")
    who = views.Who(person_id=person_id)
    _, history = await views.read_view(db, workspace.workspace_id, template_id, who, firings=10)
    assert [h["actionId"] for h in history] == [action_id, action_id]
    assert {h["doNotDisturbPeriod"] for h in history} == {"0"}
    assert history[0]["triggeredAt"] >= history[1]["triggeredAt"]
    assert history[0]["triggeredAt"].endswith("Z") and len(history[0]["triggeredAt"]) == 24
    _, newest = await views.read_view(db, workspace.workspace_id, template_id, who, firings=1)
    assert len(newest) == 1
