-- name: insert_history_token --
INSERT INTO history_tokens (workspace_id, token_id, secret_sha256, name) VALUES ($1, $2, $3, $4)
RETURNING token_id, name, created_at, revoked_at;

-- name: get_history_token --
SELECT workspace_id, secret_sha256 FROM history_tokens WHERE token_id = $1 AND revoked_at IS NULL;

-- name: list_history_tokens --
SELECT token_id, name, created_at, revoked_at FROM history_tokens WHERE workspace_id = $1
ORDER BY created_at, token_id;

-- name: revoke_history_token --
UPDATE history_tokens SET revoked_at = now()
WHERE token_id = $1 AND ($2::text IS NULL OR workspace_id = $2) AND revoked_at IS NULL
RETURNING workspace_id, token_id;

-- name: history_parent --
-- A history entry by id (its seq) in one workspace: its level, and the persons owning its alias and
-- the alias ($4) a child is posted under.
SELECT e.data ->> 'level' AS level, pa.person_id AS parent_person, ua.person_id AS user_person
FROM events e
LEFT JOIN aliases pa ON pa.workspace_id = e.workspace_id AND pa.alias = e.identity
LEFT JOIN aliases ua ON ua.workspace_id = e.workspace_id AND ua.alias = $4
WHERE e.workspace_id = $1 AND e.seq = $2 AND e.dataschema = $3;

-- name: history_entries --
-- The newest $4 history entries ($3: their dataschema) of some aliases.
SELECT e.seq, e.source, e.time, e.identity_raw, e.data
FROM events e
WHERE e.workspace_id = $1 AND e.identity = ANY($2::text[]) AND e.dataschema = $3
ORDER BY e.time DESC, e.seq DESC
LIMIT $4;

-- name: lock_history_aliases --
-- A person's aliases, locked in order (as ingest takes them) so no merge moves one while its
-- history is erased.
SELECT alias FROM aliases WHERE workspace_id = $1 AND person_id = $2 ORDER BY alias FOR UPDATE;

-- name: erase_history_entries --
DELETE FROM events WHERE workspace_id = $1 AND identity = ANY($2::text[]) AND dataschema = $3;
