"""The JDS profile view template API over HTTP: `/admin/v1/api/profile-view-template/workspace-id/{W}`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from journey_engine import workspaces
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
PHONE = "+12263762555"


def base(ws: WorkspaceKey) -> str:
    return f"/admin/v1/api/profile-view-template/workspace-id/{ws.workspace_id}"


def attribute(**over: Any) -> dict[str, Any]:
    return {
        "version": "0.1", "event": "Payment Queue", "metaDataType": "string", "metaData": "queue",
        "limit": 0, "displayName": "calls", "lookBackDurationType": "minutes", "lookBackPeriod": 5,
        "aggregationMode": "Count", "verbose": False, "widgetAttributes": {"type": "table"}, **over,
    }  # fmt: skip


def template(name: str = "repeat-caller", *attributes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "attributes": list(attributes) or [attribute()]}


async def create(client: Client, ws: WorkspaceKey, body: Any) -> tuple[int, Any]:
    response = await client.post(base(ws), data=json.dumps(body), headers=ws.headers)
    return response.status, await response.json()


async def call(client: Client, ws: WorkspaceKey, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    response = await client.request(method, base(ws) + path, data=data, headers=ws.headers)
    return response.status, await response.json()


async def post_events(client: Client, ws: WorkspaceKey, *events: dict[str, Any]) -> None:
    response = await client.post(
        f"/v1/workspaces/{ws.workspace_id}/events",
        data=json.dumps(list(events)),
        headers={**ws.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status == 202, await response.text()


def payment_queue(id: str, queue: str, seconds_ago: float = 10) -> dict[str, Any]:
    time = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    return {"id": id, "specversion": "1.0", "type": "Payment Queue", "source": "ivr", "time": time,
            "identity": PHONE, "identitytype": "phone", "data": {"queue": queue}}  # fmt: skip


async def view_result(client: Client, ws: WorkspaceKey, name: str) -> str | None:
    path = f"/v1/api/progressive-profile-view/workspace-id/{ws.workspace_id}/identity/{PHONE}"
    response = await client.get(f"{path}/template-name/{name}", headers=ws.headers)
    assert response.status == 200, await response.text()
    result: str | None = (await response.json())["data"][0]["attributes"][0]["result"]
    return result


# --- create and read -----------------------------------------------------------------------------------


async def test_create_answers_201_with_the_stored_template_in_jds_shape(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    sent = attribute(
        aggregationMode="count", metaDataType="STRING", lookBackDurationType="Minutes", version=1,
        rules="Payment Queue,queue,string,Value EQ billing",
    )  # fmt: skip
    status, body = await create(api_client, workspace, template("repeat-caller", sent))
    assert status == 201, body
    assert body["meta"] == {"organizationId": workspace.workspace_id}
    data = body["data"]
    assert len(data["id"]) == 24 and int(data["id"], 16) >= 0
    assert data["name"] == "repeat-caller"
    assert data["workspaceId"] == data["organizationId"] == workspace.workspace_id
    assert data["createdBy"] == data["updatedBy"] == workspace.key_id
    assert data["createdAt"] == data["updatedAt"] and data["createdAt"].endswith("Z")
    assert data["attributes"] == [
        attribute(
            version="1", rules={"logic": "SINGLE", "condition": "Payment Queue,queue,string,Value EQ billing"}
        )
    ]


async def test_a_template_reads_by_id_by_name_and_by_name_where_an_id_is_expected(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    _, created = await create(api_client, workspace, template("repeat-caller"))
    for path in (
        f"/template-id/{created['data']['id']}",
        "/template-id/repeat-caller",
        "/template-name/repeat-caller",
    ):
        status, body = await call(api_client, workspace, "GET", path)
        assert status == 200, path
        assert body == created, path


INVALID_ATTRIBUTES = [
    ({"aggregationMode": "Sum"}, "aggregationMode: attribute 'calls': Sum needs a numeric type, not string"),
    (
        {"aggregationMode": "Max"},
        "aggregationMode: attribute 'calls': Max needs a numeric or utc_datetime type",
    ),
    (
        {
            "rules": {
                "logic": "OR",
                "args": ["Payment Queue,queue,string,Value EQ a", "Payment Queue,queue,EQ b"],
            }
        },
        "rules.args[1]: expected 4 comma-separated parts",
    ),
    ({"rules": "Payment Queue,queue,string,Value ABOUT b"}, "rules: unknown operator 'ABOUT'"),
    ({"rules": "Payment Queue,queue,integer,Value EQ b"}, "rules: value 'b' is not an integer"),
    ({"rules": "Other,queue,string,Value EQ b"}, "rules: event 'Other' differs"),
    ({"metaData": None}, "metaData: Input should be a valid string"),
    (
        {"lookBackDurationType": "days", "lookBackPeriod": 401},
        "lookBackPeriod: attribute 'calls': the window is at most 400 days",
    ),
    ({"lookBackDurationType": "weeks"}, "lookBackDurationType: Input should be"),
    ({"limit": -1}, "limit: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("change", "error"), INVALID_ATTRIBUTES)
async def test_an_invalid_attribute_is_400_naming_the_attribute_and_the_problem(
    api_client: Client, workspace: WorkspaceKey, change: dict[str, Any], error: str
) -> None:
    status, body = await create(api_client, workspace, template("t", attribute(**change)))
    assert status == 400
    assert body["status"] == "400 BAD_REQUEST"
    assert body["errors"][0].startswith(f"attributes[0].{error}"), body["errors"]
    assert body["message"].startswith("Invalid template: attributes[0].")
    assert body["trackingId"]


async def test_a_missing_field_is_400_saying_it_is_required(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    incomplete = {k: v for k, v in attribute().items() if k not in ("event", "limit")}
    status, body = await create(api_client, workspace, template("t", incomplete))
    assert status == 400
    assert body["errors"] == ["attributes[0].event: is required", "attributes[0].limit: is required"]
    status, body = await create(api_client, workspace, {"attributes": [attribute()]})
    assert (status, body["errors"]) == (400, ["name: is required"])


async def test_duplicate_display_names_are_400(api_client: Client, workspace: WorkspaceKey) -> None:
    status, body = await create(api_client, workspace, template("t", attribute(), attribute(event="Other")))
    assert status == 400
    assert body["errors"] == ["attributes[1].displayName: duplicate displayName 'calls' (also attributes[0])"]


async def test_a_body_that_is_not_a_template_is_400(api_client: Client, workspace: WorkspaceKey) -> None:
    response = await api_client.post(base(workspace), data=b"{not json", headers=workspace.headers)
    assert response.status == 400
    assert (await response.json())["errors"][0].startswith("body: not valid JSON")
    status, body = await create(api_client, workspace, [template()])
    assert status == 400 and body["errors"][0].startswith("body: ")
    status, body = await create(api_client, workspace, template("a/b"))
    assert status == 400 and body["errors"] == ["name: must not contain '/' (names appear in URL paths)"]


async def test_a_name_another_template_has_is_409_on_create_and_on_update(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    assert (await create(api_client, workspace, template("first")))[0] == 201
    assert (await create(api_client, workspace, template("second")))[0] == 201
    status, body = await create(api_client, workspace, template("first"))
    assert status == 409
    assert body["status"] == "409 CONFLICT"
    assert body["errors"] == ["name: a template named 'first' already exists in this workspace"]
    status, body = await call(api_client, workspace, "PUT", "/template-id/second", template("first"))
    assert status == 409
    assert (await call(api_client, workspace, "GET", "/template-name/second"))[0] == 200


async def test_an_unknown_template_is_404_on_every_path(api_client: Client, workspace: WorkspaceKey) -> None:
    for method, path, body in [
        ("GET", "/template-id/ffffffffffffffffffffffff", None),
        ("GET", "/template-id/no-such-template", None),
        ("GET", "/template-name/no-such-template", None),
        ("PUT", "/template-id/no-such-template", template()),
        ("DELETE", "/template-id/no-such-template", None),
    ]:
        status, answer = await call(api_client, workspace, method, path, body)
        assert status == 404, (method, path)
        assert answer["status"] == "404 NOT_FOUND"
        assert "no-such-template" in answer["message"] or "ffff" in answer["message"]
    _, created = await create(api_client, workspace, template("named"))
    # template-name takes names only
    assert (await call(api_client, workspace, "GET", f"/template-name/{created['data']['id']}"))[0] == 404


# --- update and delete ---------------------------------------------------------------------------------


async def test_update_replaces_the_whole_template_and_values_follow_it(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    _, created = await create(api_client, workspace, template("repeat-caller"))
    await post_events(
        api_client, workspace,
        payment_queue("a", "billing"), payment_queue("b", "billing", 20), payment_queue("c", "sales", 30),
    )  # fmt: skip
    assert await view_result(api_client, workspace, "repeat-caller") == "3"

    billing_only = attribute(displayName="billing calls", rules="Payment Queue,queue,string,Value EQ billing")
    status, body = await call(
        api_client, workspace, "PUT", "/template-id/repeat-caller", template("repeat-caller", billing_only)
    )
    assert status == 200, body
    assert body["data"]["id"] == created["data"]["id"]
    assert body["data"]["attributes"][0]["displayName"] == "billing calls"
    assert body["data"]["createdAt"] == created["data"]["createdAt"]
    assert body["data"]["updatedAt"] >= created["data"]["updatedAt"]
    assert await view_result(api_client, workspace, "repeat-caller") == "2"

    renamed = template("frequent-caller", attribute(aggregationMode="Distinct"))
    status, body = await call(api_client, workspace, "PUT", f"/template-id/{created['data']['id']}", renamed)
    assert status == 200
    assert (await call(api_client, workspace, "GET", "/template-name/repeat-caller"))[0] == 404
    assert await view_result(api_client, workspace, "frequent-caller") == "billing,sales"


async def test_delete_answers_the_deleted_template_and_it_is_gone(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    _, created = await create(api_client, workspace, template("doomed"))
    await post_events(api_client, workspace, payment_queue("a", "billing"))
    assert await view_result(api_client, workspace, "doomed") == "1"
    status, body = await call(api_client, workspace, "DELETE", "/template-id/doomed")
    assert status == 200
    assert body == created["data"]
    assert (await call(api_client, workspace, "GET", f"/template-id/{created['data']['id']}"))[0] == 404
    assert (await call(api_client, workspace, "DELETE", f"/template-id/{created['data']['id']}"))[0] == 404
    assert (
        await db.fetchval("SELECT count(*) FROM profile_values WHERE template_id = $1", created["data"]["id"])
        == 0
    )


# --- list ----------------------------------------------------------------------------------------------


async def names(client: Client, ws: WorkspaceKey, **params: str) -> tuple[int, Any]:
    response = await client.get(base(ws), params=params, headers=ws.headers)
    body = await response.json()
    return response.status, [t["name"] for t in body["data"]] if response.status == 200 else body


async def test_list_filters_sorts_and_pages(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    other_admin = await key_for(workspace, "admin")
    for name in ("beta", "alpha", "gamma"):
        assert (await create(api_client, workspace, template(name)))[0] == 201
    assert (await create(api_client, other_admin, template("delta")))[0] == 201
    default = "journey-default-template"

    assert await names(api_client, workspace) == (200, [default, "beta", "alpha", "gamma", "delta"])
    assert await names(api_client, workspace, sortBy="name") == (
        200,
        ["alpha", "beta", "delta", "gamma", default],
    )
    assert await names(api_client, workspace, sortBy="name", sort="DESC", page="1", pageSize="2") == (
        200, ["delta", "beta"],
    )  # fmt: skip
    assert await names(api_client, workspace, filter="name=='*a';name!=gamma", sortBy="name") == (
        200, ["alpha", "beta", "delta"],
    )  # fmt: skip
    assert await names(api_client, workspace, filter=f"createdBy=={other_admin.key_id}") == (200, ["delta"])
    newest_first = {"sortBy": "updatedAt", "sort": "desc"}
    assert await names(api_client, workspace, filter="name=in=(alpha,gamma)", **newest_first) == (
        200, ["gamma", "alpha"],
    )  # fmt: skip
    _, listed = await names(api_client, workspace, filter="createdAt=ge=2000-01-01T00:00:00Z", pageSize="1")
    assert listed == [default]
    response = await api_client.get(
        base(workspace), params={"filter": "name==alpha"}, headers=workspace.headers
    )
    body = await response.json()
    assert body["meta"] == {"organizationId": workspace.workspace_id}
    assert body["data"][0]["attributes"] == [attribute(rules=None)]


async def test_list_with_nothing_on_the_page_is_404(api_client: Client, workspace: WorkspaceKey) -> None:
    status, body = await names(api_client, workspace, filter="name==nothing")
    assert status == 404 and body["status"] == "404 NOT_FOUND"
    assert (await names(api_client, workspace, page="1"))[0] == 404


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"filter": "event==x"}, "filter: unknown field 'event'"),
        ({"filter": "name=="}, "filter: "),
        ({"filter": "createdAt=gt=yesterday"}, "filter: field 'createdAt' needs a date-time"),
        ({"sortBy": "event"}, "sortBy: unknown field 'event'"),
        ({"sort": "up"}, "sort: must be 'asc' or 'desc'"),
        ({"pageSize": "0"}, "pageSize: must be a whole number from 1 to 1000"),
        ({"pageSize": "1001"}, "pageSize: must be a whole number from 1 to 1000"),
        ({"page": "-1"}, "page: must be a whole number"),
    ],
)
async def test_bad_list_parameters_are_400_naming_the_parameter(
    api_client: Client, workspace: WorkspaceKey, params: dict[str, str], error: str
) -> None:
    status, body = await names(api_client, workspace, **params)
    assert status == 400
    assert body["errors"][0].startswith(error), body


async def test_every_new_workspace_starts_with_the_default_template(
    api_client: Client, db: asyncpg.Connection
) -> None:
    created = await workspaces.create_workspace(db, "brand-new")
    key = await workspaces.create_key(db, created.workspace_id, ["read"])
    ws = WorkspaceKey(created.workspace_id, key.key_id, key.token)
    status, body = await call(api_client, ws, "GET", "")
    assert status == 200
    [default] = body["data"]
    assert default["name"] == "journey-default-template"
    assert [a["displayName"] for a in default["attributes"]] == [
        "No of times contacted in the last 24 hours",
        "No of times contacted in the last 10 days",
    ]
    assert {a["event"] for a in default["attributes"]} == {"task:new"}
    status, by_name = await call(api_client, ws, "GET", "/template-name/journey-default-template")
    assert (status, by_name["data"]) == (200, default)


# --- access --------------------------------------------------------------------------------------------


async def test_writes_need_the_admin_scope_and_reads_the_read_scope(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    reader = await key_for(workspace, "read")
    writer = await key_for(workspace, "events:write")
    assert (await create(api_client, reader, template("x")))[0] == 403
    assert (await call(api_client, reader, "PUT", "/template-id/journey-default-template", template()))[
        0
    ] == 403
    assert (await call(api_client, reader, "DELETE", "/template-id/journey-default-template"))[0] == 403
    assert (await call(api_client, reader, "GET", "/template-id/journey-default-template"))[0] == 200
    assert (await call(api_client, reader, "GET", ""))[0] == 200
    status, body = await call(api_client, writer, "GET", "")
    assert status == 403 and body["status"] == "403 FORBIDDEN"


async def test_another_workspaces_templates_are_404(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    intruder = WorkspaceKey(other.workspace_id, workspace.key_id, workspace.token)  # our key, their path
    for method, path in [("GET", ""), ("GET", "/template-name/journey-default-template"), ("POST", "")]:
        status, _ = await call(api_client, intruder, method, path, template() if method == "POST" else None)
        assert status == 404, (method, path)
    theirs = await db.fetchval(
        "SELECT template_id FROM templates WHERE workspace_id = $1", other.workspace_id
    )
    assert (await call(api_client, workspace, "GET", f"/template-id/{theirs}"))[0] == 404
    assert (await call(api_client, workspace, "DELETE", f"/template-id/{theirs}"))[0] == 404
