"""Every API route is authenticated and confined to the key's workspace."""

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from journey_engine import workspaces
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]


async def test_request_without_a_key_is_401(api_client: Client, workspace: WorkspaceKey) -> None:
    response = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}")
    assert response.status == 401
    body = await response.json()
    assert "Authorization: Bearer" in body["message"]
    assert body["trackingId"] == response.headers["TrackingID"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nonsense",
        "Bearer je_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
async def test_bad_key_is_401(api_client: Client, workspace: WorkspaceKey, header: str) -> None:
    response = await api_client.get(
        f"/v1/workspaces/{workspace.workspace_id}", headers={"Authorization": header}
    )
    assert response.status == 401


async def test_right_key_id_with_wrong_secret_is_401(api_client: Client, workspace: WorkspaceKey) -> None:
    forged = workspace.token[:-4] + ("AAAA" if not workspace.token.endswith("AAAA") else "BBBB")
    response = await api_client.get(
        f"/v1/workspaces/{workspace.workspace_id}", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status == 401


async def test_valid_key_reaches_its_workspace(api_client: Client, workspace: WorkspaceKey) -> None:
    response = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=workspace.headers)
    assert response.status == 200
    assert (await response.json())["id"] == workspace.workspace_id


async def test_another_workspace_is_404_as_if_it_did_not_exist(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    for path in (f"/v1/workspaces/{other.workspace_id}", f"/v1/workspaces/{other.workspace_id}/keys"):
        response = await api_client.get(path, headers=workspace.headers)
        assert response.status == 404, path
    missing = await api_client.get("/v1/workspaces/ffffffffffffffffffffffff", headers=workspace.headers)
    assert (await missing.json())["message"].replace("ffffffffffffffffffffffff", "X") == (
        (await response.json())["message"].replace(other.workspace_id, "X")
    )


async def test_missing_scope_is_403(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    writer = await key_for(workspace, "events:write")
    response = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=writer.headers)
    assert response.status == 403
    assert "'read'" in (await response.json())["message"]
    reader = await key_for(workspace, "read")
    assert (
        await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=reader.headers)
    ).status == 200
    keys = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}/keys", headers=reader.headers)
    assert keys.status == 403


async def test_revoked_key_stops_working_at_once(
    api_client: Client, workspace: WorkspaceKey, key_for: Callable[..., Awaitable[WorkspaceKey]]
) -> None:
    reader = await key_for(workspace, "read")
    path = f"/v1/workspaces/{workspace.workspace_id}"
    assert (await api_client.get(path, headers=reader.headers)).status == 200
    revoked = await api_client.delete(f"{path}/keys/{reader.key_id}", headers=workspace.headers)
    assert revoked.status == 200
    assert (await api_client.get(path, headers=reader.headers)).status == 401


async def test_keys_of_another_workspace_cannot_be_revoked(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    other = await workspaces.create_workspace(db, "other")
    other_key = await workspaces.create_key(db, other.workspace_id, ["read"])
    response = await api_client.delete(
        f"/v1/workspaces/{workspace.workspace_id}/keys/{other_key.key_id}", headers=workspace.headers
    )
    assert response.status == 404
    assert await db.fetchval("SELECT revoked_at FROM api_keys WHERE key_id = $1", other_key.key_id) is None


async def test_admin_creates_a_key_whose_token_works_and_is_stored_hashed(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    response = await api_client.post(
        f"/v1/workspaces/{workspace.workspace_id}/keys",
        json={"scopes": ["read"], "name": "dashboard"},
        headers=workspace.headers,
    )
    assert response.status == 201
    token = (await response.json())["token"]
    stored = await db.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", (await response.json())["keyId"])
    assert token.encode() not in bytes(stored["secret_sha256"])
    assert token.split("_", 2)[2] not in str(dict(stored))
    listed = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}/keys", headers=workspace.headers)
    assert token not in await listed.text()
    ok = await api_client.get(
        f"/v1/workspaces/{workspace.workspace_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.status == 200


async def test_key_with_unknown_scope_is_400_naming_the_field(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    response = await api_client.post(
        f"/v1/workspaces/{workspace.workspace_id}/keys", json={"scopes": ["root"]}, headers=workspace.headers
    )
    assert response.status == 400
    assert "scopes" in (await response.json())["message"]
    bad_json = await api_client.post(
        f"/v1/workspaces/{workspace.workspace_id}/keys", data=b"{nope", headers=workspace.headers
    )
    assert bad_json.status == 400
    assert (await bad_json.json())["errors"][0]["field"] == "body"


async def test_token_in_query_string_is_refused_outside_stream_paths(
    api_client: Client, workspace: WorkspaceKey
) -> None:
    response = await api_client.get(
        f"/v1/workspaces/{workspace.workspace_id}", params={"bearerToken": workspace.token}
    )
    assert response.status == 401


async def test_jds_paths_answer_errors_in_the_jds_shape_with_a_logged_tracking_id(
    api_client: Client, workspace: WorkspaceKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="journey_engine.access")
    response = await api_client.get(
        "/admin/v1/api/workspace/workspace-id/ffffffffffffffffffffffff", headers=workspace.headers
    )
    assert response.status == 404
    body = await response.json()
    assert body["status"] == "404 NOT_FOUND"
    assert set(body) == {"status", "message", "errors", "timestamp", "trackingId"}
    lines = [r for r in caplog.records if getattr(r, "fields", {}).get("trackingId") == body["trackingId"]]
    assert len(lines) == 1
    assert lines[0].fields["status"] == 404  # type: ignore[attr-defined]


async def test_client_tracking_id_is_kept(api_client: Client, workspace: WorkspaceKey) -> None:
    response = await api_client.get("/admin/v1/api/workspace", headers={"TrackingID": "flow_abc_123"})
    assert response.status == 401
    assert (await response.json())["trackingId"] == "flow_abc_123"
    assert response.headers["TrackingID"] == "flow_abc_123"


async def test_tokens_never_reach_the_logs(
    api_client: Client, workspace: WorkspaceKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=workspace.headers)
    await api_client.get(f"/v1/workspaces/{workspace.workspace_id}?bearerToken={workspace.token}")
    await api_client.post(
        f"/v1/workspaces/{workspace.workspace_id}/keys", json={"scopes": ["read"]}, headers=workspace.headers
    )
    secret = workspace.token.split("_", 2)[2]  # the 43-character secret (it may hold "_")
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(getattr(record, "fields", ""))


async def test_jds_workspace_list_shows_only_the_keys_workspace(
    api_client: Client, workspace: WorkspaceKey, db: asyncpg.Connection
) -> None:
    await workspaces.create_workspace(db, "other")
    response = await api_client.get("/admin/v1/api/workspace", headers=workspace.headers)
    assert response.status == 200
    assert [w["id"] for w in (await response.json())["data"]] == [workspace.workspace_id]


async def test_unknown_path_is_a_json_404(api_client: Client) -> None:
    response = await api_client.get("/v1/nothing-here")
    assert response.status == 404
    assert (await response.json())["status"] == 404
