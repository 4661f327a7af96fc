-- name: insert_template --
INSERT INTO templates (workspace_id, template_id, name, spec, event_types, created_by, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $6)
RETURNING template_id, name, spec, created_at, created_by, updated_at, updated_by;

-- name: update_template --
UPDATE templates SET name = $3, spec = $4, event_types = $5, updated_at = now(), updated_by = $6
WHERE workspace_id = $1 AND template_id = $2
RETURNING template_id, name, spec, created_at, created_by, updated_at, updated_by;

-- name: delete_template --
-- After lock_template_values, then clear_template_values, in one transaction.
DELETE FROM templates WHERE workspace_id = $1 AND template_id = $2 RETURNING template_id;

-- name: find_template --
-- By id, or by name (JDS flows put the name where an id is expected); the id wins.
SELECT template_id, name, spec, created_at, created_by, updated_at, updated_by FROM templates
WHERE workspace_id = $1 AND (template_id = $2 OR name = $2)
ORDER BY template_id = $2 DESC LIMIT 1;

-- name: find_template_by_name --
SELECT template_id, name, spec, created_at, created_by, updated_at, updated_by FROM templates
WHERE workspace_id = $1 AND name = $2;

-- name: list_templates --
SELECT template_id, name, spec, created_at, created_by, updated_at, updated_by FROM templates t
WHERE workspace_id = $1{where}
ORDER BY {order}
LIMIT {limit} OFFSET {offset};

-- name: templates_for_types --
-- The templates an event of these types can change (all of them when $2 is null), for writing their
-- values: each is held with a shared advisory lock (class 1001, key: a hash of workspace and template)
-- until the transaction ends, and deleting a template takes that lock exclusively (lock_template_values):
-- the delete waits for the writers holding it, and writers asking after it wait for the delete, then find
-- the template gone (templates_still_there). profile_values has no foreign key (migration 0009). Locks of
-- this kind are granted in the order asked; a row lock (FOR KEY SHARE) let each new batch overtake a
-- waiting delete, which under continuous ingest waited until the ingest stopped (57 s in a test).
SELECT template_id, name, spec::text AS spec, updated_at,
       pg_advisory_xact_lock_shared(1001, hashtext(workspace_id || '/' || template_id)) AS locked
FROM templates
WHERE workspace_id = $1 AND ($2::text[] IS NULL OR event_types && $2::text[])
ORDER BY template_id;

-- name: templates_still_there --
-- After templates_for_types: which of its templates still exist (a delete may have committed while it
-- waited for a lock; its rows came from the snapshot taken before).
SELECT template_id FROM templates WHERE workspace_id = $1 AND template_id = ANY($2::text[]);

-- name: lock_template_values --
-- Taken by a template delete before the row: see templates_for_types.
SELECT pg_advisory_xact_lock(1001, hashtext($1 || '/' || $2));

-- name: lock_profile_persons --
-- Profile computation of a person is serialised (against merges too): the reader of its events must
-- see every committed event, or two concurrent batches would each store a value missing the other's.
SELECT person_id, merged_into FROM persons
WHERE workspace_id = $1 AND person_id = ANY($2::text[])
ORDER BY person_id FOR NO KEY UPDATE;

-- name: lock_profile_persons_skip --
SELECT person_id FROM persons
WHERE workspace_id = $1 AND person_id = ANY($2::text[])
ORDER BY person_id FOR NO KEY UPDATE SKIP LOCKED;

-- name: delete_values_of_deleted_persons --
-- Values of persons that no longer exist (not written since 0009: a deleted person's values go with it).
DELETE FROM profile_values v
WHERE v.workspace_id = $1 AND v.person_id = ANY($2::text[])
  AND NOT EXISTS (SELECT FROM persons p WHERE p.workspace_id = $1 AND p.person_id = v.person_id);

-- name: lock_alias_owners --
-- The persons owning aliases $2, locked in order as by lock_profile_persons: {alias: person} as this
-- statement's snapshot has them. A merge that committed while a lock waited may have moved an alias
-- since; person_events reads the locked persons' aliases again under the locks. Alias by alias through
-- the key (OFFSET 0 keeps the subquery from being flattened into a join, see stored_values). One JSON
-- object, not a row per alias: asyncpg spends ~1.5 µs making each row. $2: an array literal
-- (sqlfiles.text_array).
SELECT json_object_agg(alias, person_id) FROM (
    SELECT o.alias, p.person_id
    FROM unnest($2::text::text[]) AS q (alias)
    CROSS JOIN LATERAL (
        SELECT alias, person_id FROM aliases WHERE workspace_id = $1 AND alias = q.alias OFFSET 0
    ) o
    JOIN persons p ON p.workspace_id = $1 AND p.person_id = o.person_id
    ORDER BY p.person_id
    FOR NO KEY UPDATE OF p
) locked;

-- name: person_events --
-- The aliases of persons $2 and, under each, its events of types $3 from $4 on (future-stamped
-- included), but those with a seq in $5 (the caller has them: hashed once, not searched row by row): one
-- JSON array of [person, alias, seq, type, time in microseconds since 1970, data], an alias without such
-- an event once, with nulls. The aliases say who owns them in this statement's snapshot: a caller that
-- holds the persons' locks learns the owners of its aliases without looking each one up. JSON, not a row
-- per event: asyncpg spends ~6 µs making a row of these columns (a jsonb value ~3.5, a timestamptz ~1),
-- the whole array ~1 µs an event read with orjson. extract(epoch) is exact (numeric) since PostgreSQL 14.
-- Each person's aliases by index (OFFSET 0 keeps the subquery from being flattened into a join): the
-- planner otherwise scans and filters every alias of a workspace with tens of thousands of them, three
-- times slower for a batch's 500 persons. $2, $5: array literals (sqlfiles.text_array, int_array).
SELECT json_agg(json_build_array(
    a.person_id, a.alias, e.seq, e.type, (extract(epoch FROM e.time) * 1000000)::bigint, e.data
))
FROM unnest($2::text::text[]) AS p (person_id)
CROSS JOIN LATERAL (
    SELECT alias, person_id FROM aliases WHERE workspace_id = $1 AND person_id = p.person_id OFFSET 0
) a
LEFT JOIN events e ON e.workspace_id = $1 AND e.identity = a.alias
    AND e.type = ANY($3::text[]) AND e.time >= $4 AND e.seq NOT IN (SELECT unnest($5::text::bigint[]));

-- name: stored_values --
-- Person by person through the primary key (OFFSET 0 keeps the subquery from being flattened into a
-- join), whatever the statistics say: a plan made while the table was nearly empty (a new template, a
-- fresh install) and kept as it grew scanned the whole table at every call, hashed or filtering on the
-- 500 persons (276 ms a call at 100,000 values, the decay benchmark's first computation at 1,700/s).
SELECT v.template_id, v.person_id, v.vals, v.computed_at, v.next_change_at, v.template_version
FROM unnest($2::text[]) AS p (person_id)
CROSS JOIN LATERAL (
    SELECT * FROM profile_values v
    WHERE v.workspace_id = $1 AND v.person_id = p.person_id AND v.template_id = ANY($3::text[])
    OFFSET 0
) v;

-- name: upsert_values --
-- $3, $4: the templates computed and their versions; then one row per element of $5..$9: which template
-- (its position in $3), person, values (json text), next change (microseconds since 1970; seconds and
-- microseconds apart, as an interval times a number is computed in floating point, exact below 2^53 µs,
-- the year 2255, and a future-stamped event can be later), and whether the person was created in this
-- transaction (it has no row yet: a plain insert is 20% cheaper). Columns, not one JSON document:
-- PostgreSQL parsed the document at 5 µs a row, more than the insert; integers, not timestamps: asyncpg
-- encodes a datetime in 0.7 µs; and each column as one text split here, not an array: asyncpg spends
-- 0.2-0.3 µs on each element of an array parameter (1.9 µs a row for these five, 0.6 joined), the split
-- 0.1 µs. Person ids are hex and the values JSON text, which holds no raw control character: U+001F
-- separates them; a next change of 'n' is null. A computation that used an older definition of the
-- template than the stored row's leaves it alone.
WITH r AS MATERIALIZED (
    SELECT ($3::text[])[t] AS template_id, person_id, vals,
           timestamptz 'epoch' + due / 1000000 * interval '1 second' + due % 1000000 * interval '1 microsecond'
               AS next_change_at,
           ($4::timestamptz[])[t] AS version, created
    FROM unnest(
        string_to_array($5, ',')::int[], string_to_array($6, ','), string_to_array($7, E'\x1f'),
        string_to_array($8, ',', 'n')::bigint[], string_to_array($9, ',')::boolean[]
    ) AS r (t, person_id, vals, due, created)
), created AS (
    INSERT INTO profile_values (workspace_id, template_id, person_id, vals, computed_at, next_change_at,
                                template_version)
    SELECT $1, template_id, person_id, vals::json, $2, next_change_at, version FROM r WHERE created
)
INSERT INTO profile_values (workspace_id, template_id, person_id, vals, computed_at, next_change_at,
                            template_version)
SELECT $1, template_id, person_id, vals::json, $2, next_change_at, version FROM r WHERE NOT created
ON CONFLICT (workspace_id, person_id, template_id) DO UPDATE
SET vals = excluded.vals, computed_at = excluded.computed_at, next_change_at = excluded.next_change_at,
    template_version = excluded.template_version
WHERE profile_values.template_version <= excluded.template_version;

-- name: delete_person_values --
DELETE FROM profile_values WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: due_values --
SELECT workspace_id, template_id, person_id FROM profile_values
WHERE next_change_at <= $1 ORDER BY next_change_at LIMIT $2;

-- name: mark_template_due --
-- After a template is created or changed: every person with an event of its types gets a row that is
-- due at once, so the sweeper computes it (values of the old definition are dropped first). The persons
-- are held FOR KEY SHARE, as every writer of values holds its persons: a delete of one waits, then
-- deletes the row written here (profile_values has no foreign key, see migration 0009).
INSERT INTO profile_values (workspace_id, template_id, person_id, vals, computed_at, next_change_at,
                            template_version)
SELECT $1, $2, p.person_id, '[]'::json, now(), now(), $4::timestamptz
FROM persons p
WHERE p.workspace_id = $1 AND p.merged_into IS NULL AND p.person_id IN (
    SELECT a.person_id
    FROM events e JOIN aliases a ON a.workspace_id = e.workspace_id AND a.alias = e.identity
    WHERE e.workspace_id = $1 AND e.type = ANY($3::text[])
)
FOR KEY SHARE OF p
ON CONFLICT (workspace_id, person_id, template_id) DO UPDATE
SET vals = '[]'::json, next_change_at = now(), template_version = excluded.template_version;

-- name: clear_template_values --
-- The primary key leads with the person: this scans the workspace's values (a template edit or delete).
DELETE FROM profile_values WHERE workspace_id = $1 AND template_id = $2;

-- name: clear_values_of_templates --
-- Values whose template is gone (the sweeper found them due): dropped, or they would stay due forever.
DELETE FROM profile_values WHERE workspace_id = $1 AND template_id = ANY($2::text[]);
