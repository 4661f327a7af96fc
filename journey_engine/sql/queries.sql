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

-- name: feed_events --
-- The event feed, assembled by feed.py: the WHERE conditions come from fixed SQL and the RSQL compiler,
-- the ORDER BY from a fixed list of columns, LIMIT and OFFSET are parameters; $1 is the workspace.
SELECT e.seq, e.received_at, e.id, e.source, e.specversion, e.type, e.time, e.identity_raw,
       e.identity_type, e.previous_identity, e.subject, e.datacontenttype, e.dataschema, e.data,
       e.data_base64, e.extensions
FROM events e
WHERE e.workspace_id = $1{where}
ORDER BY {order}
LIMIT {limit} OFFSET {offset};

-- name: claim_aliases --
-- New aliases take the person id offered for them; an alias that exists keeps its person. Sorted, so
-- concurrent batches wait on one another in one order instead of deadlocking.
INSERT INTO aliases (workspace_id, alias, alias_type, person_id)
SELECT w, a, t, p FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u (w, a, t, p)
ORDER BY w, a
ON CONFLICT (workspace_id, alias) DO NOTHING
RETURNING workspace_id, alias, person_id;

-- name: insert_persons --
INSERT INTO persons (workspace_id, person_id, first_name, last_name)
SELECT w, p, f, l FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u (w, p, f, l);

-- name: log_created_persons --
INSERT INTO identity_changes (workspace_id, person_id, kind, aliases, by_key, by_event)
SELECT w, p, 'created', ARRAY[a], $5, e FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u (w, p, a, e);

-- name: log_identity_change --
INSERT INTO identity_changes (workspace_id, person_id, other_person_id, kind, aliases, by_key, by_event)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: aliases_owned --
SELECT alias, alias_type, person_id FROM aliases WHERE workspace_id = $1 AND alias = ANY($2::text[])
ORDER BY alias FOR UPDATE;

-- name: lock_persons --
SELECT person_id, first_name, last_name FROM persons
WHERE workspace_id = $1 AND person_id = ANY($2::text[]) AND merged_into IS NULL
ORDER BY person_id FOR UPDATE;

-- name: move_aliases --
UPDATE aliases SET person_id = $3 WHERE workspace_id = $1 AND person_id = $2 RETURNING alias;

-- name: retire_person --
-- The merged person keeps its row so its id still resolves, pointing at the survivor; so do the
-- persons merged into it before.
UPDATE persons SET merged_into = $3, updated_at = now()
WHERE workspace_id = $1 AND (person_id = $2 OR merged_into = $2);

-- name: fill_names --
UPDATE persons SET first_name = coalesce(first_name, $3), last_name = coalesce(last_name, $4), updated_at = now()
WHERE workspace_id = $1 AND person_id = $2;

-- name: split_aliases --
UPDATE aliases SET person_id = $3 WHERE workspace_id = $1 AND alias = ANY($2::text[]) RETURNING alias;

-- name: person_aliases --
SELECT alias, alias_type, created_at FROM aliases WHERE workspace_id = $1 AND person_id = $2 ORDER BY created_at, alias;

-- name: alias_person --
SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = ANY($2::text[]) ORDER BY array_position($2::text[], alias) LIMIT 1;

-- name: current_person --
-- A person id, following merges to the person that holds its aliases now.
SELECT coalesce(merged_into, person_id) AS person_id FROM persons WHERE workspace_id = $1 AND person_id = $2;

-- name: identity_changes --
SELECT change_id, person_id, other_person_id, kind, aliases, by_key, by_event, at FROM identity_changes
WHERE workspace_id = $1 AND (person_id = ANY($2::text[]) OR other_person_id = ANY($2::text[]))
ORDER BY change_id;
