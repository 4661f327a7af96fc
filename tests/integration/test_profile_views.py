"""Profile views over HTTP: the JDS progressive profile view paths and the native persons/{p}/profiles/{t}.

Templates are made through the template API and events posted through the native ingest endpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from journey_engine import workspaces
from journey_engine.cloudevents import format_time
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
PHONE = "+12263762555"
_n = 0


def attribute(**over: Any) -> dict[str, Any]:
    return {
        "version": "0.1", "event": "Payment Queue", "metaDataType": "string", "metaData": "queue",
        "limit": 0, "displayName": "calls", "lookBackDurationType": "minutes", "lookBackPeriod": 5,
        "aggregationMode": "Count", "verbose": False, "widgetAttributes": {"type": "table"}, **over,
    }  # fmt: skip


async def make_template(client: Client, ws: WorkspaceKey, name: str, *attributes: dict[str, Any]) -> str:
    response = await client.post(
        f"/admin/v1/api/profile-view-template/workspace-id/{ws.workspace_id}",
        data=json.dumps({"name": name, "attributes": list(attributes)}),
        headers=ws.headers,
    )
    assert response.status == 201, await response.text()
    template_id: str = (await response.json())["data"]["id"]
    return template_id


def event(
    type_: str = "Payment Queue", *, at: datetime | None = None, identity: str = PHONE, **data: Any
) -> dict[str, Any]:
    global _n
    _n += 1
    when = at or datetime.now(UTC) - timedelta(seconds=10)
    kind = "phone" if identity.startswith("+") else "temporaryId"
    return {"id": f"v{_n}", "specversion": "1.0", "type": type_, "source": "ivr", "time": when.isoformat(),
            "identity": identity, "identitytype": kind, "data": data}  # fmt: skip


async def post(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 202, await response.text()


def jds_path(
    ws: WorkspaceKey, who: str, key: str, by: str = "identity", template_by: str = "template-id"
) -> str:
    return f"/v1/api/progressive-profile-view/workspace-id/{ws.workspace_id}/{by}/{who}/{template_by}/{key}"


async def jds_view(client: Client, ws: WorkspaceKey, path: str) -> Any:
    response = await client.get(path, headers=ws.headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def results(client: Client, ws: WorkspaceKey, template: str, who: str = PHONE) -> list[str | None]:
    body = await jds_view(client, ws, jds_path(ws, who, template))
    return [a["result"] for a in body["data"][0]["attributes"]]


async def native(client: Client, ws: WorkspaceKey, who: str, template: str) -> tuple[int, Any]:
    response = await client.get(
        f"/v1/workspaces/{ws.workspace_id}/persons/{who}/profiles/{template}", headers=ws.headers
    )
    return response.status, await response.json()


async def person_of(db: asyncpg.Connection, alias: str) -> str:
    person: str = await db.fetchval("SELECT person_id FROM aliases WHERE alias = $1", alias)
    return person


# --- JDS views -----------------------------------------------------------------------------------------


async def test_repeat_caller_count_of_payment_queue_events_in_the_last_five_minutes(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """JDS use case 2: the flow looks the caller up by number and reads the count."""
    template_id = await make_template(api_client, workspace, "repeat-caller", attribute())
    now = datetime.now(UTC)
    await post(
        api_client, workspace,
        *(event(at=now - timedelta(minutes=m), queue="billing") for m in (0.1, 2, 4.5)),
        event(at=now - timedelta(minutes=6), queue="billing"),  # outside the window
        event("Closed Queue", queue="billing"),  # another type
        event(identity="+12263762556", queue="billing"),  # another caller
    )  # fmt: skip
    person = await person_of(db, PHONE)
    paths = [
        jds_path(workspace, "(226) 376-2555", template_id),
        jds_path(workspace, "2263762555", "repeat-caller", template_by="template-name"),
        jds_path(workspace, "+12263762555", "repeat-caller"),
        jds_path(workspace, person, template_id, by="person-id"),
        jds_path(workspace, person, "repeat-caller", by="person-id", template_by="template-name"),
    ]
    for path in paths:
        body = await jds_view(api_client, workspace, path)
        ids = {"organizationId": workspace.workspace_id, "workspaceId": workspace.workspace_id,
               "personId": person, "templateId": template_id}  # fmt: skip
        assert body["meta"] == ids, path
        [view] = body["data"]
        assert {k: view[k] for k in ids} == ids
        assert view["attributes"] == [
            {"queryTemplate": attribute(rules=None), "result": "3", "error": None, "journeyEvents": []}
        ]
        assert view["systemMetdata"] == {"journeyActionTriggerHistories": []}
        assert view["timestamp"].endswith("Z")


async def test_each_aggregation_mode_gives_its_jds_result_string(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    def attr(name: str, mode: str, type_: str, field: str, **more: Any) -> dict[str, Any]:
        return attribute(event="Payment", displayName=name, aggregationMode=mode, metaDataType=type_,
                         metaData=field, lookBackDurationType="days", lookBackPeriod=1, **more)  # fmt: skip

    await make_template(
        api_client, workspace, "modes",
        attr("values", "Value", "integer", "amount"),
        attr("latest status", "Value", "string", "status", limit=1),
        attr("count", "Count", "integer", "amount"),
        attr("sum", "Sum", "integer", "amount"),
        attr("max", "Max", "integer", "amount"),
        attr("min", "Min", "integer", "amount"),
        attr("average", "Average", "integer", "amount"),
        attr("distinct", "Distinct", "integer", "amount"),
        attr("price sum", "Sum", "double", "price"),
        attr("latest due", "Max", "utc_datetime", "due"),
        attr("never", "Max", "integer", "missing"),
    )  # fmt: skip
    now = datetime.now(UTC)

    def payment(seconds_ago: int, **data: Any) -> dict[str, Any]:
        return event("Payment", at=now - timedelta(seconds=seconds_ago), **data)

    await post(
        api_client, workspace,
        payment(3, amount=5, price=1.5, due="2024-05-01T10:00:00Z", status="open"),
        payment(2, amount=3, price=2.25, due="2024-05-01T11:00:00+02:00", status="late"),
        payment(1, amount="5", price=0.1, status="paid"),
    )  # fmt: skip
    assert await results(api_client, workspace, "modes") == [
        "5,3,5", "paid", "3", "13", "5", "3", "4.333333333333333", "5,3", "3.85",
        "2024-05-01T10:00:00Z", None,
    ]  # fmt: skip


async def test_a_verbose_attribute_lists_its_events_as_the_feed_renders_them(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await make_template(
        api_client, workspace, "verbose",
        attribute(displayName="last two", aggregationMode="Value", limit=2, verbose=True),
        attribute(displayName="quiet", aggregationMode="Value", limit=2),
    )  # fmt: skip
    now = datetime.now(UTC)
    await post(
        api_client, workspace, *(event(at=now - timedelta(seconds=s), queue=f"q{s}") for s in (3, 2, 1))
    )
    body = await jds_view(api_client, workspace, jds_path(workspace, PHONE, "verbose"))
    loud, quiet = body["data"][0]["attributes"]
    assert loud["result"] == quiet["result"] == "q1,q2"
    assert quiet["journeyEvents"] == []
    feed = await api_client.get(
        f"/v1/api/events/workspace-id/{workspace.workspace_id}",
        params={"identity": PHONE},
        headers=workspace.headers,
    )
    newest_two = (await feed.json())["data"][:2]
    assert all(isinstance(e, str) for e in loud["journeyEvents"])
    assert [json.loads(e) for e in loud["journeyEvents"]] == newest_two


async def test_values_that_do_not_cast_are_skipped_and_reported_in_error(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await make_template(
        api_client, workspace, "amounts",
        attribute(displayName="total", aggregationMode="Sum", metaDataType="integer", metaData="amount"),
        attribute(displayName="count", aggregationMode="Count", metaDataType="integer", metaData="amount"),
    )  # fmt: skip
    await post(
        api_client, workspace, event(amount=7), event(amount="seven"), event(amount=2.5), event(other=1)
    )
    body = await jds_view(api_client, workspace, jds_path(workspace, PHONE, "amounts"))
    total, count = body["data"][0]["attributes"]
    assert (total["result"], count["result"]) == ("7", "4")
    assert total["error"].startswith("2 event(s) skipped, amount is not integer: event ")
    assert "'seven' is not an integer" in total["error"] and "2.5 is not an integer" in total["error"]


async def test_a_person_without_matching_events_gets_a_view_of_empty_values(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await make_template(
        api_client, workspace, "empty", attribute(), attribute(displayName="latest", aggregationMode="Value")
    )
    await post(api_client, workspace, event("Something Else"))
    assert await results(api_client, workspace, "empty") == ["0", None]


async def test_an_event_is_in_the_view_as_soon_as_its_202_is_answered(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey
) -> None:
    engines = [await make_client(), await make_client()]
    await make_template(engines[0], workspace, "repeat-caller", attribute())
    acknowledged = 0

    async def post_then_read(i: int) -> None:
        nonlocal acknowledged
        await post(engines[i % 2], workspace, event(queue=str(i)))
        acknowledged += 1
        for _ in range(3):
            seen = acknowledged
            [count] = await results(engines[(i + 1) % 2], workspace, "repeat-caller")
            assert count is not None and int(count) >= seen

    await asyncio.gather(*(post_then_read(i) for i in range(20)))
    assert await results(engines[0], workspace, "repeat-caller") == ["20"]


async def test_a_value_drops_when_its_event_leaves_the_window_before_any_sweep(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    client = await make_client(sweep_interval=60)  # the sweeper will not run during this test
    await make_template(client, workspace, "last-minute", attribute(lookBackPeriod=1))
    sent_at = datetime.now(UTC) - timedelta(seconds=58.5)
    await post(client, workspace, event(at=sent_at, queue="billing"))
    assert await results(client, workspace, "last-minute") == ["1"]
    leaves_at = sent_at + timedelta(minutes=1, microseconds=1)
    await asyncio.sleep((leaves_at - datetime.now(UTC)).total_seconds() + 0.05)
    assert await results(client, workspace, "last-minute") == ["0"]
    stored = await db.fetchval(
        "SELECT v.vals FROM profile_values v JOIN templates t USING (workspace_id, template_id)"
        " WHERE t.name = $1",
        "last-minute",
    )
    assert stored[0][0] == 1  # still the stored value: the read computed the exact one


async def test_a_merged_away_person_id_reads_the_survivors_view(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    template_id = await make_template(api_client, workspace, "repeat-caller", attribute())
    await post(
        api_client, workspace, event(identity="visitor-1"), event(identity="visitor-1"), event(queue="x")
    )
    visitor, caller = await person_of(db, "visitor-1"), await person_of(db, PHONE)
    linking = {**event(queue="y"), "previousidentity": "visitor-1"}
    await post(api_client, workspace, linking)
    for asked in (visitor, caller):
        body = await jds_view(api_client, workspace, jds_path(workspace, asked, template_id, by="person-id"))
        assert body["meta"]["personId"] == caller
        assert body["data"][0]["attributes"][0]["result"] == "4"
        status, answer = await native(api_client, workspace, asked, template_id)
        assert (status, answer["personId"], answer["attributes"][0]["value"]) == (200, caller, 4)


# --- native view ---------------------------------------------------------------------------------------


async def test_native_view_has_typed_values_and_their_freshness(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    template_id = await make_template(
        api_client, workspace, "typed",
        attribute(displayName="calls"),
        attribute(displayName="queues", aggregationMode="Distinct"),
        attribute(displayName="average wait", aggregationMode="Average", metaDataType="integer",
                  metaData="wait", lookBackDurationType="hours", lookBackPeriod=1),
        attribute(displayName="last call", aggregationMode="Max", metaDataType="utc_datetime",
                  metaData="calledAt"),
        attribute(displayName="total wait", aggregationMode="Sum", metaDataType="integer", metaData="wait"),
    )  # fmt: skip
    first = datetime.now(UTC) - timedelta(seconds=20, microseconds=123)
    second = first + timedelta(seconds=5)
    await post(
        api_client, workspace,
        event(at=first, queue="billing", wait=3, calledAt="2024-05-01T10:00:00.5Z"),
        event(at=second, queue="sales", wait="x"),
    )  # fmt: skip
    for who in (PHONE, "(226)%20376-2555", await person_of(db, PHONE)):
        status, body = await native(api_client, workspace, who, "typed")
        assert status == 200, body
        assert body["personId"] == await person_of(db, PHONE)
        assert (body["templateId"], body["templateName"]) == (template_id, "typed")
        computed = datetime.fromisoformat(body["computedAt"])
        assert body["nextChangeAt"] == format_time(first + timedelta(minutes=5, microseconds=1))
        calls, queues, wait, last, total = body["attributes"]
        assert calls == {
            "displayName": "calls", "aggregationMode": "Count", "metaDataType": "string", "value": 2,
            "result": "2", "events": 2, "error": None,
            "windowStart": format_time(computed - timedelta(minutes=5)), "windowEnd": body["computedAt"],
        }  # fmt: skip
        assert (queues["value"], queues["result"]) == (["sales", "billing"], "sales,billing")
        assert (wait["value"], wait["result"], wait["events"]) == (3.0, "3.0", 2)
        assert wait["windowStart"] == format_time(computed - timedelta(hours=1))
        assert wait["error"] is not None and "'x' is not an integer" in wait["error"]
        assert (last["value"], last["result"]) == ("2024-05-01T10:00:00.500Z", "2024-05-01T10:00:00.500Z")
        assert (total["value"], total["result"]) == (3, "3")


# --- not found and access ------------------------------------------------------------------------------


async def test_an_unknown_person_or_template_is_404(api_client: Client, workspace: WorkspaceKey) -> None:
    await post(api_client, workspace, event())
    for path in (
        jds_path(workspace, "+12263760000", "journey-default-template"),
        jds_path(workspace, "ffffffffffffffffffffffff", "journey-default-template", by="person-id"),
        jds_path(workspace, PHONE, "no-such-template"),
        jds_path(workspace, PHONE, "no-such-template", template_by="template-name"),
    ):
        response = await api_client.get(path, headers=workspace.headers)
        assert response.status == 404, path
        assert (await response.json())["status"] == "404 NOT_FOUND"
    for who, template in ((PHONE, "no-such-template"), ("+12263760000", "journey-default-template")):
        status, body = await native(api_client, workspace, who, template)
        assert (status, body["status"]) == (404, 404)


async def test_an_unknown_template_is_404_before_a_malformed_identity_is_400(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    too_long = "x" * 2000
    response = await api_client.get(
        jds_path(workspace, too_long, "no-such-template"), headers=workspace.headers
    )
    assert (response.status, (await response.json())["message"]) == (
        404,
        "template 'no-such-template' not found",
    )
    response = await api_client.get(
        jds_path(workspace, too_long, "journey-default-template"), headers=workspace.headers
    )
    body = await response.json()
    assert response.status == 400 and body["message"].startswith("identity: must be at most"), body


async def test_a_person_id_and_a_person_known_only_by_another_spelling_both_resolve(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    """The view tries the identity's normalised form (here an email's, case-folded) and then the form
    it was sent in (here a temporaryId that looks like an email)."""
    await post(api_client, workspace, event(identity="Visitor.7@Example.com"))
    status, body = await native(api_client, workspace, "Visitor.7@Example.com", "journey-default-template")
    assert status == 200, body
    person_id = body["personId"]
    status, by_id = await native(api_client, workspace, person_id, "journey-default-template")
    assert (status, by_id["personId"]) == (200, person_id)
    response = await api_client.get(
        jds_path(workspace, person_id, "journey-default-template", by="person-id"), headers=workspace.headers
    )
    assert response.status == 200
    assert (await response.json())["data"][0]["personId"] == person_id


async def test_views_need_the_read_scope_and_stay_in_their_workspace(
    api_client: Client,
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    key_for: Callable[..., Awaitable[WorkspaceKey]],
) -> None:
    await post(api_client, workspace, event())
    writer = await key_for(workspace, "events:write")
    reader = await key_for(workspace, "read")
    path = jds_path(workspace, PHONE, "journey-default-template")
    assert (await api_client.get(path, headers=writer.headers)).status == 403
    assert (await api_client.get(path, headers=reader.headers)).status == 200
    other = await workspaces.create_workspace(db, "other")
    theirs = path.replace(workspace.workspace_id, other.workspace_id)
    assert (await api_client.get(theirs, headers=workspace.headers)).status == 404
    status, _ = await native(api_client, WorkspaceKey(other.workspace_id, "", workspace.token), PHONE, "x")
    assert status == 404
