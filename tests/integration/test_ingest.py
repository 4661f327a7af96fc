"""Event ingest through HTTP: JDS publish and the native endpoint in all three CloudEvents modes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from journey_engine.settings import Settings
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
BATCH = "application/cloudevents-batch+json"


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "evt-1",
        "specversion": "1.0",
        "type": "Payment",
        "source": "/ivr/billing",
        "time": "2026-11-20T10:00:00.000Z",
        "identity": "+12263762555",
        "identitytype": "phone",
        "datacontenttype": "application/json",
        "data": {"category": "Water", "status": "overdue", "amount": 42.5},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def native(ws: WorkspaceKey) -> str:
    return f"/v1/workspaces/{ws.workspace_id}/events"


async def stored_events(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM events ORDER BY seq")


async def test_jds_publish_answers_202_after_the_event_is_committed(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    response = await api_client.post(
        f"/publish/v1/api/event?workspaceId={workspace.workspace_id}", json=event(), headers=workspace.headers
    )
    assert response.status == 202
    assert await response.json() == {
        "meta": {"organizationId": workspace.workspace_id, "workspaceId": workspace.workspace_id},
        "data": {"message": "Accepted for processing"},
    }
    (row,) = await stored_events(db)
    assert row["workspace_id"] == workspace.workspace_id
    assert (row["id"], row["type"], row["source"]) == ("evt-1", "Payment", "/ivr/billing")
    assert row["data"] == {"category": "Water", "status": "overdue", "amount": 42.5}


async def test_jds_publish_needs_the_workspace_id(api_client: Client, workspace: WorkspaceKey) -> None:
    response = await api_client.post("/publish/v1/api/event", json=event(), headers=workspace.headers)
    assert response.status == 400
    body = await response.json()
    assert body["status"] == "400 BAD_REQUEST"
    assert body["errors"] == ["workspaceId: required query parameter"]


async def test_publishing_into_another_workspace_is_404_and_stores_nothing(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    response = await api_client.post(
        "/publish/v1/api/event?workspaceId=ffffffffffffffffffffffff", json=event(), headers=workspace.headers
    )
    assert response.status == 404
    assert await stored_events(db) == []


async def test_posting_events_needs_the_events_write_scope(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    reader = await key_for(workspace, "read")
    assert (await api_client.post(native(workspace), json=event(), headers=reader.headers)).status == 403
    writer = await key_for(workspace, "events:write")
    assert (await api_client.post(native(workspace), json=event(), headers=writer.headers)).status == 202


async def test_structured_mode_with_cloudevents_content_type(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    response = await api_client.post(
        native(workspace),
        data=json.dumps(event()),
        headers={**workspace.headers, "Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    assert response.status == 202
    body = await response.json()
    assert body["accepted"] == 1
    assert body["events"][0]["id"] == "evt-1"
    assert len(await stored_events(db)) == 1


async def test_binary_mode_takes_attributes_from_ce_headers(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    headers = {
        **workspace.headers,
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-type": "Page Visit",
        "ce-source": "/web/shop",
        "ce-identity": "Jane.Doe%40Example.com",
        "ce-identitytype": "email",
        "ce-channel": "web",
    }
    response = await api_client.post(native(workspace), data=b'{"page": "/checkout"}', headers=headers)
    assert response.status == 202, await response.text()
    (row,) = await stored_events(db)
    assert row["identity"] == "jane.doe@example.com"
    assert row["identity_raw"] == "Jane.Doe@Example.com"
    assert row["data"] == {"page": "/checkout"}
    assert row["extensions"] == {"channel": "web"}


async def test_batch_mode_stores_every_event_in_order(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    batch = [event(id=f"e{i}", identity=f"visitor-{i}", identitytype="temporaryId") for i in range(50)]
    response = await api_client.post(
        native(workspace), data=json.dumps(batch), headers={**workspace.headers, "Content-Type": BATCH}
    )
    assert response.status == 202
    body = await response.json()
    assert body["accepted"] == 50
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs)
    assert [r["id"] for r in await stored_events(db)] == [f"e{i}" for i in range(50)]


async def test_bad_event_gets_400_listing_every_problem_by_field(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    bad = event(id=None, specversion="0.3", identitytype="fax", time="yesterday")
    response = await api_client.post(native(workspace), json=bad, headers=workspace.headers)
    assert response.status == 400
    fields = {p["field"] for p in (await response.json())["errors"]}
    assert {"id", "specversion", "identitytype", "time"} <= fields
    jds = await api_client.post(
        f"/publish/v1/api/event?workspaceId={workspace.workspace_id}", json=bad, headers=workspace.headers
    )
    assert jds.status == 400
    assert any(e.startswith("specversion:") for e in (await jds.json())["errors"])
    assert await stored_events(db) == []


async def test_batch_with_one_bad_event_stores_nothing_and_names_its_index(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    batch = [event(id="a"), event(id="b", identity="not a phone"), event(id="c", type=None)]
    response = await api_client.post(
        native(workspace), data=json.dumps(batch), headers={**workspace.headers, "Content-Type": BATCH}
    )
    assert response.status == 400
    problems = (await response.json())["errors"]
    assert {(p["index"], p["field"]) for p in problems} == {(1, "identity"), (2, "type")}
    assert await stored_events(db) == []


async def test_unknown_top_level_fields_are_kept_as_extensions(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    response = await api_client.post(
        native(workspace), json=event(previously="+12263760000", agentId="a-7"), headers=workspace.headers
    )
    assert response.status == 202
    (row,) = await stored_events(db)
    assert row["extensions"] == {"previously": "+12263760000", "agentId": "a-7"}


async def test_every_member_is_stored_as_sent_whatever_its_json(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """Numbers beyond 64 bits, floats, escapes and characters outside the BMP survive the batch's trip to
    PostgreSQL (one JSON document per batch), in data, extensions and text attributes alike."""
    data = {"big": 2**70, "neg": -(2**64), "f": 0.1, "tiny": 1e-7, "e": 1e16, "t": True, "n": None,
            "u": "é\u2028😀\"\\\n", "nested": {"a": [1, 2.5, [], {}], "k": "v"}}  # fmt: skip
    sent = event(
        id="id-😀", source="/ivr/é", subject='quote"d', data=data, agentNote="ünï 😀", previousidentity="none"
    )
    response = await api_client.post(native(workspace), json=sent, headers=workspace.headers)
    assert response.status == 202, await response.text()
    (row,) = await stored_events(db)
    assert row["data"] == data
    assert (row["id"], row["source"], row["subject"], row["previous_identity"]) == (
        "id-😀",
        "/ivr/é",
        'quote"d',
        "none",
    )
    assert row["extensions"] == {"agentNote": "ünï 😀"}
    assert row["time"] == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert (row["identity"], row["identity_raw"], row["datacontenttype"]) == (
        "+12263762555", "+12263762555", "application/json",
    )  # fmt: skip


async def test_phone_identity_is_normalised_and_the_raw_value_kept(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    for i, raw in enumerate(["+12263762555", "12263762555", "(226) 376-2555"]):
        response = await api_client.post(
            native(workspace), json=event(id=f"p{i}", identity=raw), headers=workspace.headers
        )
        assert response.status == 202
    rows = await stored_events(db)
    assert {r["identity"] for r in rows} == {"+12263762555"}
    assert [r["identity_raw"] for r in rows] == ["+12263762555", "12263762555", "(226) 376-2555"]


async def test_retried_identical_event_is_stored_once(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    first = await api_client.post(native(workspace), json=event(), headers=workspace.headers)
    again = await api_client.post(native(workspace), json=event(), headers=workspace.headers)
    jds = await api_client.post(
        f"/publish/v1/api/event?workspaceId={workspace.workspace_id}", json=event(), headers=workspace.headers
    )
    assert (first.status, again.status, jds.status) == (202, 202, 202)
    retried = await again.json()
    assert retried["duplicates"] == 1
    assert retried["events"][0]["seq"] == (await first.json())["events"][0]["seq"]
    assert len(await stored_events(db)) == 1


async def test_retry_of_an_event_without_time_is_still_a_duplicate(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    for _ in range(2):
        assert (
            await api_client.post(native(workspace), json=event(time=None), headers=workspace.headers)
        ).status == 202
    (row,) = await stored_events(db)
    assert row["time"] == row["received_at"] or abs((row["time"] - row["received_at"]).total_seconds()) < 5


async def test_events_that_share_an_id_but_differ_are_all_kept(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    for status in ("overdue", "paid"):
        body = event(id="TEST", data={"category": "Water", "status": status})
        assert (await api_client.post(native(workspace), json=body, headers=workspace.headers)).status == 202
    assert [r["data"]["status"] for r in await stored_events(db)] == ["overdue", "paid"]


async def test_same_event_in_two_workspaces_is_stored_in_each(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    from journey_engine import workspaces

    other = await workspaces.create_workspace(db, "other")
    other_key = await workspaces.create_key(db, other.workspace_id, ["events:write"])
    headers = {"Authorization": f"Bearer {other_key.token}"}
    assert (await api_client.post(native(workspace), json=event(), headers=workspace.headers)).status == 202
    response = await api_client.post(
        f"/v1/workspaces/{other.workspace_id}/events", json=event(), headers=headers
    )
    assert (await response.json())["duplicates"] == 0
    assert {r["workspace_id"] for r in await stored_events(db)} == {
        workspace.workspace_id,
        other.workspace_id,
    }


async def test_unsupported_content_type_is_415(api_client: Client, workspace: WorkspaceKey) -> None:
    response = await api_client.post(
        native(workspace), data=b"id=1", headers={**workspace.headers, "Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert "text/plain" in (await response.json())["message"]


async def test_oversized_body_is_413_and_stores_nothing(
    make_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    database: str,
) -> None:
    client = await make_client(database, max_body_bytes=4096)
    big = event(data={"blob": "x" * 5000})
    response = await client.post(native(workspace), json=big, headers=workspace.headers)
    assert response.status == 413
    assert (await response.json())["status"] == 413
    assert await stored_events(db) == []


async def test_too_many_events_in_one_batch_is_400(api_client: Client, workspace: WorkspaceKey) -> None:
    batch = [event(id=str(i)) for i in range(1001)]
    response = await api_client.post(
        native(workspace), data=json.dumps(batch), headers={**workspace.headers, "Content-Type": BATCH}
    )
    assert response.status == 400
    assert "at most 1000" in (await response.json())["message"]


async def test_event_postgres_cannot_store_fails_alone_while_others_succeed(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    bad = event(id="nul", data={"note": "a\u0000b"})
    goods = [event(id=f"g{i}") for i in range(10)]
    responses = await asyncio.gather(
        *(api_client.post(native(workspace), json=e, headers=workspace.headers) for e in [*goods, bad])
    )
    assert [r.status for r in responses] == [202] * 10 + [400]
    assert "cannot be stored" in (await responses[-1].json())["errors"][0]["reason"]
    assert sorted(r["id"] for r in await stored_events(db)) == sorted(f"g{i}" for i in range(10))


async def test_overload_answers_503_with_retry_after_and_loses_no_accepted_event(
    make_client: Callable[..., Awaitable[Client]],
    workspace: WorkspaceKey,
    db: asyncpg.Connection,
    database: str,
) -> None:
    client = await make_client(database, ingest_max_pending=20)
    blocker = await asyncpg.connect(database)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # writes now wait
        waiting = [
            asyncio.create_task(
                client.post(native(workspace), json=event(id=f"w{i}"), headers=workspace.headers)
            )
            for i in range(20)
        ]
        await asyncio.sleep(0.3)
        refused = await client.post(native(workspace), json=event(id="late"), headers=workspace.headers)
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        await lock.rollback()
        assert [r.status for r in await asyncio.gather(*waiting)] == [202] * 20
    finally:
        await blocker.close()
    assert sorted(r["id"] for r in await stored_events(db)) == sorted(f"w{i}" for i in range(20))


@pytest.mark.parametrize("count", [1, 200])
async def test_concurrent_requests_are_all_committed_before_their_answer(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, count: int
) -> None:
    checker = asyncio.Lock()

    async def serialised(i: int) -> None:
        response = await api_client.post(native(workspace), json=event(id=f"c{i}"), headers=workspace.headers)
        assert response.status == 202
        seq = (await response.json())["events"][0]["seq"]
        async with checker:
            assert await db.fetchval("SELECT count(*) FROM events WHERE seq = $1", seq) == 1

    await asyncio.gather(*(serialised(i) for i in range(count)))
    assert await db.fetchval("SELECT count(*) FROM events") == count


async def test_lost_database_connection_answers_503_and_the_next_request_succeeds(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    blocker = await asyncpg.connect(database)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        posting = asyncio.create_task(
            api_client.post(native(workspace), json=event(), headers=workspace.headers)
        )
        await asyncio.sleep(0.3)
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE relation = 'events'::regclass AND NOT granted"
        )
        response = await posting
        assert response.status == 503
        assert "Retry-After" in response.headers
        await lock.rollback()
    finally:
        await blocker.close()
    assert await stored_events(db) == []
    retry = await api_client.post(native(workspace), json=event(), headers=workspace.headers)
    assert retry.status == 202
    assert len(await stored_events(db)) == 1
