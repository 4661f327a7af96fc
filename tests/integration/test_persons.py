"""The person APIs over HTTP: JDS `/admin/v1/api/person/...` and native `/v1/workspaces/{W}/persons/...`.

Events go in through `POST /v1/workspaces/{W}/events`; the feed is read through the JDS events path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from yarl import URL

from journey_engine import privacy, workspaces
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
BATCH = "application/cloudevents-batch+json"
BASE = "/admin/v1/api/person"
JDS_MESSAGE = "Alias to be added already exists to some other Person"
_counter = 0


def event(
    identity: str, identitytype: str, previous: str | None = None, type: str = "Call"
) -> dict[str, Any]:
    global _counter
    _counter += 1
    body: dict[str, Any] = {
        "id": f"e{_counter}", "specversion": "1.0", "type": type, "source": "/ivr",
        "identity": identity, "identitytype": identitytype, "data": {"n": _counter},
    }  # fmt: skip
    if previous is not None:
        body["previousidentity"] = previous
    return body


async def post(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> list[int]:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": BATCH},
    )
    assert response.status == 202, await response.text()
    return [e["seq"] for e in (await response.json())["events"]]


async def call(
    client: Client, method: str, path: str, ws: WorkspaceKey, body: Any = None, *, encoded: bool = False
) -> tuple[int, Any]:
    headers = dict(ws.headers)
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json-patch+json" if method == "PATCH" else "application/json"
    url: str | URL = URL(path, encoded=True) if encoded else path
    response = await client.request(method, url, data=data, headers=headers)
    return response.status, await response.json()


def jds(ws: WorkspaceKey, tail: str = "") -> str:
    return f"{BASE}/workspace-id/{ws.workspace_id}{tail}"


def native(ws: WorkspaceKey, person: str, tail: str = "") -> str:
    return f"/v1/workspaces/{ws.workspace_id}/persons/{person}{tail}"


async def create(client: Client, ws: WorkspaceKey, **body: Any) -> dict[str, Any]:
    status, answer = await call(client, "POST", jds(ws), ws, body)
    assert status == 201, answer
    person: dict[str, Any] = answer["data"]
    return person


async def owner(client: Client, ws: WorkspaceKey, alias: str) -> str:
    status, answer = await call(client, "GET", native(ws, alias), ws)
    assert status == 200, answer
    person_id: str = answer["id"]
    return person_id


async def feed_ids(client: Client, ws: WorkspaceKey, identity: str) -> set[int]:
    response = await client.get(
        f"/v1/api/events/workspace-id/{ws.workspace_id}", params={"identity": identity}, headers=ws.headers
    )
    if response.status == 404:
        return set()
    assert response.status == 200, await response.text()
    return {e["data"]["n"] for e in (await response.json())["data"]}


def ns(*events: dict[str, Any]) -> set[int]:
    return {e["data"]["n"] for e in events}


# --- create, read, look up ----------------------------------------------------------------------------


async def test_create_answers_201_with_normalised_typed_aliases_in_the_jds_envelope(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    status, answer = await call(
        api_client, "POST", jds(workspace), workspace,
        {"firstName": "Barry", "lastName": "McLellan", "phone": ["+12263762555", "12263762555"],
         "email": ["Barry@Example.com"], "customerId": [" 4689 "], "socialId": ["@barry"]},
    )  # fmt: skip
    assert status == 201
    assert answer["meta"] == {"organizationId": workspace.workspace_id}
    person = answer["data"]
    assert len(person["id"]) == 24 and int(person["id"], 16) >= 0
    assert person | {"id": "x"} == {
        "id": "x", "firstName": "Barry", "lastName": "McLellan", "phone": ["+12263762555"],
        "email": ["barry@example.com"], "temporaryId": [], "customerId": ["4689"], "socialId": ["@barry"],
        "aliases": ["+12263762555", "4689", "@barry", "barry@example.com"],
    }  # fmt: skip


async def test_create_with_an_alias_another_person_has_is_409(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    first = await create(api_client, workspace, email=["jane@example.com"])
    status, answer = await call(
        api_client, "POST", jds(workspace), workspace, {"email": ["JANE@example.com"]}
    )
    assert status == 409
    assert answer["status"] == "409 CONFLICT"
    assert answer["errors"] == [f"email[0]: 'jane@example.com' belongs to person '{first['id']}'"]


async def test_a_bad_body_is_400_naming_the_field(api_client: Client, workspace: WorkspaceKey) -> None:
    for body, field in [
        ({"phone": ["call me"]}, "phone[0]: "),
        ({"email": ["jane@example.com"], "nickname": "J"}, "nickname: "),
        ({"firstName": "Only a name"}, "body: "),
        ({"email": "jane@example.com"}, "email: "),
    ]:
        status, answer = await call(api_client, "POST", jds(workspace), workspace, body)
        assert status == 400, body
        assert answer["status"] == "400 BAD_REQUEST"
        assert answer["errors"][0].startswith(field), answer
    merge = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{'a' * 24}"
    status, answer = await call(api_client, "POST", merge, workspace, {"ids": []})
    assert status == 400
    assert any(e.startswith("personIdsToMerge: ") for e in answer["errors"])


async def test_lookup_by_alias_accepts_a_plus_encoded_as_2b_as_a_space_or_literal(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, event("(226) 376-2555", "phone"))
    wanted = await owner(api_client, workspace, "+12263762555")
    for spelled in (
        "%2B12263762555",
        "%2012263762555",
        "+12263762555",
        "12263762555",
        "%2B1%20226%20376%202555",
    ):
        status, answer = await call(
            api_client, "GET", jds(workspace, f"/aliases/{spelled}"), workspace, encoded=True
        )
        assert status == 200, (spelled, answer)
        assert [p["id"] for p in answer["data"]] == [wanted]
        assert answer["data"][0]["phone"] == ["+12263762555"]


async def test_lookup_by_several_aliases_answers_each_person_once_in_the_order_asked(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    ann = await create(api_client, workspace, email=["ann@example.com"], customerId=["C-1"])
    bob = await create(api_client, workspace, phone=["+13333334453"])
    path = jds(workspace, "/aliases/13333334453,nobody@example.com,C-1,ANN@example.com")
    status, answer = await call(api_client, "GET", path, workspace)
    assert status == 200
    assert [p["id"] for p in answer["data"]] == [bob["id"], ann["id"]]
    status, answer = await call(api_client, "GET", path + "?sortBy=id&sort=DESC&pageSize=1", workspace)
    assert [p["id"] for p in answer["data"]] == [max(ann["id"], bob["id"])]


async def test_lookup_of_unknown_aliases_is_404_in_the_jds_shape(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    status, answer = await call(api_client, "GET", jds(workspace, "/aliases/nobody@example.com"), workspace)
    assert status == 404
    assert answer["status"] == "404 NOT_FOUND"
    assert set(answer) == {"status", "message", "errors", "timestamp", "trackingId"}


async def test_list_filters_with_rsql_sorts_and_pages(api_client: Client, workspace: WorkspaceKey) -> None:
    ram = await create(api_client, workspace, firstName="Ram", lastName="Iyer", phone=["+12263762555"])
    ana = await create(api_client, workspace, firstName="Ana", email=["ana@example.com"])
    zoe = await create(api_client, workspace, firstName="Zoe", email=["zoe@example.com"], customerId=["Z1"])

    async def listed(**params: str) -> tuple[int, list[str]]:
        response = await api_client.get(jds(workspace), params=params, headers=workspace.headers)
        body = await response.json()
        return response.status, [p["id"] for p in body.get("data", [])]

    assert await listed() == (200, [ram["id"], ana["id"], zoe["id"]])
    assert await listed(filter="firstName==Ram") == (200, [ram["id"]])
    assert await listed(filter="phone=='(226) 376-2555'") == (200, [ram["id"]])
    assert await listed(filter="email==*@example.com;customerId!=Z1") == (200, [ana["id"]])
    assert await listed(filter="aliases=in=(Z1,ana@example.com)", sortBy="firstName", sort="DESC") == (
        200, [zoe["id"], ana["id"]],
    )  # fmt: skip
    assert await listed(sortBy="firstName", page="1", pageSize="2") == (200, [zoe["id"]])
    assert await listed(personId=ana["id"]) == (200, [ana["id"]])
    assert (await listed(filter="firstName==Nobody"))[0] == 404
    response = await api_client.get(
        jds(workspace), params={"filter": "nickname==x"}, headers=workspace.headers
    )
    assert response.status == 400
    assert (await response.json())["errors"][0].startswith("filter: unknown field 'nickname'")


# --- JSON Patch, add and remove identities ------------------------------------------------------------


async def test_patch_adds_replaces_and_removes_aliases_and_names(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    person = await create(
        api_client, workspace, firstName="B", lastName="M", phone=["+12263762555"], customerId=["old", "keep"]
    )
    ops = [
        {"op": "add", "path": "/phone/1", "value": "+12263762557"},
        {"op": "replace", "path": "/lastName", "value": "McLellan"},
        {"op": "update", "path": "/firstName", "value": "Barry"},
        {"op": "add", "path": "/email/-", "value": ["Barry@Example.com", "b2@example.com"]},
        {"op": "replace", "path": "/customerId/1", "value": "new"},
        {"op": "remove", "path": "/email", "value": "b2@example.com"},
        {"op": "remove", "path": "/phone/0"},
    ]
    status, answer = await call(
        api_client, "PATCH", jds(workspace, f"/person-id/{person['id']}"), workspace, ops
    )
    assert status == 202, answer
    data = answer["data"]
    assert (data["firstName"], data["lastName"]) == ("Barry", "McLellan")
    assert data["phone"] == ["+12263762557"]
    assert data["email"] == ["barry@example.com"]
    assert sorted(data["customerId"]) == ["keep", "new"]
    status, answer = await call(
        api_client, "PATCH", jds(workspace, f"/person-id/{person['id']}"), workspace,
        [{"op": "replace", "path": "/customerId", "value": ["only"]}, {"op": "remove", "path": "/firstName"}],
    )  # fmt: skip
    assert status == 202
    assert (answer["data"]["customerId"], answer["data"]["firstName"]) == (["only"], None)


async def test_a_bad_patch_operation_is_400_naming_its_index_and_path_and_changes_nothing(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    person = await create(api_client, workspace, firstName="Ann", email=["ann@example.com"])
    path = jds(workspace, f"/person-id/{person['id']}")
    for ops, error in [
        ([{"op": "replace", "path": "/firstName", "value": "X"}, {"op": "move", "path": "/lastName"}],
         "[1].op: must be add, replace, update or remove, not 'move'"),
        ([{"op": "add", "path": "/name", "value": "X"}], "[0].path: '/name' is not a person field"),
        ([{"op": "remove", "path": "/email/3"}], "[0].path: the person has 1 email alias(es)"),
        ([{"op": "add", "path": "/phone"}], "[0].value: add needs an alias"),
        ([{"op": "add", "path": "/phone", "value": "not a number"}], "[0].value: 'not a number' is not"),
        ([{"op": "add", "path": "/phone", "value": 5}], "[0].value: must be an alias (a string) or a list"),
        ({"op": "add"}, "body: "),
    ]:  # fmt: skip
        status, answer = await call(api_client, "PATCH", path, workspace, ops)
        assert status == 400, (ops, answer)
        assert answer["errors"][0].startswith(error), answer
    status, answer = await call(api_client, "GET", jds(workspace, f"?personId={person['id']}"), workspace)
    assert answer["data"][0]["firstName"] == "Ann"


async def test_adding_an_alias_another_person_owns_is_400_with_the_jds_message(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await post(api_client, workspace, event("taken@example.com", "email"))
    person = await create(api_client, workspace, customerId=["C-7"])
    add = f"{BASE}/add-identities/workspace-id/{workspace.workspace_id}/person-id/{person['id']}"
    for method, path, body in [
        ("PATCH", add, {"email": ["Taken@Example.com"]}),
        ("PATCH", jds(workspace, f"/person-id/{person['id']}"),
         [{"op": "add", "path": "/email", "value": "taken@example.com"}]),
    ]:  # fmt: skip
        status, answer = await call(api_client, method, path, workspace, body)
        assert (status, answer["message"]) == (400, JDS_MESSAGE)
    status, answer = await call(api_client, "PATCH", add, workspace, {"customerId": ["C-7"]})
    assert status == 409
    assert answer["errors"] == ["customerId[0]: 'C-7' is already an alias of this person"]


async def test_add_identities_answers_200_and_later_events_of_the_new_alias_join_the_person(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    first = event("+12263762555", "phone")
    await post(api_client, workspace, first)
    person = await owner(api_client, workspace, "+12263762555")
    add = f"{BASE}/add-identities/workspace-id/{workspace.workspace_id}/person-id/{person}"
    status, answer = await call(
        api_client, "PATCH", add, workspace, {"email": ["new@example.com"], "temporaryId": ["t-1"]}
    )
    assert status == 200
    assert answer["data"]["aliases"] == ["+12263762555", "new@example.com", "t-1"]
    later = event("new@example.com", "email")
    await post(api_client, workspace, later)
    assert await feed_ids(api_client, workspace, "+1 226 376 2555") == ns(first, later)


async def test_remove_identities_takes_a_jds_list_or_typed_lists_and_keeps_one_alias(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    person = await create(
        api_client, workspace, email=["ram@cisco.com"], customerId=["1e4qre2g7", "c2"], phone=["+12263762555"]
    )
    remove = f"{BASE}/remove-identities/workspace-id/{workspace.workspace_id}/person-id/{person['id']}"
    status, answer = await call(api_client, "PATCH", remove, workspace, ["RAM@cisco.com", "1e4qre2g7"])
    assert status == 200
    assert answer["data"]["aliases"] == ["+12263762555", "c2"]
    status, answer = await call(api_client, "PATCH", remove, workspace, {"customerId": ["c2"]})
    assert (status, answer["data"]["aliases"]) == (200, ["+12263762555"])
    status, answer = await call(api_client, "PATCH", remove, workspace, ["someone@else.com"])
    assert status == 400
    assert answer["errors"] == ["[0]: 'someone@else.com' is not an alias of this person"]
    status, answer = await call(api_client, "PATCH", remove, workspace, ["12263762555"])
    assert status == 400
    assert answer["message"] == "A person must keep at least one alias"


async def test_removing_an_alias_with_events_gives_it_a_person_of_its_own(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    visit, call_ = event("visitor-1", "temporaryId"), event("jane@example.com", "email", previous="visitor-1")
    await post(api_client, workspace, visit)
    await post(api_client, workspace, call_)
    jane = await owner(api_client, workspace, "jane@example.com")
    assert await feed_ids(api_client, workspace, "jane@example.com") == ns(visit, call_)
    remove = f"{BASE}/remove-identities/workspace-id/{workspace.workspace_id}/person-id/{jane}"
    status, _ = await call(api_client, "PATCH", remove, workspace, ["visitor-1"])
    assert status == 200
    assert await owner(api_client, workspace, "visitor-1") != jane
    assert await feed_ids(api_client, workspace, "jane@example.com") == ns(call_)
    assert await feed_ids(api_client, workspace, "visitor-1") == ns(visit)


# --- merge, merge-identities, delete ------------------------------------------------------------------


async def test_merge_moves_aliases_and_events_to_the_primary_and_the_feed_follows(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    a, b, c = event("a@example.com", "email"), event("+12263762555", "phone"), event("C-3", "customerId")
    await post(api_client, workspace, a, b, c)
    ids = [await owner(api_client, workspace, x) for x in ("a@example.com", "+12263762555", "C-3")]
    path = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{ids[0]}"
    status, answer = await call(api_client, "POST", path, workspace, {"personIdsToMerge": ids[1:]})
    assert status == 202
    assert answer["data"]["id"] == ids[0]
    assert answer["data"]["aliases"] == ["+12263762555", "C-3", "a@example.com"]
    assert await feed_ids(api_client, workspace, "12263762555") == ns(a, b, c)
    status, answer = await call(api_client, "GET", jds(workspace, f"?personId={ids[2]}"), workspace)
    assert [p["id"] for p in answer["data"]] == [ids[0]]
    status, answer = await call(api_client, "GET", native(workspace, ids[0], "/history"), workspace)
    merged = [h for h in answer["data"] if h["kind"] == "merged"]
    assert [(h["otherPersonId"], h["byKey"]) for h in merged] == [
        (i, workspace.key_id) for i in sorted(ids[1:])
    ]
    assert answer["mergedIds"] == sorted(ids[1:])


async def test_merging_an_unknown_person_is_404_and_changes_nothing(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    person = await create(api_client, workspace, email=["a@example.com"])
    other = await create(api_client, workspace, email=["b@example.com"])
    path = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{person['id']}"
    status, answer = await call(
        api_client, "POST", path, workspace, {"personIdsToMerge": [other["id"], "f" * 24]}
    )
    assert (status, answer["status"]) == (404, "404 NOT_FOUND")
    assert await owner(api_client, workspace, "b@example.com") == other["id"]


async def test_merge_identities_creates_then_merges_and_override_removes_what_is_not_given(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    path = f"{BASE}/merge-identities/workspace-id/{workspace.workspace_id}"
    status, answer = await call(
        api_client, "POST", path, workspace, {"firstName": "Jo", "email": ["jo@example.com"]}
    )
    assert status == 200
    jo = answer["data"]["id"]
    other = await create(api_client, workspace, phone=["+12263762555"], customerId=["C-9"])
    body = {"email": ["jo@example.com"], "phone": ["12263762555"], "socialId": ["@jo"], "lastName": "Doe"}
    status, answer = await call(api_client, "POST", path, workspace, body)
    assert status == 200
    data = answer["data"]
    assert data["id"] == jo  # the oldest survives
    assert (data["firstName"], data["lastName"]) == ("Jo", "Doe")
    assert sorted(data["aliases"]) == ["+12263762555", "@jo", "C-9", "jo@example.com"]
    status, answer = await call(api_client, "GET", jds(workspace, f"?personId={other['id']}"), workspace)
    assert answer["data"][0]["id"] == jo
    status, answer = await call(
        api_client,
        "POST",
        path,
        workspace,
        {"override": True, "email": ["jo@example.com"], "customerId": ["C-9"]},
    )
    assert status == 200
    assert sorted(answer["data"]["aliases"]) == ["C-9", "jo@example.com"]


async def test_delete_removes_the_person_and_its_aliases_but_keeps_its_events(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    old = event("jane@example.com", "email", type="task:new")  # counted by journey-default-template
    await post(api_client, workspace, old)
    jane = await owner(api_client, workspace, "jane@example.com")
    values = "SELECT count(*) FROM profile_values WHERE person_id = $1"
    assert await db.fetchval(values, jane) == 1
    status, answer = await call(api_client, "DELETE", jds(workspace, f"/person-id/{jane}"), workspace)
    assert await db.fetchval(values, jane) == 0  # its values go with it
    assert (status, answer["data"]["id"], answer["data"]["email"]) == (200, jane, ["jane@example.com"])
    assert (await call(api_client, "GET", jds(workspace, f"?personId={jane}"), workspace))[0] == 404
    assert (await call(api_client, "GET", jds(workspace, "/aliases/jane@example.com"), workspace))[0] == 404
    assert await db.fetchval("SELECT count(*) FROM aliases") == 0
    assert await feed_ids(api_client, workspace, "jane@example.com") == ns(
        old
    )  # JDS keeps events by identity
    new = event("jane@example.com", "email", type="task:new")
    await post(api_client, workspace, new)
    assert await owner(api_client, workspace, "jane@example.com") != jane
    counted = await db.fetchval("SELECT vals->0->0 FROM profile_values")
    assert counted == 2  # the new person's values count the events kept under the identity
    assert await feed_ids(api_client, workspace, "jane@example.com") == ns(old, new)


async def test_delete_or_erase_of_a_merged_away_id_is_409_naming_the_survivor(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    a = await create(api_client, workspace, email=["a@example.com"])
    b = await create(api_client, workspace, email=["b@example.com"])
    path = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{a['id']}"
    assert (await call(api_client, "POST", path, workspace, {"personIdsToMerge": [b["id"]]}))[0] == 202
    status, answer = await call(api_client, "DELETE", jds(workspace, f"/person-id/{b['id']}"), workspace)
    assert (status, answer["message"]) == (409, f"person '{b['id']}' was merged into '{a['id']}'")
    status, answer = await call(api_client, "DELETE", native(workspace, b["id"]), workspace)
    assert (status, answer["message"]) == (409, f"person '{b['id']}' was merged into '{a['id']}'")
    status, answer = await call(
        api_client, "PATCH", jds(workspace, f"/person-id/{b['id']}"), workspace,
        [{"op": "add", "path": "/phone", "value": "+12263762555"}],
    )  # fmt: skip
    assert (status, answer["data"]["id"]) == (202, a["id"])  # edits follow the merge


async def test_unknown_persons_are_404_on_every_path(api_client: Client, workspace: WorkspaceKey) -> None:
    unknown = "0" * 24
    w = workspace.workspace_id
    for method, path, body in [
        ("GET", jds(workspace, f"?personId={unknown}"), None),
        ("GET", jds(workspace, "?personId=not-an-id"), None),
        ("DELETE", jds(workspace, f"/person-id/{unknown}"), None),
        ("PATCH", jds(workspace, f"/person-id/{unknown}"), [{"op": "remove", "path": "/firstName"}]),
        ("PATCH", f"{BASE}/add-identities/workspace-id/{w}/person-id/{unknown}", {"email": ["x@y.z"]}),
        ("PATCH", f"{BASE}/remove-identities/workspace-id/{w}/person-id/{unknown}", ["x@y.z"]),
        ("POST", f"{BASE}/merge/workspace-id/{w}/primary-person-id/{unknown}",
         {"personIdsToMerge": [unknown]}),
        ("GET", native(workspace, unknown), None),
        ("GET", native(workspace, "nobody@example.com", "/history"), None),
        ("GET", native(workspace, unknown, "/export"), None),
        ("DELETE", native(workspace, unknown), None),
        ("POST", native(workspace, unknown, "/unmerge"), {"aliases": ["x"]}),
    ]:  # fmt: skip
        status, answer = await call(api_client, method, path, workspace, body)
        assert status == 404, (method, path, answer)


async def test_reads_need_the_read_scope_and_writes_admin(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    person = await create(api_client, workspace, email=["a@example.com"])
    reader = await key_for(workspace, "read")
    writer = await key_for(workspace, "events:write")
    reads = [
        jds(workspace), jds(workspace, "/aliases/a@example.com"), native(workspace, person["id"]),
        native(workspace, person["id"], "/history"), native(workspace, person["id"], "/export"),
    ]  # fmt: skip
    for path in reads:
        assert (await call(api_client, "GET", path, reader))[0] == 200, path
        status, answer = await call(api_client, "GET", path, writer)
        assert status == 403, path
    for method, path, body in [
        ("POST", jds(workspace), {"email": ["b@example.com"]}),
        ("PATCH", jds(workspace, f"/person-id/{person['id']}"), [{"op": "remove", "path": "/firstName"}]),
        ("DELETE", jds(workspace, f"/person-id/{person['id']}"), None),
        ("DELETE", native(workspace, person["id"]), None),
        ("POST", native(workspace, person["id"], "/unmerge"), {"aliases": ["a@example.com"]}),
    ]:
        status, answer = await call(api_client, method, path, reader, body)
        assert status == 403, path
    assert answer["message"] == "this API key lacks the 'admin' scope"


async def test_another_workspaces_persons_are_404(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    person = await create(api_client, workspace, email=["a@example.com"])
    other_ws = await workspaces.create_workspace(db, "other")
    key = await workspaces.create_key(db, other_ws.workspace_id, workspaces.SCOPES)
    other = WorkspaceKey(other_ws.workspace_id, key.key_id, key.token)
    status, answer = await call(api_client, "GET", jds(workspace, f"?personId={person['id']}"), other)
    assert (status, answer["status"]) == (404, "404 NOT_FOUND")
    assert (await call(api_client, "GET", jds(other, f"?personId={person['id']}"), other))[0] == 404
    assert (await call(api_client, "GET", native(other, person["id"]), other))[0] == 404
    assert (await call(api_client, "DELETE", jds(other, f"/person-id/{person['id']}"), other))[0] == 404


# --- native: get, unmerge, history, export, erase -----------------------------------------------------


async def test_native_get_finds_a_person_by_id_or_by_alias(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    person = await create(
        api_client, workspace, firstName="Ann", email=["ann@example.com"], phone=["+12263762555"]
    )
    for asked in (person["id"], "Ann@Example.com", "%2B12263762555"):
        status, answer = await call(api_client, "GET", native(workspace, asked), workspace, encoded=True)
        assert status == 200
        assert answer["id"] == person["id"]
    assert answer["firstName"] == "Ann"
    assert [(a["alias"], a["type"]) for a in answer["aliases"]] == [
        ("+12263762555", "phone"),
        ("ann@example.com", "email"),
    ]
    assert answer.keys() == {"id", "firstName", "lastName", "aliases", "createdAt", "updatedAt"}


async def test_unmerge_splits_an_alias_and_its_events_into_a_new_person_and_the_feed_follows(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    visit = event("visitor-1", "temporaryId")
    linking = event("jane@example.com", "email", previous="visitor-1")
    [_, link_seq] = await post(api_client, workspace, visit, linking)
    jane = await owner(api_client, workspace, "jane@example.com")
    assert await feed_ids(api_client, workspace, "jane@example.com") == ns(visit, linking)
    status, answer = await call(
        api_client, "POST", native(workspace, jane, "/unmerge"), workspace, {"aliases": ["visitor-1"]}
    )
    assert status == 201
    split = answer["id"]
    assert [a["alias"] for a in answer["aliases"]] == ["visitor-1"]
    assert await feed_ids(api_client, workspace, "jane@example.com") == ns(linking)
    assert await feed_ids(api_client, workspace, "visitor-1") == ns(visit)
    status, answer = await call(
        api_client, "GET", native(workspace, "jane@example.com", "/history"), workspace
    )
    entries = [
        (h["kind"], h["personId"], h["otherPersonId"], h["aliases"], h["byKey"], h["byEvent"])
        for h in answer["data"]
    ]
    merged_away = answer["mergedIds"][0]
    assert entries == [
        ("created", jane, None, ["jane@example.com"], None, link_seq),
        ("created", merged_away, None, ["visitor-1"], None, link_seq - 1),
        ("merged", jane, merged_away, ["visitor-1"], None, link_seq),
        ("unmerged", jane, split, ["visitor-1"], workspace.key_id, None),
        ("created", split, jane, ["visitor-1"], workspace.key_id, None),
    ]
    status, answer = await call(
        api_client, "POST", native(workspace, jane, "/unmerge"), workspace, {"aliases": ["jane@example.com"]}
    )
    assert status == 400
    assert answer["message"] == "Cannot split out every alias"
    status, answer = await call(
        api_client, "POST", native(workspace, jane, "/unmerge"), workspace, {"aliases": []}
    )
    assert status == 400
    assert answer["errors"][0]["field"] == "aliases"


async def test_export_holds_the_person_aliases_events_and_identity_history(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    first, second = event("+12263762555", "phone"), event("jo@example.com", "email", previous="12263762555")
    await post(api_client, workspace, first)
    await post(api_client, workspace, second)
    status, export = await call(api_client, "GET", native(workspace, "jo@example.com", "/export"), workspace)
    assert status == 200
    person = export["person"]
    assert export["workspaceId"] == workspace.workspace_id
    assert {a["alias"] for a in export["aliases"]} == {"+12263762555", "jo@example.com"}
    assert [e["event"]["data"]["n"] for e in export["events"]] == [first["data"]["n"], second["data"]["n"]]
    assert export["events"][1]["event"]["previousidentity"] == "12263762555"
    assert [h["kind"] for h in export["identityHistory"]] == ["created", "created", "merged"]
    assert {h["personId"] for h in export["identityHistory"]} == {person["id"], *person["mergedIds"]}
    assert list(export) == [
        "workspaceId", "exportedAt", "person", "aliases", "events", "identityHistory", "profileValues",
        "firings", "deliveries",
    ]  # fmt: skip
    assert [v["template"] for v in export["profileValues"]] == ["journey-default-template"]
    (values,) = export["profileValues"]
    assert [(a["displayName"], a["result"]) for a in values["attributes"]] == [
        ("No of times contacted in the last 24 hours", "0"),
        ("No of times contacted in the last 10 days", "0"),
    ]


async def _references(db: asyncpg.Connection, values: list[str]) -> dict[str, int]:
    """Rows of every public table whose person, identity or alias columns hold one of `values`."""
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'"
        " AND (column_name ~ '(person|identity|alias)' OR column_name = 'merged_into')"
    )
    assert {("events", "identity"), ("aliases", "alias"), ("identity_changes", "aliases"),
            ("identity_changes", "other_person_id"), ("events", "previous_identity")} <= {
        (c["table_name"], c["column_name"]) for c in columns
    }  # fmt: skip
    found = {}
    for c in columns:
        table, column = c["table_name"], c["column_name"]
        test = "&& $1::text[]" if c["data_type"] == "ARRAY" else "::text = ANY($1::text[])"
        found[f"{table}.{column}"] = await db.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE "{column}" {test}', values
        )
    return {k: v for k, v in found.items() if v}


async def test_erase_leaves_nothing_about_the_person_in_any_table_and_keeps_others(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("(226) 376-2555", "phone"), event("visitor-9", "temporaryId"))
    await post(api_client, workspace, event("Jane@Example.com", "email", previous="visitor-9"))
    await post(api_client, workspace, event("bob@example.com", "email", previous=" JANE@example.com "))
    jane = await owner(api_client, workspace, "jane@example.com")
    phone_person = await owner(api_client, workspace, "+12263762555")
    path = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{jane}"
    assert (await call(api_client, "POST", path, workspace, {"personIdsToMerge": [phone_person]}))[0] == 202
    status, bob = await call(
        api_client, "POST", native(workspace, jane, "/unmerge"), workspace, {"aliases": ["bob@example.com"]}
    )
    assert status == 201
    retired = [
        r["person_id"] for r in await db.fetch("SELECT person_id FROM persons WHERE merged_into = $1", jane)
    ]
    assert len(retired) == 3  # visitor-9's, bob's (merged by the link) and the phone's
    sent = ["Jane@Example.com", "(226) 376-2555", "visitor-9", " JANE@example.com "]
    aliases = ["jane@example.com", "+12263762555", "visitor-9"]
    subject = [jane, *retired, *aliases, *sent, *(s.strip() for s in sent)]
    assert await _references(db, subject)
    assert await db.fetchval(
        "SELECT count(*) FROM profile_values WHERE person_id = $1", jane
    )  # the default template

    status, answer = await call(api_client, "DELETE", native(workspace, "+1 226 376 2555"), workspace)
    assert status == 200, answer
    assert answer["personId"] == jane
    assert answer["erased"] == {
        "person": 4,
        "aliases": 3,
        "events": 3,
        "identityHistory": answer["erased"]["identityHistory"],
        "profileValues": 1,
        "firings": 0,
        "deliveries": 0,
    }
    assert await _references(db, subject) == {}
    assert (await call(api_client, "GET", native(workspace, jane), workspace))[0] == 404
    # Bob keeps his person and his event, which no longer names Jane as its previous identity.
    assert await owner(api_client, workspace, "bob@example.com") == bob["id"]
    response = await api_client.get(
        f"/v1/api/events/workspace-id/{workspace.workspace_id}",
        params={"identity": "bob@example.com"},
        headers=workspace.headers,
    )
    [kept] = (await response.json())["data"]
    assert "previousidentity" not in kept


async def test_erase_by_an_identity_whose_person_was_deleted_removes_its_events(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await post(api_client, workspace, event("gone@example.com", "email"), event("stays@example.com", "email"))
    person = await owner(api_client, workspace, "gone@example.com")
    assert (await call(api_client, "DELETE", jds(workspace, f"/person-id/{person}"), workspace))[0] == 200
    status, export = await call(
        api_client, "GET", native(workspace, "gone@example.com", "/export"), workspace
    )
    assert (status, export["person"], len(export["events"])) == (200, None, 1)
    status, answer = await call(api_client, "DELETE", native(workspace, "Gone@Example.com"), workspace)
    assert (status, answer["personId"], answer["erased"]["events"]) == (200, None, 1)
    assert await _references(db, ["gone@example.com", person]) == {}
    assert await db.fetchval("SELECT count(*) FROM events") == 1
    assert (await call(api_client, "DELETE", native(workspace, "gone@example.com"), workspace))[0] == 404


async def test_erasing_a_personless_identity_leaves_the_alias_of_a_person_that_claimed_it_meanwhile(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    """An erase found 'gone@example.com' with no person (deleted; its events kept), so it locked nobody;
    before it ran, an ingest claimed the identity for a new person. The erase takes the events it found,
    not the alias of a person it never locked, which would be left reachable by nothing."""
    await post(api_client, workspace, event("gone@example.com", "email"))
    first = await owner(api_client, workspace, "gone@example.com")
    assert (await call(api_client, "DELETE", jds(workspace, f"/person-id/{first}"), workspace))[0] == 200
    ws = workspace.workspace_id
    subject = await privacy.subject(db, ws, "gone@example.com", "US")
    assert subject.person is None and subject.aliases == ("gone@example.com",)
    await post(api_client, workspace, event("gone@example.com", "email"))  # claimed anew meanwhile
    second = await owner(api_client, workspace, "gone@example.com")
    async with db.transaction():
        erased = await privacy.erase(db, subject)
    assert erased["aliases"] == 0
    assert await owner(api_client, workspace, "gone@example.com") == second != first


# --- the profile hook -----------------------------------------------------------------------------------


async def test_stored_profile_values_follow_an_api_merge_and_unmerge(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    template = {
        "name": "calls",
        "attributes": [{
            "version": "0.1", "event": "Call", "metaDataType": "string", "metaData": "n", "limit": 0,
            "displayName": "calls", "lookBackDurationType": "days", "lookBackPeriod": 1,
            "aggregationMode": "Count", "verbose": False, "widgetAttributes": {"type": "table"},
        }],
    }  # fmt: skip
    response = await api_client.post(
        f"/admin/v1/api/profile-view-template/workspace-id/{workspace.workspace_id}",
        data=json.dumps(template),
        headers=workspace.headers,
    )
    assert response.status == 201, await response.text()
    await post(api_client, workspace, event("+12263762555", "phone"), event("+12263762555", "phone"))
    await post(api_client, workspace, event("visitor-1", "temporaryId"))
    caller = await owner(api_client, workspace, "+12263762555")
    visitor = await owner(api_client, workspace, "visitor-1")

    async def counts() -> dict[str, int]:
        rows = await db.fetch(
            "SELECT v.person_id, v.vals FROM profile_values v"
            " JOIN templates t USING (workspace_id, template_id) WHERE t.name = 'calls'"
        )
        return {r["person_id"]: r["vals"][0][0] for r in rows}

    assert await counts() == {caller: 2, visitor: 1}
    path = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{caller}"
    assert (await call(api_client, "POST", path, workspace, {"personIdsToMerge": [visitor]}))[0] == 202
    assert await counts() == {caller: 3}  # recounted from the events, the merged person's values gone
    status, split = await call(
        api_client, "POST", native(workspace, caller, "/unmerge"), workspace, {"aliases": ["visitor-1"]}
    )
    assert status == 201
    assert await counts() == {caller: 2, split["id"]: 1}


# --- concurrency ----------------------------------------------------------------------------------------


async def test_concurrent_api_merges_and_ingest_links_lose_no_alias(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    engines = [await make_client(), await make_client()]
    await post(engines[0], workspace, *(event(f"p-{i}", "customerId") for i in range(8)))
    ids = [await owner(engines[0], workspace, f"p-{i}") for i in range(8)]

    async def api(n: int, method: str, path: str, body: Any, expected: int) -> None:
        for _ in range(3):  # 409 says "retry the request": what a client does when its change met a deadlock
            status, answer = await call(engines[n % 2], method, path, workspace, body)
            if status != 409:
                break
        assert status == expected, answer

    async def merge(n: int, primary: str, other: str) -> None:
        path = f"{BASE}/merge/workspace-id/{workspace.workspace_id}/primary-person-id/{primary}"
        await api(n, "POST", path, {"personIdsToMerge": [other]}, 202)

    async def link(n: int) -> None:
        await post(engines[n % 2], workspace, event(f"p-{n % 8}", "customerId", previous=f"new-{n}"))

    async def add(n: int) -> None:
        path = f"{BASE}/add-identities/workspace-id/{workspace.workspace_id}/person-id/{ids[n % 8]}"
        await api(n, "PATCH", path, {"socialId": [f"s-{n}"]}, 200)

    jobs = [merge(i, ids[i], ids[(i + 1) % 8]) for i in range(8)]
    jobs += [link(n) for n in range(16)] + [add(n) for n in range(8)]
    await asyncio.gather(*jobs)
    rows = await db.fetch(
        "SELECT a.alias, p.merged_into FROM aliases a JOIN persons p USING (workspace_id, person_id)"
    )
    expected = {f"p-{i}" for i in range(8)} | {f"new-{n}" for n in range(16)} | {f"s-{n}" for n in range(8)}
    assert {r["alias"] for r in rows} == expected
    assert [r["alias"] for r in rows if r["merged_into"] is not None] == []
    assert await db.fetchval("SELECT count(*) FROM persons WHERE merged_into IS NULL") == 1
