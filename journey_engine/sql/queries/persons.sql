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
