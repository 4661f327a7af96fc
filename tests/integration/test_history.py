"""Rich Customer History over HTTP: the widget's paths under `/rch/{token}/`, its tokens, its logs and CORS.

Persons and their other events go in through the real ingest endpoint; history entries through the
widget's own `POST /history`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from journey_engine import workspaces
from journey_engine.logs import JsonFormatter
from profiles import catalog
from profiles.templates import TemplateSpec
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]

USER = "cust-42"
PHONE = "+12263762555"
EMAIL = "Alice@Example.com"


def secret_of(token: str) -> str:
    """The secret part of `jh_<16 hex>_<secret>` (the secret may itself hold `_`)."""
    return token[len("jh_0123456789abcdef_") :]


async def new_token(client: Client, ws: WorkspaceKey, name: str = "widget") -> dict[str, Any]:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/history-tokens", json={"name": name}, headers=ws.headers
    )
    assert response.status == 201, await response.text()
    made: dict[str, Any] = await response.json()
    return made


async def base_of(client: Client, ws: WorkspaceKey) -> str:
    """A SERVICE_HOME for the workspace: `/rch/<token>`."""
    base: str = (await new_token(client, ws))["basePath"]
    return base


async def ingest(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 202, await response.text()


def event(id: str, identity: str, identitytype: str, **extra: Any) -> dict[str, Any]:
    return {"id": id, "specversion": "1.0", "type": "Payment", "source": "ivr", "identity": identity,
            "identitytype": identitytype, "data": {"category": "Water"}, **extra}  # fmt: skip


async def customer(
    client: Client, ws: WorkspaceKey, user: str = USER, phone: str = PHONE, email: str = EMAIL
) -> None:
    """A person with a customerId, a phone number and an email address, each with a Payment event."""
    await ingest(
        client, ws,
        event("c", user, "customerId"),
        event("p", phone, "phone", previousidentity=user),
        event("e", email, "email", previousidentity=user),
    )  # fmt: skip


def entry(**overrides: Any) -> dict[str, Any]:
    body = {"username": USER, "parent": "", "level": 1, "channel": "voice", "source": "ivr",
            "note": "called about the water bill", "link": "https://crm.example.com/case/7"}  # fmt: skip
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def post_entry(client: Client, base: str, **overrides: Any) -> str:
    response = await client.post(f"{base}/history", json=entry(**overrides))
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert set(answer) == {"id"}
    entry_id: str = answer["id"]
    return entry_id


async def read_history(client: Client, base: str, username: str = USER) -> list[dict[str, Any]]:
    response = await client.get(f"{base}/history", params={"username": username})
    assert response.status == 200, await response.text()
    entries: list[dict[str, Any]] = await response.json()
    return entries


async def test_widget_flow_finds_the_username_posts_calls_and_steps_and_reads_them_children_after_parents(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await customer(api_client, workspace)
    base = await base_of(api_client, workspace)
    for ani in [PHONE, "12263762555", "(226) 376-2555", "226.376.2555", " 1 226 376 2555"]:
        response = await api_client.get(f"{base}/getuserdata", params={"ani": ani})
        assert (response.status, await response.json()) == (200, {"username": USER}), ani
    unencoded_plus = await api_client.get(f"{base}/getuserdata?ani=+12263762555")
    assert await unencoded_plus.json() == {"username": USER}
    by_email = await api_client.get(f"{base}/getuserdata", params={"email": " ALICE@example.COM"})
    assert (by_email.status, await by_email.json()) == (200, {"username": USER})

    call1 = await post_entry(api_client, base, note="call 1")
    call2 = await post_entry(api_client, base, note="chat 2", channel="Digital", source="sms", parent=None)
    step1a = await post_entry(api_client, base, level=2, parent=call1, note="1a", source="agent")
    step2a = await post_entry(api_client, base, level="2", parent=int(call2), note="2a", channel="digital")
    step1b = await post_entry(api_client, base, level=2, parent=call1, note="1b", source="survey", link=None)

    history = await read_history(api_client, base)
    assert [(e["id"], e["note"]) for e in history] == [
        (call1, "call 1"), (step1a, "1a"), (step1b, "1b"), (call2, "chat 2"), (step2a, "2a"),
    ]  # fmt: skip
    first, _, last, second, _ = history
    assert first["time"] <= second["time"]
    assert set(first) == {"id", "username", "parent", "level", "channel", "source", "note", "link", "time"}
    assert (first["username"], first["parent"], first["level"], first["channel"]) == (USER, None, 1, "voice")
    assert (second["channel"], second["source"]) == ("digital", "sms")
    assert (last["parent"], last["level"], last["source"], last["link"]) == (call1, 2, "survey", None)
    assert first["link"] == "https://crm.example.com/case/7"
    # Every answer came after its commit: the entry is an event with the id as its seq.
    stored = await db.fetchrow("SELECT type, source, identity FROM events WHERE seq = $1", int(step1a))
    assert dict(stored) == {"type": "history.voice", "source": "agent", "identity": USER}

    feed = await api_client.get(
        f"/v1/api/events/workspace-id/{workspace.workspace_id}",
        params={"identity": USER},
        headers=workspace.headers,
    )
    events = (await feed.json())["data"]
    entries = [e for e in events if e.get("dataschema") == "urn:journey-engine:history:1"]
    assert sorted(e["data"]["note"] for e in entries) == ["1a", "1b", "2a", "call 1", "chat 2"]
    child = next(e for e in entries if e["data"]["note"] == "2a")
    assert (child["type"], child["identitytype"], child["data"]["parent"]) == (
        "history.digital",
        "customerId",
        call2,
    )


async def test_getuserdata_for_an_unknown_phone_or_email_or_a_person_without_username_is_404_json(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await customer(api_client, workspace)
    await ingest(api_client, workspace, event("anon", "+12263760000", "phone"))
    base = await base_of(api_client, workspace)
    for params in [{"ani": "+12263769999"}, {"ani": "anonymous"}, {"email": "bob@example.com"},
                   {"email": "not an address"}, {"ani": "+12263760000"}]:  # fmt: skip
        response = await api_client.get(f"{base}/getuserdata", params=params)
        assert response.status == 404, params
        body = await response.json()
        assert body["status"] == 404 and body["message"], params
    for params in [{}, {"ani": ""}, {"ani": PHONE, "email": EMAIL}]:
        assert (await api_client.get(f"{base}/getuserdata", params=params)).status == 400, params


async def test_history_of_an_unknown_username_is_404_and_of_a_customer_without_entries_empty(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await customer(api_client, workspace)
    base = await base_of(api_client, workspace)
    missing = await api_client.get(f"{base}/history", params={"username": "nobody"})
    assert missing.status == 404
    assert (await missing.json())["message"] == "No customer has this username"
    assert await read_history(api_client, base) == []
    assert (await api_client.get(f"{base}/history")).status == 400
    delete = await api_client.delete(f"{base}/history", json={"username": "nobody"})
    assert delete.status == 404


async def test_a_bad_or_revoked_token_is_404_and_never_echoed(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await customer(api_client, workspace)
    made = await new_token(api_client, workspace)
    token, base = made["token"], made["basePath"]
    assert base == f"/rch/{token}"
    assert (await api_client.get(f"{base}/history", params={"username": USER})).status == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in [forged, "jh_0000000000000000_" + "A" * 43, "nonsense", workspace.token]:
        for method, path in [("GET", "/getuserdata?ani=%2B12263762555"), ("GET", "/history?username=cust-42"),
                             ("POST", "/history"), ("DELETE", "/history")]:  # fmt: skip
            response = await api_client.request(method, f"/rch/{bad}{path}", json={"username": USER})
            assert response.status == 404, (bad, method, path)
            assert bad not in await response.text()

    response = await api_client.delete(
        f"/v1/workspaces/{workspace.workspace_id}/history-tokens/{made['tokenId']}", headers=workspace.headers
    )
    assert await response.json() == {"tokenId": made["tokenId"], "revoked": True}
    revoked = await api_client.get(f"{base}/history", params={"username": USER})
    assert revoked.status == 404
    assert token not in await revoked.text()
    again = await api_client.delete(
        f"/v1/workspaces/{workspace.workspace_id}/history-tokens/{made['tokenId']}", headers=workspace.headers
    )
    assert again.status == 404
    secret = secret_of(token)
    stored = await db.fetchval(
        "SELECT secret_sha256 FROM history_tokens WHERE token_id = $1", made["tokenId"]
    )
    assert bytes(stored) == hashlib.sha256(secret.encode()).digest()  # only its hash is kept


async def test_a_token_reaches_only_its_own_workspace(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    key = await workspaces.create_key(db, other.workspace_id, workspaces.SCOPES)
    other_ws = WorkspaceKey(other.workspace_id, key.key_id, key.token)
    await customer(api_client, other_ws)
    base = await base_of(api_client, workspace)
    assert (await api_client.get(f"{base}/getuserdata", params={"ani": PHONE})).status == 404
    assert (await api_client.get(f"{base}/history", params={"username": USER})).status == 404
    stolen = await api_client.get(
        f"/v1/workspaces/{other.workspace_id}/history-tokens", headers=workspace.headers
    )
    assert stolen.status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (entry(username=None), "username"),
        (entry(username="  "), "username"),
        (entry(source=None), "source"),
        (entry(source=""), "source"),
        (entry(channel="fax"), "channel"),
        (entry(channel=None), "channel"),
        (entry(level=3), "level"),
        (entry(level=2, parent=""), "parent"),
        (entry(note={"not": "text"}), "note"),
        (["not", "an", "object"], "body"),
    ],
)
async def test_an_invalid_entry_is_400_naming_the_field_and_stores_nothing(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection, body: Any, field: str
) -> None:
    base = await base_of(api_client, workspace)
    response = await api_client.post(f"{base}/history", json=body)
    assert response.status == 400
    assert [p["field"] for p in (await response.json())["errors"]] == [field]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_level_2_entry_needs_an_existing_level_1_parent_of_the_same_user_in_the_workspace(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    key = await workspaces.create_key(db, other.workspace_id, workspaces.SCOPES)
    other_ws = WorkspaceKey(other.workspace_id, key.key_id, key.token)
    base, other_base = await base_of(api_client, workspace), await base_of(api_client, other_ws)
    call = await post_entry(api_client, base)
    step = await post_entry(api_client, base, level=2, parent=call)
    elsewhere = await post_entry(api_client, other_base)  # same username, another workspace
    theirs = await post_entry(api_client, base, username="someone-else")
    await ingest(api_client, workspace, event("plain", USER, "customerId"))
    plain = await db.fetchval("SELECT seq FROM events WHERE id = 'plain'")
    cases = {
        "999999": "no history entry has the id '999999'",
        "call-1": "no history entry has the id 'call-1'",
        str(plain): f"no history entry has the id '{plain}'",
        elsewhere: f"no history entry has the id '{elsewhere}'",
        step: f"entry '{step}' is not a level-1 entry",
        theirs: f"entry '{theirs}' belongs to another user",
    }
    before = await db.fetchval("SELECT count(*) FROM events")
    for parent, reason in cases.items():
        response = await api_client.post(f"{base}/history", json=entry(level=2, parent=parent))
        assert response.status == 400, parent
        assert (await response.json())["errors"] == [{"field": "parent", "reason": reason}]
    assert await db.fetchval("SELECT count(*) FROM events") == before


async def test_delete_erases_only_that_users_history_entries_and_recomputes_its_profile(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    counts = {"event": "history.voice", "metaDataType": "string", "metaData": "source", "limit": 0,
              "displayName": "voice entries", "lookBackDurationType": "days", "lookBackPeriod": 1,
              "aggregationMode": "Count"}  # fmt: skip
    spec = TemplateSpec.model_validate({"name": "history", "attributes": [counts]})
    await catalog.create(db, workspace.workspace_id, spec, "test")
    await customer(api_client, workspace)
    await customer(api_client, workspace, user="cust-7", phone="+12263760007", email="bob@example.com")
    base = await base_of(api_client, workspace)
    call = await post_entry(api_client, base)
    await post_entry(api_client, base, level=2, parent=call)
    kept = await post_entry(api_client, base, username="cust-7", note="stays")

    async def voice_entries(user: str) -> int:
        value: int = await db.fetchval(
            "SELECT (v.vals -> 0 ->> 0)::int FROM profile_values v"
            " JOIN templates t USING (workspace_id, template_id)"
            " JOIN aliases a USING (workspace_id, person_id) WHERE t.name = 'history' AND a.alias = $1",
            user,
        )
        return value

    assert await voice_entries(USER) == 2
    response = await api_client.delete(f"{base}/history", json={"username": USER})
    assert (response.status, await response.json()) == (200, {"username": USER, "deleted": 2})
    assert await read_history(api_client, base) == []
    assert await voice_entries(USER) == 0
    assert [e["id"] for e in await read_history(api_client, base, "cust-7")] == [kept]
    assert await voice_entries("cust-7") == 1
    remaining = await db.fetch("SELECT id FROM events WHERE dataschema IS NULL ORDER BY seq")
    assert [r["id"] for r in remaining] == ["c", "p", "e"] * 2  # the customers' other events stay
    by_query = await api_client.delete(f"{base}/history", params={"username": "cust-7"})
    assert await by_query.json() == {"username": "cust-7", "deleted": 1}
    assert (await api_client.delete(f"{base}/history", json={})).status == 400
    assert (await api_client.get(f"{base}/getuserdata", params={"ani": PHONE})).status == 200


async def test_the_token_never_appears_in_any_log_record(
    api_client: Client, workspace: WorkspaceKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await customer(api_client, workspace)
    made = await new_token(api_client, workspace)
    token, base = made["token"], made["basePath"]
    call = await post_entry(api_client, base)
    await post_entry(api_client, base, level=2, parent=call)
    requests = [
        ("GET", "/getuserdata?ani=%2B12263762555", None), ("GET", "/getuserdata?ani=%2B19999999999", None),
        ("GET", "/history?username=cust-42", None), ("POST", "/history", {"username": USER}),
        ("POST", "/history", entry(level=2, parent="1")), ("DELETE", "/history", {"username": USER}),
        ("OPTIONS", "/history", None), ("PUT", "/history", None), ("GET", "/nowhere", None),
        ("GET", "", None), ("GET", "/history/", None), ("GET", "/a%0Ab", None),
    ]  # fmt: skip
    for method, path, body in requests:
        response = await api_client.request(method, f"{base}{path}", json=body)
        assert response.status < 500, (method, path)
    formatter = JsonFormatter()
    lines = [formatter.format(record) + repr(record.__dict__) for record in caplog.records]
    access = [r for r in caplog.records if r.name == "journey_engine.access"]
    assert len(access) >= len(requests)
    assert {getattr(r, "fields", {})["path"] for r in access} >= {"/rch/{token}/history", "/rch/{tail}"}
    secret = secret_of(token)
    assert not [line for line in lines if secret in line or token in line]


async def test_cors_preflight_and_every_answer_let_a_page_on_another_origin_read_it(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    base = await base_of(api_client, workspace)
    preflight = await api_client.options(
        f"{base}/history",
        headers={
            "Origin": "https://desktop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) >= {"GET", "POST", "DELETE"}
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    other = await api_client.options("/rch/not-a-token/getuserdata")
    assert (other.status, other.headers["Access-Control-Allow-Methods"]) == (204, "GET, OPTIONS")
    origin = {"Origin": "https://desktop.example.com"}
    answers = [
        await api_client.post(f"{base}/history", json=entry(), headers=origin),
        await api_client.get(f"{base}/history", params={"username": "nobody"}, headers=origin),
        await api_client.post(f"{base}/history", json=entry(channel="fax"), headers=origin),
        await api_client.get("/rch/bad-token/history", headers=origin),
        await api_client.put(f"{base}/history", headers=origin),
    ]
    assert [a.status for a in answers] == [200, 404, 400, 404, 405]
    assert all(a.headers["Access-Control-Allow-Origin"] == "*" for a in answers)
    assert answers[-1].headers["Allow"] == "DELETE,GET,OPTIONS,POST"
    native = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=workspace.headers)
    assert "Access-Control-Allow-Origin" not in native.headers


async def test_history_tokens_are_listed_without_their_secret_and_need_the_admin_scope(
    api_client: Client, workspace: WorkspaceKey, key_for: Any
) -> None:
    made = await new_token(api_client, workspace, "desk A")
    path = f"/v1/workspaces/{workspace.workspace_id}/history-tokens"
    listed = await (await api_client.get(path, headers=workspace.headers)).json()
    assert [(t["tokenId"], t["name"], t["revokedAt"]) for t in listed["data"]] == [
        (made["tokenId"], "desk A", None)
    ]
    assert secret_of(made["token"]) not in json.dumps(listed)
    unnamed = await api_client.post(path, headers=workspace.headers)
    assert unnamed.status == 201
    reader = await key_for(workspace, "read")
    assert (await api_client.get(path, headers=reader.headers)).status == 403
    assert (await api_client.post(path, json={}, headers=reader.headers)).status == 403


async def test_cli_creates_lists_and_revokes_history_tokens(
    api_client: Client, workspace: WorkspaceKey, database: str
) -> None:
    async def cli(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "journey_engine", "history-token", *args,
            env={**env, "DATABASE_URL": database},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    created = await cli("create", "--workspace", workspace.workspace_id, "--name", "desk B")
    base = next(line for line in created.splitlines() if line.startswith("/rch/"))
    works = await api_client.get(f"{base}/history", params={"username": "x"})
    assert (await works.json())["message"] == "No customer has this username"
    token_id = base.removeprefix("/rch/jh_")[:16]
    assert f"{token_id}  active   desk B" in await cli("list", "--workspace", workspace.workspace_id)
    await cli("revoke", token_id)
    assert (await api_client.options(f"{base}/history")).status == 204
    gone = await api_client.get(f"{base}/history", params={"username": "x"})
    assert (await gone.json())["message"] == "Not found"
    assert "revoked" in await cli("list", "--workspace", workspace.workspace_id)
