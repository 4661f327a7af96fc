"""The event feed over HTTP: JDS `/v1/api/events/workspace-id/{W}` and native `/v1/workspaces/{W}/events`.

Events go in through the real ingest endpoints; only the query-plan test inserts rows directly (in bulk).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from journey_engine import feed, workspaces
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]

ALICE = "Alice@Example.com"  # stored as alice@example.com; the feed renders it as sent
PHONE = "+12263762555"
T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def jds_path(workspace_id: str) -> str:
    return f"/v1/api/events/workspace-id/{workspace_id}"


def native_path(workspace_id: str) -> str:
    return f"/v1/workspaces/{workspace_id}/events"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def event(
    id: str,
    type: str = "Payment",
    *,
    minutes: float = 0,
    identity: str = ALICE,
    identitytype: str = "email",
    data: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    out = {
        "id": id,
        "specversion": "1.0",
        "type": type,
        "source": extra.pop("source", "ivr"),
        "time": at(minutes),
        "identity": identity,
        "identitytype": identitytype,
        **extra,
    }
    if data is not None:
        out["data"] = data
    return out


async def post(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """Store events through the native batch endpoint; their ingest answers."""
    response = await client.post(
        native_path(ws.workspace_id),
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 202, await response.text()
    answers: list[dict[str, Any]] = (await response.json())["events"]
    return answers


async def jds(client: Client, ws: WorkspaceKey, **params: str) -> tuple[int, Any]:
    response = await client.get(jds_path(ws.workspace_id), params=params, headers=ws.headers)
    return response.status, await response.json()


async def native(client: Client, ws: WorkspaceKey, **params: str) -> tuple[int, Any]:
    response = await client.get(native_path(ws.workspace_id), params=params, headers=ws.headers)
    return response.status, await response.json()


def ids(body: Any) -> list[str]:
    return [e["id"] for e in body["data"]]


def native_ids(body: Any) -> list[str]:
    return [item["event"]["id"] for item in body["data"]]


# --- JDS use case 1 and the response shape -------------------------------------------------------------


async def test_ivr_gets_the_callers_latest_payment_of_a_category_with_page_size_one(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    def payment(id: str, minutes: int, category: str, status: str, identity: str = PHONE) -> dict[str, Any]:
        return event(
            id, minutes=minutes, identity=identity, identitytype="phone",
            data={"category": category, "status": status},
        )  # fmt: skip

    for sent in (
        payment("p1", 1, "Water", "Overdue"),
        payment("p2", 2, "Electricity", "Overdue"),
        payment("p3", 3, "Water", "Paid"),
        payment("p4", 4, "Electricity", "Paid"),
        payment("other", 5, "Water", "Overdue", identity="+12263762556"),
        event("call", "Call", minutes=6, identity=PHONE, identitytype="phone", data={"category": "Water"}),
    ):
        response = await api_client.post(
            f"/publish/v1/api/event?workspaceId={workspace.workspace_id}",
            json=sent,
            headers=workspace.headers,
        )
        assert response.status == 202

    status, body = await jds(
        api_client,
        workspace,
        identity=PHONE,
        filter="type=='Payment'",
        data="category=='Water'",
        pageSize="1",
    )
    assert status == 200
    assert ids(body) == ["p3"]
    assert body["data"][0]["data"]["status"] == "Paid"
    assert body["meta"]["resultCount"] == 1


async def test_jds_answer_has_meta_and_renders_each_event_as_it_was_sent(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    sent = {
        "id": "9ab65fdf-9643-417f-9974-ad72cae0e10f",
        "specversion": "1.0",
        "type": "Closed Queue",
        "source": "Voice Contact",
        "time": "2022-08-15T22:29:43.768Z",
        "identity": "(226) 376-2555",
        "identitytype": "phone",
        "previousidentity": "sdeo@cisco.com",
        "subject": "call-1",
        "datacontenttype": "application/json",
        "data": {"category": "Closed", "EWT": 12.5, "nested": {"a": [1, None]}},
        "channel": "voice",
    }
    await post(api_client, workspace, sent)
    status, body = await jds(api_client, workspace, identity=PHONE)
    assert status == 200
    assert body == {
        "meta": {
            "organizationId": workspace.workspace_id,
            "workspaceId": workspace.workspace_id,
            "identity": PHONE,
            "resultCount": 1,
        },
        "data": [sent],
    }


async def test_events_come_newest_first_by_time_then_by_arrival(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, event("b", minutes=2), event("a", minutes=1), event("c", minutes=3))
    await post(api_client, workspace, event("c2", minutes=3), event("old", minutes=-60))
    _, body = await jds(api_client, workspace, identity=ALICE)
    assert ids(body) == ["c2", "c", "b", "a", "old"]
    _, body = await native(api_client, workspace, identity=ALICE)
    assert native_ids(body) == ["c2", "c", "b", "a", "old"]
    _, body = await jds(api_client, workspace, identity=ALICE, sort="ASC")
    assert ids(body) == ["old", "a", "b", "c", "c2"]
    _, body = await native(api_client, workspace, identity=ALICE, order="asc")
    assert native_ids(body) == ["old", "a", "b", "c", "c2"]


async def test_sort_by_another_attribute_breaks_ties_by_time_in_the_same_direction(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(
        api_client, workspace,
        event("1", "Login", minutes=1), event("2", "Call", minutes=2), event("3", "Login", minutes=3),
        event("4", "Call", minutes=4, source="agent"),
    )  # fmt: skip
    _, body = await jds(api_client, workspace, sortBy="type", sort="asc")
    assert ids(body) == ["2", "4", "1", "3"]
    _, body = await jds(api_client, workspace, sortBy="type")
    assert ids(body) == ["3", "1", "4", "2"]
    _, body = await jds(api_client, workspace, sortBy="source", sort="desc")
    assert ids(body) == ["3", "2", "1", "4"]


async def test_jds_pages_are_zero_based_slices_of_page_size(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, *(event(f"e{i}", minutes=i) for i in range(5)))
    pages = [ids((await jds(api_client, workspace, page=str(p), pageSize="2"))[1]) for p in range(3)]
    assert pages == [["e4", "e3"], ["e2", "e1"], ["e0"]]
    assert (await jds(api_client, workspace, page="3", pageSize="2"))[0] == 404


async def test_jds_without_paging_returns_the_whole_history_up_to_the_maximum_page(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, *(event(f"e{i}", minutes=i) for i in range(150)))
    _, body = await jds(api_client, workspace, identity=ALICE)
    assert body["meta"]["resultCount"] == 150
    assert ids(body)[0] == "e149"


# --- identity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "identity=%2B12263762555",
        "identity=12263762555",
        "identity=+12263762555",  # an unencoded "+" arrives as a space
        "identity=%28226%29%20376-2555",
    ],
)
async def test_every_spelling_of_a_phone_number_finds_its_events(
    api_client: Client, workspace: WorkspaceKey, query: str
) -> None:
    await post(
        api_client, workspace,
        event("plus", minutes=1, identity="+12263762555", identitytype="phone"),
        event("bare", minutes=2, identity="12263762555", identitytype="phone"),
        event("local", minutes=3, identity="(226) 376-2555", identitytype="phone"),
        event("someone-else", minutes=4, identity="+12263762556", identitytype="phone"),
    )  # fmt: skip
    jds_answer = await api_client.get(
        f"{jds_path(workspace.workspace_id)}?{query}", headers=workspace.headers
    )
    assert ids(await jds_answer.json()) == ["local", "bare", "plus"]
    native_answer = await api_client.get(
        f"{native_path(workspace.workspace_id)}?{query}", headers=workspace.headers
    )
    assert native_ids(await native_answer.json()) == ["local", "bare", "plus"]


async def test_events_show_the_identity_as_it_was_sent(api_client: Client, workspace: WorkspaceKey) -> None:
    await post(
        api_client, workspace,
        event("plus", minutes=1, identity="+12263762555", identitytype="phone"),
        event("local", minutes=2, identity="(226) 376-2555", identitytype="phone"),
    )  # fmt: skip
    _, body = await jds(api_client, workspace, identity=PHONE)
    assert [e["identity"] for e in body["data"]] == ["(226) 376-2555", "+12263762555"]


async def test_email_identity_matches_whatever_its_case(api_client: Client, workspace: WorkspaceKey) -> None:
    await post(api_client, workspace, event("a"), event("b", identity="bob@example.com"))
    for spelling in ("alice@example.com", "ALICE@EXAMPLE.COM", " Alice@Example.com "):
        _, body = await jds(api_client, workspace, identity=spelling)
        assert ids(body) == ["a"], spelling


async def test_untyped_identity_finds_customer_ids_and_literal_no_value_words(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(
        api_client, workspace,
        event("c", identity="CUST-42", identitytype="customerId"),
        event("n", identity="none", identitytype="customerId"),
    )  # fmt: skip
    assert ids((await jds(api_client, workspace, identity="CUST-42"))[1]) == ["c"]
    assert (await jds(api_client, workspace, identity="cust-42"))[0] == 404
    assert ids((await jds(api_client, workspace, identity="none"))[1]) == ["n"]


async def test_empty_identity_is_refused_rather_than_answered_with_everyones_events(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, event("a"))
    for query in (jds, native):
        status, body = await query(api_client, workspace, identity=" ")
        assert status == 400
        assert body["message"] == "identity: must not be empty"


async def test_without_identity_the_feed_holds_every_identity_of_the_workspace(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(
        api_client, workspace, event("a", minutes=1), event("b", minutes=2, identity="bob@example.com")
    )
    assert ids((await jds(api_client, workspace))[1]) == ["b", "a"]
    assert native_ids((await native(api_client, workspace))[1]) == ["b", "a"]


# --- RSQL filters --------------------------------------------------------------------------------------

JOURNEY = (
    event("a1", "Payment", minutes=0, data={"category": "Water", "amount": 50, "status": "overdue",
                                             "due": "2024-02-01T00:00:00Z"}),
    event("a2", "Payment", minutes=1440, source="web", subject="bill-7",
          data={"category": "Electricity", "amount": 150, "status": "paid"}),
    event("a3", "Call", minutes=2880, data={"queue": "Payment Queue", "wait": 30}),
    event("a4", "Login", minutes=4320, source="web", subject="web", data={"channel": "digital"}),
    event("a5", "Payment", minutes=5760, source="agent", data={"category": "Gas", "amount": "99.5"}),
)  # fmt: skip
EVERYTHING = ["a5", "a4", "a3", "a2", "a1"]


@pytest.mark.parametrize(
    ("param", "expression", "expected"),
    [
        ("filter", "type=='Payment'", ["a5", "a2", "a1"]),
        ("filter", "type!=Payment", ["a4", "a3"]),
        ("filter", "type=in=(Call,Login)", ["a4", "a3"]),
        ("filter", "type=out=(Call,Login)", ["a5", "a2", "a1"]),
        ("filter", "type==Pay*", ["a5", "a2", "a1"]),
        ("filter", "source==*e*", ["a5", "a4", "a2"]),
        ("filter", "type!=*a*", ["a4"]),
        ("filter", "id=in=(a1,a3)", ["a3", "a1"]),
        ("filter", "subject==bill-7", ["a2"]),
        ("filter", "subject!=bill-7", ["a5", "a4", "a3", "a1"]),
        ("filter", "time=gt=2024-01-03T09:00:00Z", ["a5", "a4"]),
        ("filter", "time>2024-01-03", ["a5", "a4", "a3"]),
        ("filter", "time=ge=2024-01-03T09:00:00Z", ["a5", "a4", "a3"]),
        ("filter", "time>='2024-01-03T10:00:00+01:00'", ["a5", "a4", "a3"]),
        ("filter", "time=lt=2024-01-02T09:00:00Z", ["a1"]),
        ("filter", "time<2024-01-02T09:00:01Z", ["a2", "a1"]),
        ("filter", "time=le=2024-01-02T09:00:00Z", ["a2", "a1"]),
        ("filter", "time<=2024-01-01T09:00:00Z", ["a1"]),
        ("filter", "time==2024-01-02T09:00:00Z", ["a2"]),
        ("filter", "identityType=='email'", EVERYTHING),
        ("filter", "identitytype==EMAIL", EVERYTHING),
        ("filter", "identity=='Alice@Example.com'", EVERYTHING),
        ("filter", "identity==alice@example.com", []),
        ("filter", "identity==Alice*", EVERYTHING),
        ("filter", "type=='Payment';source==ivr", ["a1"]),
        ("filter", "type==Payment and source==web", ["a2"]),
        ("filter", "type==Call,source==agent", ["a5", "a3"]),
        ("filter", "type==Call or source==agent", ["a5", "a3"]),
        ("filter", "(type==Call,type==Login);source==web", ["a4"]),
        ("data", "category=='Water'", ["a1"]),
        ("data", "category!=Water", ["a5", "a4", "a3", "a2"]),
        ("data", "category=in=(Water,Gas)", ["a5", "a1"]),
        ("data", "category=out=(Water,Gas)", ["a4", "a3", "a2"]),
        ("data", "queue=='Payment*'", ["a3"]),
        ("data", "queue=='* Queue'", ["a3"]),
        ("data", "wait==30", ["a3"]),
        ("data", "amount=gt=100", ["a2"]),
        ("data", "amount>=99.5", ["a5", "a2"]),
        ("data", "amount<100", ["a5", "a1"]),
        ("data", "amount=le=50", ["a1"]),
        ("data", "amount=ge=50;amount=lt=100", ["a5", "a1"]),
        ("data", "due=gt=2024-01-15", ["a1"]),
        ("data", "due<2024-01-15", []),
        ("data", "status==paid,status==overdue", ["a2", "a1"]),
    ],
)
async def test_each_rsql_operator_selects_the_matching_events(
    api_client: Client, workspace: WorkspaceKey, param: str, expression: str, expected: list[str]
) -> None:
    await post(api_client, workspace, *JOURNEY)
    status, body = await jds(api_client, workspace, identity=ALICE, **{param: expression})
    assert (status, ids(body) if status == 200 else []) == (200 if expected else 404, expected)
    status, body = await native(api_client, workspace, identity=ALICE, **{param: expression})
    assert (status, native_ids(body)) == (200, expected)


async def test_filter_and_data_combine_with_and(api_client: Client, workspace: WorkspaceKey) -> None:
    await post(api_client, workspace, *JOURNEY)
    _, body = await jds(api_client, workspace, filter="source==ivr", data="category==Water,wait==30")
    assert ids(body) == ["a3", "a1"]


@pytest.mark.parametrize(
    ("param", "expression", "message"),
    [
        ("filter", "type=='Payment')", "filter: unexpected ')' at position 15"),
        ("filter", "colour==red", "filter: unknown field 'colour'; allowed fields: "),
        ("filter", "time>yesterday", "filter: field 'time' needs a date-time"),
        ("filter", "time==2024*", "filter: wildcards are not allowed on time field 'time' at position 0"),
        ("data", "category=='Water", "data: unterminated quoted value starting at position 10"),
        ("data", "category=like=Water", "data: unknown operator '=like='"),
        ("data", "(category==Water", "data: unclosed '(' at position 0"),
    ],
)
async def test_bad_rsql_is_400_naming_the_parameter_and_the_position(
    api_client: Client, workspace: WorkspaceKey, param: str, expression: str, message: str
) -> None:
    status, body = await jds(api_client, workspace, **{param: expression})
    assert status == 400
    assert body["status"] == "400 BAD_REQUEST"
    assert body["message"].startswith(message)
    assert body["errors"] == [body["message"]]
    status, body = await native(api_client, workspace, **{param: expression})
    assert status == 400
    assert body["message"].startswith(message)
    assert body["errors"][0]["field"] == param


# --- paging parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"page": "-1"}, "page"),
        ({"page": "first"}, "page"),
        ({"page": "1e3"}, "page"),
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "1001"}, "pageSize"),
        ({"pageSize": "1.5"}, "pageSize"),
        ({"pageSize": "99999999999999999999"}, "pageSize"),
        ({"page": "101", "pageSize": "1000"}, "page"),
        ({"sort": "up"}, "sort"),
        ({"sortBy": "colour"}, "sortBy"),
        ({"sortBy": "data"}, "sortBy"),
    ],
)
async def test_bad_jds_paging_is_400_naming_the_parameter(
    api_client: Client, workspace: WorkspaceKey, params: dict[str, str], name: str
) -> None:
    await post(api_client, workspace, event("a"))
    status, body = await jds(api_client, workspace, **params)
    assert status == 400
    assert body["message"].startswith(f"{name}: ")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "newest"}, "order"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"t":"2024-01-01T00:00:00","s":1}').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"t":"2024-01-01T00:00:00Z","s":"1"}').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[1, 2]").decode()}, "cursor"),
    ],
)
async def test_bad_native_paging_is_400_naming_the_parameter(
    api_client: Client, workspace: WorkspaceKey, params: dict[str, str], name: str
) -> None:
    status, body = await native(api_client, workspace, **params)
    assert status == 400
    assert body["errors"][0]["field"] == name


async def test_empty_paging_parameters_mean_the_defaults(api_client: Client, workspace: WorkspaceKey) -> None:
    await post(api_client, workspace, event("a", minutes=1), event("b", minutes=2))
    status, body = await jds(
        api_client, workspace, page="", pageSize="", sort="", sortBy="", filter="", data=""
    )
    assert (status, ids(body)) == (200, ["b", "a"])
    status, body = await native(api_client, workspace, limit="", order="", cursor="", filter="")
    assert (status, native_ids(body)) == (200, ["b", "a"])


async def test_nothing_found_is_404_on_jds_and_an_empty_list_on_native(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, event("a"))
    status, body = await jds(api_client, workspace, identity="nobody@example.com")
    assert status == 404
    assert body["status"] == "404 NOT_FOUND"
    assert set(body) == {"status", "message", "errors", "timestamp", "trackingId"}
    status, body = await native(api_client, workspace, identity="nobody@example.com")
    assert (status, body) == (200, {"data": [], "next": None})


# --- native feed and its cursor ------------------------------------------------------------------------


async def test_native_items_carry_seq_and_receipt_time_beside_the_cloudevent(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    sent = event("a", data={"x": 1}, seq="an extension named seq")
    (answer,) = await post(api_client, workspace, sent)
    before = datetime.now(UTC)
    status, body = await native(api_client, workspace)
    assert status == 200
    (item,) = body["data"]
    assert set(item) == {"seq", "receivedAt", "event"}
    assert item["seq"] == answer["seq"]
    received = datetime.fromisoformat(item["receivedAt"].replace("Z", "+00:00"))
    assert before - timedelta(minutes=1) < received <= before
    rendered = {**sent, "time": "2024-01-01T09:00:00.000Z", "datacontenttype": "application/json"}
    assert item["event"] == rendered
    assert body["next"] is None


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_cursor_walks_every_event_once_while_others_arrive(
    api_client: Client, workspace: WorkspaceKey, order: str
) -> None:
    # Three events share each minute, so pages split ties that only seq orders.
    await post(api_client, workspace, *(event(f"e{i}", minutes=i // 3) for i in range(23)))
    descending = order == "desc"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for page in range(100):
        params = {"identity": ALICE, "limit": "5", "order": order}
        status, body = await native(api_client, workspace, **params, **({"cursor": cursor} if cursor else {}))
        assert status == 200
        seen.extend(body["data"])
        cursor = body["next"]
        if cursor is None:
            break
        # Arrivals between pages: one beyond the end the walk goes towards, one behind where it started.
        await post(
            api_client, workspace,
            event(f"ahead{page}", minutes=-100 - page if descending else 100 + page),
            event(f"behind{page}", minutes=100 + page if descending else -100 - page),
        )  # fmt: skip
    walked = [item["event"]["id"] for item in seen]
    assert len(walked) == len(set(walked))
    assert [i for i in walked if i.startswith("e")] == sorted(
        (f"e{i}" for i in range(23)), key=lambda i: int(i[1:]), reverse=descending
    )
    assert {i for i in walked if i.startswith("ahead")} == {f"ahead{p}" for p in range(page)}
    assert not [i for i in walked if i.startswith("behind")]
    keys = [(item["event"]["time"], item["seq"]) for item in seen]
    assert keys == sorted(keys, reverse=descending)


async def test_a_full_last_page_has_no_next_cursor(api_client: Client, workspace: WorkspaceKey) -> None:
    await post(api_client, workspace, *(event(f"e{i}", minutes=i) for i in range(4)))
    _, first = await native(api_client, workspace, limit="2")
    _, second = await native(api_client, workspace, limit="2", cursor=first["next"])
    assert (native_ids(first), native_ids(second), second["next"]) == (["e3", "e2"], ["e1", "e0"], None)


# --- isolation, scopes, ids ----------------------------------------------------------------------------


async def test_another_workspaces_events_never_appear(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other_ws = await workspaces.create_workspace(db, "other")
    other_key = await workspaces.create_key(db, other_ws.workspace_id, ["events:write", "read"])
    other = WorkspaceKey(other_ws.workspace_id, other_key.key_id, other_key.token)
    await post(api_client, other, event("theirs", minutes=5), event("mine", minutes=6, data={"x": 1}))
    await post(api_client, workspace, event("mine", minutes=1))
    for query, expected in (({"identity": ALICE}, ["mine"]), ({}, ["mine"]), ({"filter": "id==theirs"}, [])):
        status, body = await jds(api_client, workspace, **query)
        assert (status, ids(body) if status == 200 else []) == (200 if expected else 404, expected)
        _, body = await native(api_client, workspace, **query)
        assert native_ids(body) == expected
    assert ids((await jds(api_client, other))[1]) == ["mine", "theirs"]


async def test_another_workspace_id_in_the_path_is_404(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    for path in (jds_path(other.workspace_id), native_path(other.workspace_id)):
        response = await api_client.get(path, headers=workspace.headers)
        assert response.status == 404, path


async def test_the_feed_needs_the_read_scope(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    await post(api_client, workspace, event("a"))
    writer = await key_for(workspace, "events:write")
    reader = await key_for(workspace, "read")
    for path in (jds_path(workspace.workspace_id), native_path(workspace.workspace_id)):
        assert (await api_client.get(path)).status == 401
        denied = await api_client.get(path, headers=writer.headers)
        assert denied.status == 403
        assert "'read'" in (await denied.json())["message"]
        assert (await api_client.get(path, headers=reader.headers)).status == 200


async def test_events_sharing_an_id_all_appear_and_a_retry_appears_once(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    first = event("TEST", minutes=1, data={"step": 1})
    await post(api_client, workspace, first, event("TEST", minutes=2, data={"step": 2}))
    await post(api_client, workspace, first)
    _, body = await jds(api_client, workspace, identity=ALICE)
    assert [e["data"]["step"] for e in body["data"]] == [2, 1]


# --- query plans ---------------------------------------------------------------------------------------


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


async def test_one_identitys_feed_reads_only_its_own_entries_of_the_identity_index(
    workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    # 5000 events over 500 phone numbers (and as many in another workspace), then fresh statistics.
    other = await workspaces.create_workspace(db, "other")
    for workspace_id in (workspace.workspace_id, other.workspace_id):
        await db.execute(
            """
            INSERT INTO events (workspace_id, id, source, specversion, type, time, identity, identity_raw,
                                identity_type, data, content_hash)
            SELECT $1, 'bulk-' || g, 'ivr', '1.0', (ARRAY['Payment', 'Call', 'Login'])[g % 3 + 1],
                   timestamptz '2024-01-01' + g * interval '1 minute',
                   '+1226376' || (2000 + g % 500), '+1226376' || (2000 + g % 500), 'phone',
                   jsonb_build_object('category', (ARRAY['Water', 'Electricity'])[g % 2 + 1], 'amount', g),
                   sha256(($1 || g)::bytea)
            FROM generate_series(1, 5000) AS g
            """,
            workspace_id,
        )
    await db.execute("ANALYZE events")
    aliases = await feed.aliases_of(db, workspace.workspace_id, " 12263762042", "US")  # "+" as a space
    assert aliases == ("+12263762042", "12263762042")
    filters = feed.Filters(aliases, "type=='Payment';time>2024-01-02", "category=='Water';amount>100")
    w = workspace.workspace_id
    queries = [
        feed.page_query(w, filters, sort_by="time", descending=True, page=0, page_size=1),
        feed.page_query(w, feed.Filters(aliases), sort_by="time", descending=False, page=2, page_size=3),
        feed.keyset_query(
            w, filters, cursor=feed.Cursor(T0 + timedelta(days=2), 10**6), descending=True, limit=9
        ),
    ]
    for sql, params in queries:
        explained = await db.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *params)
        nodes = list(
            _plan_nodes((json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"])
        )
        scans = [n for n in nodes if "Relation Name" in n or "Index Name" in n]
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
        assert {n.get("Index Name") for n in scans if n["Node Type"].endswith("Index Scan")} == {
            "events_identity_time"
        }, nodes
        for scan in scans:
            if "Index Name" in scan:
                assert "identity = ANY" in scan["Index Cond"], scan
    # And the rows it finds are the right ones.
    sql, params = queries[0]
    (row,) = await db.fetch(sql, *params)
    assert (row["identity_raw"], row["type"], row["data"]["category"]) == ("+12263762042", "Payment", "Water")


async def test_identity_returns_the_whole_persons_journey_whichever_alias_is_asked(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(
        api_client,
        workspace,
        event("v1", "Page Visit", minutes=1, identity="visitor-9", identitytype="temporaryId"),
        event("v2", "Page Visit", minutes=2, identity="visitor-9", identitytype="temporaryId"),
    )
    await post(api_client, workspace, event("login", "Login", minutes=3, previousidentity="visitor-9"))
    await post(api_client, workspace, event("call", "Call", minutes=4, identity=PHONE, identitytype="phone"))
    for asked in (ALICE, "alice@example.com", "visitor-9"):
        status, body = await jds(api_client, workspace, identity=asked)
        assert status == 200, asked
        assert [e["id"] for e in body["data"]] == ["login", "v2", "v1"], asked
    status, body = await jds(api_client, workspace, identity=PHONE)
    assert [e["id"] for e in body["data"]] == ["call"]
