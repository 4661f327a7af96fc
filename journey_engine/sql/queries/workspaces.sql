-- name: schema_version --
SELECT max(version) FROM schema_version;

-- name: insert_workspace --
INSERT INTO workspaces (workspace_id, name, description) VALUES ($1, $2, $3)
RETURNING workspace_id, name, description, created_at;

-- name: list_workspaces --
SELECT workspace_id, name, description, created_at FROM workspaces ORDER BY created_at, workspace_id;

-- name: get_workspace --
SELECT workspace_id, name, description, created_at FROM workspaces WHERE workspace_id = $1;

-- name: find_workspace --
SELECT workspace_id, name, description, created_at FROM workspaces WHERE workspace_id = $1 OR name = $1;

-- name: insert_api_key --
INSERT INTO api_keys (workspace_id, key_id, secret_sha256, name, scopes) VALUES ($1, $2, $3, $4, $5)
RETURNING workspace_id, key_id, name, scopes, created_at;

-- name: get_api_key --
SELECT workspace_id, key_id, secret_sha256, scopes FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL;

-- name: revoke_api_key --
UPDATE api_keys SET revoked_at = now()
WHERE key_id = $1 AND ($2::text IS NULL OR workspace_id = $2) AND revoked_at IS NULL
RETURNING workspace_id, key_id;

-- name: list_api_keys --
SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys WHERE workspace_id = $1
ORDER BY created_at, key_id;
