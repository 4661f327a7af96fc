"""Identity resolution at ingest: persons, aliases, previousidentity links and merges, concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from journey_engine import identity
from journey_engine.db import connect
from journey_engine.ingest import RetryBatch
from journey_engine.pipeline import lock_owners
from profiles import store
from tests.helpers import WorkspaceKey, waits_for_a_lock

Client = TestClient  # type: ignore[type-arg]
BATCH = "application/cloudevents-batch+json"
_counter = 0


def event(identity_: str, identitytype: str, previous: str | None = None, **extra: Any) -> dict[str, Any]:
    global _counter
    _counter += 1
    body = {
        "id": f"e{_counter}", "specversion": "1.0", "type": "Page Visit", "source": "/web",
        "identity": identity_, "identitytype": identitytype, "data": {"n": _counter}, **extra,
    }  # fmt: skip
    if previous is not None:
        body["previousidentity"] = previous
    return body


async def post(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": BATCH},
    )
    assert response.status == 202, await response.text()


async def owners(db: asyncpg.Connection) -> dict[str, str]:
    return {r["alias"]: r["person_id"] for r in await db.fetch("SELECT alias, person_id FROM aliases")}


async def test_first_event_of_an_unknown_identity_creates_its_person(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("Jane@Example.com", "email"), event("jane@example.com", "email"))
    (person,) = await db.fetch("SELECT * FROM persons")
    assert len(person["person_id"]) == 24
    assert await owners(db) == {"jane@example.com": person["person_id"]}
    (created,) = await db.fetch("SELECT * FROM identity_changes")
    assert (created["kind"], created["aliases"]) == ("created", ["jane@example.com"])
    assert created["by_event"] == await db.fetchval("SELECT min(seq) FROM events")


async def test_previousidentity_joins_the_anonymous_visitor_to_the_known_customer(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("visitor-42", "temporaryId"), event("visitor-42", "temporaryId"))
    await post(api_client, workspace, event("jane@example.com", "email", previous="visitor-42"))
    aliases = await owners(db)
    assert aliases["visitor-42"] == aliases["jane@example.com"]
    survivor = aliases["jane@example.com"]
    merged = await db.fetchrow("SELECT * FROM identity_changes WHERE kind = 'merged'")
    assert merged["person_id"] == survivor
    assert merged["aliases"] == ["visitor-42"]
    retired = await db.fetchrow("SELECT * FROM persons WHERE person_id = $1", merged["other_person_id"])
    assert retired["merged_into"] == survivor
    assert await identity.current_person(db, workspace.workspace_id, merged["other_person_id"]) == survivor


async def test_previousidentity_never_seen_becomes_an_alias_of_the_person(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("jane@example.com", "email", previous="visitor-7"))
    await post(api_client, workspace, event("visitor-7", "temporaryId"))
    aliases = await owners(db)
    assert aliases["visitor-7"] == aliases["jane@example.com"]
    assert await db.fetchval("SELECT count(*) FROM persons") == 1
    assert await db.fetchval("SELECT alias_type FROM aliases WHERE alias = 'visitor-7'") == "temporaryId"
    assert await db.fetchval("SELECT kind FROM identity_changes WHERE kind = 'linked'") == "linked"


async def test_a_phone_previousidentity_links_whatever_its_spelling(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("(226) 376-2555", "phone"))
    await post(api_client, workspace, event("cust-9", "customerId", previous="+1 226 376 2555"))
    aliases = await owners(db)
    assert aliases["+12263762555"] == aliases["cust-9"]


async def test_none_as_previousidentity_links_nothing(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("a@example.com", "email", previous="none"))
    await post(api_client, workspace, event("b@example.com", "email", previous="none"))
    assert await db.fetchval("SELECT count(DISTINCT person_id) FROM aliases") == 2
    assert "none" not in await owners(db)


async def test_links_within_one_batch_apply_in_event_order(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(
        api_client,
        workspace,
        event("t-1", "temporaryId"),
        event("t-2", "temporaryId"),
        event("c-1", "customerId", previous="t-1"),
        event("c-1", "customerId", previous="t-2"),
    )
    assert len(set((await owners(db)).values())) == 1


async def test_a_retried_linking_event_does_not_undo_an_unmerge(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    linking = event("jane@example.com", "email", previous="visitor-1")
    await post(api_client, workspace, event("visitor-1", "temporaryId"))
    await post(api_client, workspace, linking)
    person = (await owners(db))["jane@example.com"]
    async with db.transaction():
        split = await identity.unmerge(db, workspace.workspace_id, person, ["visitor-1"], identity.Actor("k"))
    await post(api_client, workspace, linking)  # the same event again: a retry, not new evidence
    assert (await owners(db))["visitor-1"] == split


async def test_unmerge_splits_an_alias_with_its_events_into_a_new_person(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("visitor-1", "temporaryId"), event("visitor-1", "temporaryId"))
    await post(api_client, workspace, event("jane@example.com", "email", previous="visitor-1"))
    person = (await owners(db))["jane@example.com"]
    async with db.transaction():
        split = await identity.unmerge(
            db, workspace.workspace_id, person, ["visitor-1"], identity.Actor("key1")
        )
    assert split != person
    assert await owners(db) == {"jane@example.com": person, "visitor-1": split}
    history = await db.fetch(
        "SELECT kind, person_id, other_person_id, by_key FROM identity_changes "
        "WHERE by_key = 'key1' ORDER BY 1"
    )
    assert [tuple(r) for r in history] == [
        ("created", split, person, "key1"),
        ("unmerged", person, split, "key1"),
    ]


async def test_unmerge_refuses_to_take_every_alias_or_a_foreign_one(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    from journey_engine.errors import BadRequest

    await post(api_client, workspace, event("solo@example.com", "email"), event("other@example.com", "email"))
    aliases = await owners(db)
    for wanted in (["solo@example.com"], ["other@example.com"]):
        try:
            async with db.transaction():
                await identity.unmerge(
                    db, workspace.workspace_id, aliases["solo@example.com"], wanted, identity.Actor()
                )
        except BadRequest:
            continue
        raise AssertionError(f"unmerge of {wanted} was not refused")


async def test_concurrent_events_for_the_same_new_identities_make_one_person_each(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    engines = [await make_client(), await make_client()]  # two engine processes on one database
    identities = [f"caller-{i}@example.com" for i in range(20)]

    async def burst(client: Client, offset: int) -> None:
        for start in range(0, 20, 5):
            chunk = identities[(start + offset) % 20 :] + identities[: (start + offset) % 20]
            await post(client, workspace, *(event(i, "email") for i in chunk[:7]))

    await asyncio.gather(*(burst(engines[n % 2], n * 3) for n in range(8)))
    aliases = await owners(db)
    assert set(aliases) == set(identities)
    assert len(set(aliases.values())) == 20
    assert await db.fetchval("SELECT count(*) FROM persons") == 20


async def test_concurrent_links_and_merges_lose_no_alias(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    engines = [await make_client(), await make_client()]
    await post(engines[0], workspace, *(event(f"t-{i}", "temporaryId") for i in range(10)))
    links = [event("hub@example.com", "email", previous=f"t-{i}") for i in range(10)]
    links += [event(f"t-{i}", "temporaryId", previous=f"t-{(i + 1) % 10}") for i in range(10)]
    await asyncio.gather(*(post(engines[i % 2], workspace, e) for i, e in enumerate(links)))
    aliases = await owners(db)
    assert set(aliases) == {"hub@example.com", *(f"t-{i}" for i in range(10))}
    assert len(set(aliases.values())) == 1
    live = await db.fetch("SELECT person_id FROM persons WHERE merged_into IS NULL")
    assert [r["person_id"] for r in live] == [aliases["hub@example.com"]]


async def test_an_ingest_locks_and_counts_for_the_person_a_concurrent_merge_moved_its_alias_to(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    """A batch's lock statement saw 'visitor-a' owned by A and waited for A, which a merge into B held;
    the merge committed. Locking must end on B (A's aliases, and their events, are B's now), with the
    events of both read after the locks."""
    ws = workspace.workspace_id
    visits = [event(f"visitor-{x}", "temporaryId", type="task:new") for x in "ab"]
    await post(api_client, workspace, *visits)
    known = await owners(db)
    a, b = known["visitor-a"], known["visitor-b"]
    batch = await connect(database)
    try:
        async with batch.transaction():
            templates = await store.templates_for(batch, ws, None)
            merging = db.transaction()
            await merging.start()
            await identity.merge(db, ws, b, [a], identity.Actor())
            locking = asyncio.create_task(lock_owners(batch, ws, ["visitor-a"], templates, datetime.now(UTC)))
            await waits_for_a_lock(db, batch, "the batch's lock statement")
            await merging.commit()
            current, events = await locking
            assert current == {"visitor-a": b}
            assert sorted(e.data["n"] for e in events[b]) == sorted(
                r["data"]["n"] for r in await db.fetch("SELECT data FROM events")
            )
            assert set(events) == {b}
            with pytest.raises(asyncpg.LockNotAvailableError):  # the batch holds B
                async with db.transaction():
                    await db.execute("SELECT 1 FROM persons WHERE person_id = $1 FOR NO KEY UPDATE NOWAIT", b)
    finally:
        await batch.close()


async def test_an_ingest_whose_alias_lost_its_person_to_a_concurrent_delete_retries_and_claims_it_anew(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, database: str
) -> None:
    """A batch's claim left 'jane' to its person J; before the batch locked J, a JDS delete of J committed
    (the alias went with it). The batch runs again and gives the alias a new person."""
    jane = {**event("jane", "temporaryId"), "type": "task:new"}  # counted by journey-default-template
    await post(api_client, workspace, jane)
    first = (await owners(db))["jane"]
    batch = await connect(database)
    try:
        async with batch.transaction():
            templates = await store.templates_for(batch, workspace.workspace_id, None)
            path = f"/admin/v1/api/person/workspace-id/{workspace.workspace_id}/person-id/{first}"
            assert (await api_client.delete(path, headers=workspace.headers)).status == 200
            with pytest.raises(RetryBatch):
                await lock_owners(batch, workspace.workspace_id, ["jane"], templates, datetime.now(UTC))
    finally:
        await batch.close()
    await post(api_client, workspace, {**jane, "id": "again"})
    second = (await owners(db))["jane"]
    assert second != first
    counted = "SELECT vals->0->0 FROM profile_values WHERE person_id = $1"
    assert await db.fetchval(counted, second) == 2  # both events kept under the identity


async def test_a_post_whose_alias_loses_its_person_mid_batch_is_accepted_under_a_new_person(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    jane = {**event("jane", "temporaryId"), "type": "task:new"}
    await post(api_client, workspace, jane)
    first = (await owners(db))["jane"]
    resolve, calls = identity.resolve_batch, []

    async def resolve_then_delete(*args: Any, **kwargs: Any) -> identity.Resolution:
        """The first run of the batch: right after its claim, a JDS delete of jane's person commits."""
        resolved = await resolve(*args, **kwargs)
        calls.append(resolved)
        if len(calls) == 1:
            path = f"/admin/v1/api/person/workspace-id/{workspace.workspace_id}/person-id/{first}"
            assert (await api_client.delete(path, headers=workspace.headers)).status == 200
        return resolved

    monkeypatch.setattr(identity, "resolve_batch", resolve_then_delete)
    await post(api_client, workspace, {**jane, "id": "again"})  # 202, not a 500
    assert len(calls) == 2
    assert (await owners(db))["jane"] != first
