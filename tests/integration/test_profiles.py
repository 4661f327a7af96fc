"""Stored profile values: computed in the ingest transaction, exact under concurrency, swept as they age."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from journey_engine import identity, pipeline
from journey_engine.cloudevents import parse_batch
from journey_engine.db import connect
from journey_engine.events import EventRow, insert_events
from profiles import catalog, store
from profiles.templates import TemplateSpec
from tests.helpers import WorkspaceKey, strict, waits_for_a_lock

Client = TestClient  # type: ignore[type-arg]
_n = 0


def event(
    identity: str, type_: str = "task:new", when: datetime | None = None, **data: Any
) -> dict[str, Any]:
    global _n
    _n += 1
    kind = "phone" if identity.startswith("+") else "temporaryId"
    body = {"id": f"p{_n}", "specversion": "1.0", "type": type_, "source": "/cc", "identity": identity,
            "identitytype": kind, "data": data}  # fmt: skip
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


async def stored(db: asyncpg.Connection, template_name: str, alias: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        """SELECT v.* FROM profile_values v
           JOIN templates t ON t.workspace_id = v.workspace_id AND t.template_id = v.template_id
           JOIN aliases a ON a.workspace_id = v.workspace_id AND a.person_id = v.person_id
           WHERE t.name = $1 AND a.alias = $2""",
        template_name,
        alias,
    )


async def make_template(db: asyncpg.Connection, ws: WorkspaceKey, **attribute: Any) -> None:
    spec = {"event": "Payment Queue", "metaDataType": "string", "metaData": "queue", "limit": 0,
            "displayName": "calls", "lookBackDurationType": "minutes", "lookBackPeriod": 5,
            "aggregationMode": "Count", **attribute}  # fmt: skip
    await catalog.create(
        db, ws.workspace_id, TemplateSpec.model_validate({"name": "repeat", "attributes": [spec]}), "t"
    )


async def person_with_an_event(
    client: Client, db: asyncpg.Connection, ws: WorkspaceKey, **attribute: Any
) -> str:
    """Make the `repeat` template (with `attribute`'s changes) and a person with one event it counts."""
    await make_template(db, ws, **attribute)
    await post(client, ws, event("+12263762555", "Payment Queue", datetime.now(UTC), queue="q"))
    person: str = await db.fetchval("SELECT person_id FROM aliases WHERE alias = '+12263762555'")
    return person


async def test_ingest_stores_the_default_templates_values_in_the_same_transaction(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("caller-1"), event("caller-1"), event("caller-1", "other"))
    row = await stored(db, "journey-default-template", "caller-1")
    assert row is not None
    assert [v[0] for v in row["vals"]] == [2, 2]
    assert row["next_change_at"] is not None


async def test_concurrent_batches_for_one_person_never_store_a_value_missing_events(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    engines = [await make_client(), await make_client()]
    await asyncio.gather(*(post(engines[i % 2], workspace, event("busy"), event("busy")) for i in range(30)))
    row = await stored(db, "journey-default-template", "busy")
    assert row is not None
    assert [v[0] for v in row["vals"]] == [60, 60]


async def test_a_value_changes_when_its_event_leaves_the_window_with_no_new_event(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await make_template(db, workspace, lookBackPeriod=1)
    leaves_at = datetime.now(UTC) - timedelta(seconds=58.5)
    await post(api_client, workspace, event("+12263762555", "Payment Queue", leaves_at, queue="billing"))
    row = await stored(db, "repeat", "+12263762555")
    assert row is not None
    assert row["vals"][0][0] == 1
    assert row["next_change_at"] == leaves_at + timedelta(minutes=1, microseconds=1)
    deadline = row["next_change_at"] + timedelta(seconds=1)
    while datetime.now(UTC) < deadline + timedelta(seconds=2):
        row = await stored(db, "repeat", "+12263762555")
        assert row is not None
        if row["vals"][0][0] == 0:
            break
        await asyncio.sleep(0.05)
    assert row["vals"][0][0] == 0
    assert row["computed_at"] <= deadline  # swept within a second of the change
    assert row["next_change_at"] is None


async def test_a_merge_recomputes_the_survivor_from_both_persons_events(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("visitor"), event("visitor"), event("cust"))
    linking = {**event("cust"), "previousidentity": "visitor"}
    await post(api_client, workspace, linking)
    row = await stored(db, "journey-default-template", "cust")
    assert row is not None
    assert [v[0] for v in row["vals"]] == [4, 4]
    assert await db.fetchval("SELECT count(*) FROM profile_values") == 1


async def test_a_batch_creating_and_merging_new_persons_stores_only_the_survivors_values(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    linking = {**event("cust"), "previousidentity": "visitor"}
    await post(api_client, workspace, event("visitor"), event("visitor"), event("cust"), linking)
    row = await stored(db, "journey-default-template", "cust")
    assert row is not None
    assert [v[0] for v in row["vals"]] == [4, 4]
    assert await db.fetchval("SELECT count(*) FROM profile_values") == 1


async def test_a_new_template_is_computed_for_persons_who_already_have_events(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    await post(api_client, workspace, *(event(f"v{i}", "Payment Queue", now, queue="q") for i in range(3)))
    await make_template(db, workspace)
    for _ in range(100):
        values = await db.fetch(
            "SELECT vals FROM profile_values v JOIN templates t USING (workspace_id, template_id) "
            "WHERE t.name = 'repeat'"
        )
        if len(values) == 3 and all(v["vals"] for v in values):
            break
        await asyncio.sleep(0.05)
    assert [v["vals"][0][0] for v in values] == [1, 1, 1]


async def test_values_computed_with_a_template_just_replaced_do_not_overwrite_the_new_definitions(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    person = await person_with_an_event(api_client, db, workspace)
    racing = await connect(database)
    try:
        async with racing.transaction():
            old = await store.templates_for(racing, workspace.workspace_id, ["Payment Queue"])
            stored = await catalog.find(db, workspace.workspace_id, "repeat")
            assert stored is not None
            changed = stored.spec.model_copy(update={"attributes": stored.spec.attributes * 2})
            changed = TemplateSpec.model_validate(
                {"name": "repeat", "attributes": [
                    {**a.model_dump(mode="json"), "displayName": f"{a.displayName} {i}"}
                    for i, a in enumerate(changed.attributes)]}
            )  # fmt: skip
            await catalog.replace(db, workspace.workspace_id, stored.template_id, changed, "t")
            await store.refresh(racing, workspace.workspace_id, [person], datetime.now(UTC), templates=old)
    finally:
        await racing.close()
    row = await stored_row(db, person)
    assert row["template_version"] > old[0].version
    for _ in range(100):  # the sweeper computes it with the new definition
        row = await stored_row(db, person)
        if len(row["vals"]) == 2:
            break
        await asyncio.sleep(0.05)
    assert [v[0] for v in row["vals"]] == [1, 1]


async def stored_row(db: asyncpg.Connection, person: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT v.* FROM profile_values v JOIN templates t USING (workspace_id, template_id) "
        "WHERE t.name = 'repeat' AND v.person_id = $1",
        person,
    )
    assert row is not None
    return row


async def test_deleting_a_template_waits_for_a_batch_writing_its_values_then_deletes_them(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    person = await person_with_an_event(api_client, db, workspace)
    template = await catalog.find(db, workspace.workspace_id, "repeat")
    assert template is not None
    writer, deleter = await connect(database), await connect(database)
    try:
        async with writer.transaction():
            used = await store.templates_for(writer, workspace.workspace_id, ["Payment Queue"])
            await writer.execute("DELETE FROM profile_values")  # so the batch below writes a new row
            await store.refresh(writer, workspace.workspace_id, [person], datetime.now(UTC), templates=used)

            async def delete() -> bool:
                async with deleter.transaction():
                    return await catalog.delete(deleter, workspace.workspace_id, template.template_id)

            deleting = asyncio.create_task(delete())
            await asyncio.sleep(0.3)
            assert not deleting.done()  # the batch holds the template
        assert await asyncio.wait_for(deleting, 5)
    finally:
        await writer.close()
        await deleter.close()
    left = "SELECT count(*) FROM profile_values WHERE template_id = $1"
    assert await db.fetchval(left, template.template_id) == 0
    assert await store.templates_for(db, workspace.workspace_id, ["Payment Queue"]) == []


async def test_the_sweeper_drops_due_values_whose_template_or_person_is_gone(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    person = await person_with_an_event(api_client, db, workspace, lookBackPeriod=1)
    template_id = await db.fetchval("SELECT template_id FROM templates WHERE name = 'repeat'")
    past = datetime.now(UTC) - timedelta(hours=1)
    orphans = [("0" * 24, person), (template_id, "f" * 24)]  # no such template; no such person
    await db.executemany(
        "INSERT INTO profile_values (workspace_id, template_id, person_id, vals, computed_at, next_change_at)"
        " VALUES ($1, $2, $3, '[]', $4, $4)",
        [(workspace.workspace_id, t, p, past) for t, p in orphans],
    )
    due = "UPDATE profile_values SET next_change_at = $1 WHERE template_id = $2"
    await db.execute(due, past, template_id)
    for _ in range(100):  # this sweep or the engine's (each skips rows the other holds)
        async with db.transaction():
            await store.sweep_due(db, datetime.now(UTC))
        rows = await db.fetch("SELECT template_id, person_id, computed_at FROM profile_values")
        if len(rows) == 1 and rows[0]["computed_at"] > past:
            break
        await asyncio.sleep(0.05)
    assert [(r["template_id"], r["person_id"]) for r in rows] == [(template_id, person)]
    assert rows[0]["computed_at"] > past


async def test_a_person_deleted_while_a_template_is_created_is_left_with_no_values(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    await post(api_client, workspace, event("+12263762555", "Payment Queue", datetime.now(UTC), queue="q"))
    person = await db.fetchval("SELECT person_id FROM aliases WHERE alias = '+12263762555'")
    path = f"/admin/v1/api/person/workspace-id/{workspace.workspace_id}/person-id/{person}"
    creator = await connect(database)
    try:
        async with creator.transaction():
            await make_template(creator, workspace)  # the person is due under it: a row, not yet committed
            deleting = asyncio.create_task(api_client.delete(path, headers=workspace.headers))
            await asyncio.sleep(0.3)
            assert not deleting.done()  # the template's writer holds the person
        assert (await asyncio.wait_for(deleting, 5)).status == 200
    finally:
        await creator.close()
    assert await db.fetchval("SELECT count(*) FROM profile_values WHERE person_id = $1", person) == 0


async def test_a_template_delete_is_not_overtaken_by_writers_that_come_after_it(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    await person_with_an_event(api_client, db, workspace)
    template = await catalog.find(db, workspace.workspace_id, "repeat")
    assert template is not None
    first, later, deleter = await connect(database), await connect(database), await connect(database)

    async def delete() -> bool:
        async with deleter.transaction():
            return await catalog.delete(deleter, workspace.workspace_id, template.template_id)

    async def write_later() -> list[store.StoredTemplate]:
        async with later.transaction():
            return await store.templates_for(later, workspace.workspace_id, ["Payment Queue"])

    try:
        async with first.transaction():
            assert await store.templates_for(first, workspace.workspace_id, ["Payment Queue"])
            deleting = asyncio.create_task(delete())
            await asyncio.sleep(0.2)
            writing = asyncio.create_task(write_later())
            await asyncio.sleep(0.3)
            assert not deleting.done()  # waits for the first writer
            assert not writing.done()  # waits for the delete, not ahead of it
        assert await asyncio.wait_for(deleting, 5)
        assert await asyncio.wait_for(writing, 5) == []  # the template is gone
    finally:
        for conn in (first, later, deleter):
            await conn.close()


async def test_new_persons_events_taken_from_their_batch_are_what_the_database_gives_back(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """The write path computes a person the batch created from the batch's own events (no read): only
    when nothing else is stored under its alias, and only with data that reads back from jsonb as sent."""
    await make_template(db, workspace)
    await post(api_client, workspace, event("+12025550100", "Payment Queue", queue="kept"))
    await db.execute("DELETE FROM persons")  # JDS person delete: its events stay under the alias
    now = datetime.now(UTC)
    plus_two = timezone(timedelta(hours=2))
    datas: list[Any] = [
        {"queue": "q", "n": 1, "ok": True, "none": None, "deep": {"a": [1, "b", 2.5]}}, {"amount": 2.5},
        {"amount": 1e16}, {"amount": -0.0}, {"deep": [{"x": -1e17}]}, "text", None, [1, 2],
    ]  # fmt: skip
    bodies = [
        event(f"+1202555{i:04d}", "Payment Queue", now - timedelta(seconds=i), **{})
        for i in range(len(datas))
    ]
    for body, data in zip(bodies, datas, strict=True):
        body["data"] = data
    bodies[1]["time"] = (now - timedelta(minutes=1)).astimezone(plus_two).isoformat()
    bodies.append(dict(bodies[0]))  # sent twice in one batch: stored once
    bodies.append(event("+12025550100", "Payment Queue", queue="again"))  # the deleted person's alias
    bodies.append({**event("+12025559999", "Payment Queue"), "id": "other"})
    rows = [
        EventRow(workspace.workspace_id, e, e.time or now) for e in parse_batch(bodies, default_region="US")
    ]
    async with db.transaction():
        templates = await store.templates_for(db, workspace.workspace_id, ["Payment Queue"])
        stored = await insert_events(db, rows)
        resolution = await identity.resolve_batch(db, rows, stored, default_region="US", profiles=True)
        aliases = {a: resolution.created[(w, a)] for w, a in resolution.only_new_events}
        at_hand = pipeline._batch_events(rows, stored, workspace.workspace_id)
        given = {aliases[a]: facts for a, facts in at_hand.items() if a in aliases}
        read, _ = await store.read_events(
            db, workspace.workspace_id, list(given), templates, now - timedelta(days=1)
        )
    assert "+12025550100" not in aliases  # its person's events include those kept under the alias
    assert len(aliases) == len(datas) + 1
    unsure = {aliases[f"+1202555{i:04d}"] for i in (2, 3, 4)}  # floats jsonb changes
    assert set(given) == set(aliases.values()) - unsure
    for person, facts in given.items():
        assert [(f.seq, f.type, f.time, strict(f.data)) for f in facts] == [
            (f.seq, f.type, f.time, strict(f.data)) for f in read[person]
        ]


async def test_an_existing_persons_events_are_its_stored_ones_and_the_batchs_own_as_read_back(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """For a person that existed, the write path reads only the events stored before the batch and adds
    the batch's own from memory (`skip`), except those whose data would not read back as sent: together
    they are what reading every event gives."""
    await make_template(db, workspace, lookBackDurationType="hours", lookBackPeriod=3)
    ws, now = workspace.workspace_id, datetime.now(UTC)
    before = [event("+12025550100", "Payment Queue", now - timedelta(hours=1), queue="a")]
    before.append(event("jane@example.com", "Payment Queue", now - timedelta(hours=2)))
    await post(api_client, workspace, *before)
    bodies = [
        event("+12025550100", "Payment Queue", now, queue="b"),
        {**event("+12025550100", "Payment Queue", now - timedelta(minutes=5)), "data": {"amount": 1e16}},
        event("jane@example.com", "Payment Queue", now - timedelta(minutes=1), queue="c"),
    ]
    rows = [EventRow(ws, e, e.time or now) for e in parse_batch(bodies, default_region="US")]
    async with db.transaction():
        templates = await store.templates_for(db, ws, ["Payment Queue"])
        stored = await insert_events(db, rows)
        await identity.resolve_batch(db, rows, stored, default_region="US", profiles=True)
        at_hand = pipeline._batch_events(rows, stored, ws)
        assert set(at_hand) == {"jane@example.com"}  # +1 202... has an event jsonb changes: read back
        aliases = ["+12025550100", "jane@example.com"]
        skip = [e.seq for e in at_hand["jane@example.com"]]
        owners, read = await pipeline.lock_owners(db, ws, aliases, templates, now, skip)
        read[owners["jane@example.com"]].extend(at_hand["jane@example.com"])
        everything, _ = await store.read_events(db, ws, sorted(set(owners.values())), templates, now)
    assert set(read) == set(everything) == set(owners.values())
    for person, facts in read.items():
        assert sorted((f.seq, f.type, f.time, strict(f.data)) for f in facts) == sorted(
            (f.seq, f.type, f.time, strict(f.data)) for f in everything[person]
        )
    assert sorted(len(f) for f in read.values()) == [2, 3]


async def test_a_new_person_counts_events_committed_under_its_alias_while_the_batch_waited_to_claim_it(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    """A batch waits to claim alias W (another transaction holds it) and then creates alias X. Meanwhile
    an event is stored under X, whose person (no event before) is then deleted. The new person's values
    count that event too: the claim's own snapshot predates it, so whether X was used before is asked in
    a statement after the claim."""
    await make_template(db, workspace)
    ws, held, deleted = workspace.workspace_id, "+12025550100", "+12025550199"
    await db.execute("INSERT INTO persons (workspace_id, person_id) VALUES ($1, $2)", ws, "a" * 24)
    await db.execute(
        "INSERT INTO aliases (workspace_id, alias, alias_type, person_id) VALUES ($1, $2, 'phone', $3)",
        ws, deleted, "a" * 24,
    )  # fmt: skip
    now = datetime.now(UTC)
    bodies = [event(held, "Payment Queue", now, queue="q"), event(deleted, "Payment Queue", now, queue="q")]
    rows = [EventRow(ws, e, e.time or now) for e in parse_batch(bodies, default_region="US")]
    holder, batch = await connect(database), await connect(database)
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.execute("INSERT INTO persons (workspace_id, person_id) VALUES ($1, $2)", ws, "b" * 24)
        await holder.execute(
            "INSERT INTO aliases (workspace_id, alias, alias_type, person_id) VALUES ($1, $2, 'phone', $3)",
            ws, held, "b" * 24,
        )  # fmt: skip

        async def write() -> None:
            async with batch.transaction():
                await pipeline.IngestPipeline("US")(batch, rows)

        writing = asyncio.create_task(write())
        await waits_for_a_lock(db, batch, "the batch (for the held alias)")
        await post(api_client, workspace, event(deleted, "Payment Queue", now, queue="q"))
        await db.execute("DELETE FROM persons WHERE workspace_id = $1 AND person_id = $2", ws, "a" * 24)
        await holding.rollback()
        await writing
    finally:
        await holder.close()
        await batch.close()
    row = await stored(db, "repeat", deleted)
    assert row is not None
    assert row["vals"][0][0] == 2  # the event stored while the batch waited, and the batch's own


async def test_values_holding_separators_and_control_characters_are_stored_as_computed(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """The upsert receives each column as one text it splits: a value's commas, quotes, braces and control
    characters (U+001F separates the values) stay inside it."""
    await make_template(db, workspace, aggregationMode="Value")
    tricky = 'a,b\x1fc"d{e}\\f\n'
    old = event("+12025550124", "Payment Queue", datetime.now(UTC) - timedelta(days=1), queue="q")
    await post(api_client, workspace, event("+12025550123", "Payment Queue", queue=tricky), old)
    row = await stored(db, "repeat", "+12025550123")
    assert row is not None
    assert row["vals"][0][0] == [tricky]
    await post(api_client, workspace, {**old, "id": "alone", "identity": "+12025550125"})  # a row alone
    for alias in ("+12025550124", "+12025550125"):
        outside = await stored(db, "repeat", alias)  # its one event is out of every window
        assert outside is not None
        assert (outside["vals"][0][:2], outside["next_change_at"]) == ([None, 0], None)


async def test_a_value_changing_centuries_ahead_is_stored_to_the_microsecond(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """A future-stamped event enters its window at its own time, the value's next change. Microseconds
    since 1970 beyond 2^53 (after 2255) are not exact as a floating-point product."""
    await make_template(db, workspace)
    future = datetime(2300, 5, 5, 5, 5, 5, 555555, tzinfo=UTC)
    await post(api_client, workspace, event("+12025550123", "Payment Queue", future, queue="q"))
    row = await stored(db, "repeat", "+12025550123")
    assert row is not None
    assert row["next_change_at"] == future


async def test_an_event_time_with_no_utc_datetime_in_python_is_refused_and_its_batch_stores_nothing(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """0001-01-01T00:30+01:00 is a valid RFC 3339 time whose UTC is in year 0: stored, every read of it
    (feed, history, export) would fail in asyncpg, so it is refused as bad input."""
    await make_template(db, workspace)
    body = event("+12025550124", "Payment Queue", queue="q")
    body["time"] = "0001-01-01T00:30:00+01:00"
    response = await api_client.post(
        f"/v1/workspaces/{workspace.workspace_id}/events",
        data=json.dumps([event("+12025550124", "Payment Queue", queue="q"), body]),
        headers={**workspace.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 400
    problems = (await response.json())["errors"]
    assert any(p["field"].endswith("time") and "0001-9999" in p["reason"] for p in problems), problems
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    assert await stored(db, "repeat", "+12025550124") is None
