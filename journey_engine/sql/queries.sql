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

-- name: insert_events --
INSERT INTO events (
    workspace_id, id, source, specversion, type, time, identity, identity_raw, identity_type,
    previous_identity, subject, datacontenttype, dataschema, data, data_base64, extensions, content_hash
)
SELECT w, i, src, sv, t, tm, idn, raw, it, prev, subj, dct, ds, d::jsonb, d64, ext::jsonb, h
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
    $17::bytea[]
) AS u (w, i, src, sv, t, tm, idn, raw, it, prev, subj, dct, ds, d, d64, ext, h)
ON CONFLICT (workspace_id, content_hash) DO NOTHING
RETURNING workspace_id, content_hash, seq;

-- name: find_events_by_hash --
SELECT e.workspace_id, e.content_hash, e.seq
FROM unnest($1::text[], $2::bytea[]) AS k (w, h)
JOIN events e ON e.workspace_id = k.w AND e.content_hash = k.h;
