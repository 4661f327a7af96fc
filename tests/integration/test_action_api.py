"""The JDS journey-actions API over HTTP: `/admin/v1/api/journey-actions/workspace-id/{W}`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from actions.signing import verify
from journey_engine import workspaces
from tests.helpers import WebhookReceiver, WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
FAST = {"webhook_retry_schedule": "0.2,0.2,0.2", "sweep_interval": 0.1}
RECEIVER = "https://hooks.example.com/events/6M347NJ6"

# The JDS description's samples: the "ClosedCaller" template and the "Closed Queue Action" action.
CLOSED_CALLER: dict[str, Any] = {
    "name": "ClosedCaller",
    "attributes": [
        {"version": "0.1", "event": "Closed Queue", "metaDataType": "string", "metaData": "category",
         "limit": 100, "displayName": "ClosedCaller", "lookBackDurationType": "minutes", "lookBackPeriod": 5,
         "aggregationMode": "Count",
         "rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value EQ Closed"},
         "widgetAttributes": {"type": "table"}, "verbose": False}
    ],
}  # fmt: skip
SAMPLE_BODY = '{"SMS":"12263762551","callID":"","MessageToSend":"Hello there!"}'


def closed_queue_action(url: str = RECEIVER, **over: Any) -> dict[str, Any]:
    return {
        "name": "Closed Queue Action",
        "cooldownPeriodInMinutes": 1,
        "rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value GTE 2"},
        "actionTriggers": [
            {"type": "Webhook", "webhookURL": url,
             "attributes": {"httpverb": "post", "requestbody": SAMPLE_BODY}}
        ],
        "isActive": True,
        **over,
    }  # fmt: skip


def base(ws: WorkspaceKey) -> str:
    return f"/admin/v1/api/journey-actions/workspace-id/{ws.workspace_id}"


async def call(client: Client, ws: WorkspaceKey, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    response = await client.request(method, base(ws) + path, data=data, headers=ws.headers)
    return response.status, await response.json()


async def make_template(client: Client, ws: WorkspaceKey, name: str = "ClosedCaller") -> str:
    response = await client.post(
        f"/admin/v1/api/profile-view-template/workspace-id/{ws.workspace_id}",
        data=json.dumps({**CLOSED_CALLER, "name": name}),
        headers=ws.headers,
    )
    assert response.status == 201, await response.text()
    template_id: str = (await response.json())["data"]["id"]
    return template_id


async def make_action(client: Client, ws: WorkspaceKey, template: str, **over: Any) -> dict[str, Any]:
    status, body = await call(client, ws, "POST", f"/template-id/{template}", closed_queue_action(**over))
    assert status == 201, body
    data: dict[str, Any] = body["data"]
    return data


# --- create and read -----------------------------------------------------------------------------------


async def test_create_answers_201_with_the_action_in_jds_shape_and_no_secret(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    response = await api_client.post(
        base(workspace) + f"/template-id/{template_id}",
        data=json.dumps(closed_queue_action()),
        headers=workspace.headers,
    )
    assert response.status == 201
    text = await response.text()
    assert "whsec_" not in text
    body = json.loads(text)
    assert body["meta"] == {"organizationId": workspace.workspace_id}
    data = body["data"]
    assert len(data["id"]) == 24
    assert data | {"id": "", "createdAt": "", "updatedAt": ""} == {
        "id": "", "name": "Closed Queue Action", "organizationId": workspace.workspace_id,
        "workspaceId": workspace.workspace_id, "isActive": True, "templateId": template_id,
        "cooldownPeriodInMinutes": 1,
        "rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value GTE 2"},
        "actionTriggers": [{"type": "Webhook", "webhookURL": RECEIVER,
                            "attributes": {"httpverb": "post", "requestbody": SAMPLE_BODY}}],
        "fire": "always", "createdAt": "", "createdBy": workspace.key_id, "updatedAt": "",
        "updatedBy": workspace.key_id,
    }  # fmt: skip
    assert data["createdAt"].endswith("Z")


async def test_an_action_reads_by_id_and_by_name_with_the_template_id_or_name_in_the_path(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id)
    for template in (template_id, "ClosedCaller"):
        status, by_id = await call(
            api_client, workspace, "GET", f"/template-id/{template}/action-id/{made['id']}"
        )
        assert (status, by_id["data"]) == (200, made)
        path = f"/template-id/{template}/action-name/Closed Queue Action"
        status, by_name = await call(api_client, workspace, "GET", path)
        assert (status, by_name["data"]) == (200, made)


async def test_fire_on_enter_is_kept_and_answered(api_client: Client, workspace: WorkspaceKey) -> None:
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id, fire="on_enter")
    assert made["fire"] == "on_enter"
    path = f"/template-id/{template_id}/action-id/{made['id']}"
    assert (await call(api_client, workspace, "GET", path))[1]["data"]["fire"] == "on_enter"


async def test_lists_all_actions_or_one_templates_sorted_and_paged(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    first = await make_template(api_client, workspace, "first")
    second = await make_template(api_client, workspace, "second")
    a = await make_action(api_client, workspace, first, name="a")
    b = await make_action(api_client, workspace, second, name="b")
    c = await make_action(api_client, workspace, first, name="c")
    status, everything = await call(api_client, workspace, "GET", "")
    assert status == 200
    assert everything["meta"] == {"organizationId": workspace.workspace_id}
    assert [x["name"] for x in everything["data"]] == ["a", "b", "c"]
    status, of_first = await call(api_client, workspace, "GET", "/template-id/first")
    assert [x["id"] for x in of_first["data"]] == [a["id"], c["id"]]
    status, page = await call(api_client, workspace, "GET", "?sortBy=name&sort=desc&page=1&pageSize=1")
    assert [x["id"] for x in page["data"]] == [b["id"]]
    assert (await call(api_client, workspace, "GET", "?page=3&pageSize=1"))[0] == 404


async def test_a_template_without_actions_lists_404_as_jds_flows_expect(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    await make_template(api_client, workspace)
    status, body = await call(api_client, workspace, "GET", "/template-id/ClosedCaller")
    assert status == 404
    assert body["status"] == "404 NOT_FOUND"


async def test_bad_list_parameters_are_400_naming_the_parameter(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    for query, field in [("sortBy=colour", "sortBy"), ("sort=up", "sort"), ("pageSize=0", "pageSize")]:
        status, body = await call(api_client, workspace, "GET", f"?{query}")
        assert status == 400
        assert body["errors"][0].startswith(f"{field}: ")


# --- update and delete ---------------------------------------------------------------------------------


async def test_update_replaces_the_whole_action_and_answers_201(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id)
    changed = closed_queue_action(
        name="renamed", isActive=False, cooldownPeriodInMinutes=30, actionTriggers=[]
    )
    path = f"/template-id/ClosedCaller/action-id/{made['id']}"
    status, body = await call(api_client, workspace, "PUT", path, changed)
    assert status == 201
    updated = body["data"]
    assert (updated["id"], updated["name"], updated["isActive"]) == (made["id"], "renamed", False)
    assert (updated["cooldownPeriodInMinutes"], updated["actionTriggers"]) == (30, [])
    assert updated["createdAt"] == made["createdAt"]
    status, again = await call(api_client, workspace, "GET", path)
    assert again["data"] == updated


async def test_delete_answers_the_deleted_action_and_it_is_gone(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id)
    path = f"/template-id/{template_id}/action-id/{made['id']}"
    status, body = await call(api_client, workspace, "DELETE", path)
    assert (status, body) == (200, made)
    assert (await call(api_client, workspace, "GET", path))[0] == 404
    assert (await call(api_client, workspace, "DELETE", path))[0] == 404


# --- errors --------------------------------------------------------------------------------------------


async def test_a_rule_leaf_that_names_no_attribute_of_the_template_is_400_naming_it(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id)
    rules = {
        "logic": "OR",
        "args": ["Closed Queue,category,string,Value GTE 2", "Payment,amount,integer,Sum GT 5"],
    }
    paths = [
        ("POST", f"/template-id/{template_id}"),
        ("PUT", f"/template-id/{template_id}/action-id/{made['id']}"),
    ]
    for method, path in paths:
        status, body = await call(
            api_client, workspace, method, path, closed_queue_action(name="x", rules=rules)
        )
        assert status == 400
        assert body["status"] == "400 BAD_REQUEST"
        (problem,) = body["errors"]
        assert problem.startswith("rules: 'Payment,amount,integer,Sum GT 5' matches no attribute")
        assert "Closed Queue,category,Count" in problem  # it says what the template has


async def test_an_unknown_placeholder_in_a_request_body_is_400_naming_the_trigger(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    trigger = {"type": "Webhook", "webhookURL": RECEIVER,
               "attributes": {"httpverb": "post", "requestbody": '{"n": "{{values.Nope}}"}'}}  # fmt: skip
    body = closed_queue_action(actionTriggers=[trigger])
    status, answer = await call(api_client, workspace, "POST", f"/template-id/{template_id}", body)
    assert status == 400
    assert answer["errors"] == [
        "actionTriggers[0].attributes.requestbody: unknown placeholder {{values.Nope}}"
    ]


async def test_a_malformed_action_is_400_naming_each_field(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    path = f"/template-id/{template_id}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in closed_queue_action().items() if k != "name"}, "name: is required"),
        ({k: v for k, v in closed_queue_action().items() if k != "rules"}, "rules: is required"),
        (closed_queue_action(cooldownPeriodInMinutes=-1), "cooldownPeriodInMinutes: "),
        (closed_queue_action(url="ftp://x"), "actionTriggers[0].webhookURL: must be an absolute"),
        (
            closed_queue_action(rules={"logic": "SINGLE", "condition": "Closed Queue,category"}),
            "rules.condition: ",
        ),
        (closed_queue_action(fire="sometimes"), "fire: "),
    ]
    for body, expected in cases:
        status, answer = await call(api_client, workspace, "POST", path, body)
        assert status == 400, body
        assert answer["errors"][0].startswith(expected), (expected, answer["errors"])
    response = await api_client.post(base(workspace) + path, data="{oops", headers=workspace.headers)
    assert response.status == 400
    assert (await response.json())["errors"][0].startswith("body: not valid JSON")


async def test_a_name_the_template_already_has_is_409_on_create_and_on_update(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    await make_action(api_client, workspace, template_id, name="one")
    two = await make_action(api_client, workspace, template_id, name="two")
    status, body = await call(
        api_client, workspace, "POST", f"/template-id/{template_id}", closed_queue_action(name="one")
    )
    assert (status, body["status"]) == (409, "409 CONFLICT")
    assert body["errors"] == ["name: the template already has an action named 'one'"]
    path = f"/template-id/{template_id}/action-id/{two['id']}"
    status, body = await call(api_client, workspace, "PUT", path, closed_queue_action(name="one"))
    assert status == 409
    other = await make_template(api_client, workspace, "other")
    await make_action(api_client, workspace, other, name="one")  # names are per template


async def test_an_unknown_template_or_action_is_404_on_every_path(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id)
    missing = "0" * 24
    for method, path, body in [
        ("GET", "/template-id/nope", None),
        ("POST", "/template-id/nope", closed_queue_action()),
        ("GET", "/template-id/nope/action-name/Closed Queue Action", None),
        ("GET", f"/template-id/{template_id}/action-name/nope", None),
        ("GET", f"/template-id/nope/action-id/{made['id']}", None),
        ("GET", f"/template-id/{template_id}/action-id/{missing}", None),
        ("PUT", f"/template-id/{template_id}/action-id/{missing}", closed_queue_action()),
        ("DELETE", f"/template-id/{template_id}/action-id/not-an-id", None),
    ]:
        status, answer = await call(api_client, workspace, method, path, body)
        assert (status, answer["status"]) == (404, "404 NOT_FOUND"), (method, path)


async def test_an_action_of_another_template_in_the_path_is_404(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    template_id = await make_template(api_client, workspace)
    other = await make_template(api_client, workspace, "other")
    made = await make_action(api_client, workspace, template_id)
    path = f"/template-id/{other}/action-id/{made['id']}"
    for method, body in [("GET", None), ("PUT", closed_queue_action(name="moved")), ("DELETE", None)]:
        assert (await call(api_client, workspace, method, path, body))[0] == 404
    status, _ = await call(api_client, workspace, "GET", f"/template-id/{template_id}/action-id/{made['id']}")
    assert status == 200


async def test_writes_need_the_admin_scope_and_read_keys_see_credentials_masked(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    template_id = await make_template(api_client, workspace)
    trigger = {"type": "Webhook", "webhookURL": RECEIVER,
               "attributes": {"httpverb": "post", "requestbody": "{}", "authorizationScheme": "Bearer",
                              "authorization": "downstream-token"}}  # fmt: skip
    made = await make_action(api_client, workspace, template_id, actionTriggers=[trigger])
    assert made["actionTriggers"][0]["attributes"]["authorization"] == "downstream-token"
    reader = await key_for(workspace, "read")
    writer = await key_for(workspace, "events:write")
    path = f"/template-id/{template_id}/action-id/{made['id']}"
    status, seen = await call(api_client, reader, "GET", path)
    assert status == 200
    assert seen["data"]["actionTriggers"][0]["attributes"] == {
        "httpverb": "post", "requestbody": "{}", "authorizationScheme": "Bearer", "authorization": "********"
    }  # fmt: skip
    assert (await call(api_client, reader, "GET", ""))[0] == 200
    for method, where, body in [
        ("POST", f"/template-id/{template_id}", closed_queue_action(name="new")),
        ("PUT", path, closed_queue_action()),
        ("DELETE", path, None),
    ]:
        status, answer = await call(api_client, reader, method, where, body)
        assert (status, answer["status"]) == (403, "403 FORBIDDEN")
    assert (await call(api_client, writer, "GET", path))[0] == 403


async def test_another_workspaces_actions_are_404(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    key = await workspaces.create_key(db, other.workspace_id, workspaces.SCOPES)
    stranger = WorkspaceKey(other.workspace_id, key.key_id, key.token)
    template_id = await make_template(api_client, workspace)
    made = await make_action(api_client, workspace, template_id)
    path = f"/template-id/{template_id}/action-id/{made['id']}"
    response = await api_client.get(base(workspace) + path, headers=stranger.headers)  # our path, their key
    assert response.status == 404
    assert (await call(api_client, stranger, "GET", path))[0] == 404  # their path: no such template
    their_template = await make_template(api_client, stranger)
    theirs = await make_action(api_client, stranger, their_template)
    for template in (template_id, their_template):
        status, _ = await call(
            api_client, workspace, "GET", f"/template-id/{template}/action-id/{theirs['id']}"
        )
        assert status == 404


# --- the acceptance story ------------------------------------------------------------------------------


async def test_saving_the_customer_through_the_jds_api_only(
    make_client: Callable[..., Awaitable[Client]], workspace: WorkspaceKey, webhook_receiver: WebhookReceiver
) -> None:
    """Anchors use case 3: two "Closed Queue" events fire the sample action's webhook, signed."""
    client = await make_client(**FAST)
    await make_template(client, workspace)
    made = await make_action(client, workspace, "ClosedCaller", url=f"{webhook_receiver.url}/events/6M347NJ6")
    for n in range(2):
        event = {"id": f"closed-{n}", "specversion": "1.0", "type": "Closed Queue",
                 "source": "Voice%20Contact", "identity": "jes@gmail.com", "identitytype": "email",
                 "datacontenttype": "application/json",
                 "data": {"Email": "jes@gmail.com", "category": "Closed"}}  # fmt: skip
        response = await client.post(
            f"/publish/v1/api/event?workspaceId={workspace.workspace_id}",
            data=json.dumps(event),
            headers={**workspace.headers, "Content-Type": "application/json"},
        )
        assert response.status == 202, await response.text()
    (got,) = await webhook_receiver.wait_for(1)
    assert (got.method, got.path, got.body) == ("POST", "/events/6M347NJ6", SAMPLE_BODY.encode())
    response = await client.get(
        f"/v1/workspaces/{workspace.workspace_id}/actions/{made['id']}/secrets", headers=workspace.headers
    )
    assert response.status == 200
    secrets = (await response.json())["secrets"]
    verify(secrets, got.headers, got.body)
