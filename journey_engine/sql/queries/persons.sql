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

-- name: claim_event_aliases --
-- An ingest batch's aliases in one statement: each new one is claimed (in sorted order, as in
-- claim_aliases) for the person id offered with it, that person is created and its creation logged with
-- the event $5 that brought the alias. Returns the claimed aliases; the others were there already (or
-- another transaction claimed them meanwhile). Array literals (sqlfiles.text_array, int_array).
WITH offered AS (
    SELECT * FROM unnest(
        $1::text::text[], $2::text::text[], $3::text::text[], $4::text::text[], $5::text::bigint[]
    ) AS u (w, a, t, p, e)
), claimed AS (
    INSERT INTO aliases (workspace_id, alias, alias_type, person_id)
    SELECT w, a, t, p FROM offered ORDER BY w, a
    ON CONFLICT (workspace_id, alias) DO NOTHING
    RETURNING workspace_id, alias, person_id
), created AS (
    INSERT INTO persons (workspace_id, person_id) SELECT workspace_id, person_id FROM claimed
), logged AS (
    INSERT INTO identity_changes (workspace_id, person_id, kind, aliases, by_event)
    SELECT c.workspace_id, c.person_id, 'created', ARRAY[c.alias], o.e
    FROM claimed c JOIN offered o ON o.w = c.workspace_id AND o.a = c.alias
)
SELECT workspace_id, alias, person_id FROM claimed;

-- name: aliases_used_before --
-- Which of the aliases this transaction just claimed had events stored under them before the $3 this
-- batch stored (an alias whose person was deleted keeps its events). A statement of its own, after the
-- claim: the claim's snapshot predates the commits it may have waited for (a person delete, and the
-- events stored under the alias before that delete could go ahead). Array literals (sqlfiles.text_array).
SELECT u.w AS workspace_id, u.a AS alias
FROM unnest($1::text::text[], $2::text::text[], $3::text::int[]) AS u (w, a, n)
WHERE EXISTS (SELECT FROM events e WHERE e.workspace_id = u.w AND e.identity = u.a OFFSET u.n);

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

-- name: owners_of_aliases --
SELECT alias, person_id FROM aliases WHERE workspace_id = $1 AND alias = ANY($2::text[]);

-- name: persons_with_aliases --
-- Persons by id, in the order asked, each with its aliases oldest first (then by alias).
SELECT p.person_id, p.first_name, p.last_name, p.created_at, p.updated_at,
       coalesce(a.aliases, '{}') AS aliases, coalesce(a.types, '{}') AS types, coalesce(a.since, '{}') AS since
FROM unnest($2::text[]) WITH ORDINALITY AS w (person_id, n)
JOIN persons p ON p.workspace_id = $1 AND p.person_id = w.person_id
LEFT JOIN LATERAL (
    SELECT array_agg(x.alias ORDER BY x.created_at, x.alias) AS aliases,
           array_agg(x.alias_type ORDER BY x.created_at, x.alias) AS types,
           array_agg(x.created_at ORDER BY x.created_at, x.alias) AS since
    FROM aliases x WHERE x.workspace_id = $1 AND x.person_id = p.person_id
) a ON true
ORDER BY w.n;

-- name: persons_by_aliases --
-- The persons owning asked aliases, in the order asked, each with its aliases (as persons_with_aliases).
-- $2 holds every spelling of every asked alias (best first), $3 the number of the asked alias each
-- spelling belongs to; the first stored spelling of an asked alias counts.
WITH found AS (
    SELECT DISTINCT ON (s.n) s.n, a.person_id
    FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS s (alias, n, k)
    JOIN aliases a ON a.workspace_id = $1 AND a.alias = s.alias
    ORDER BY s.n, s.k
), owners AS (
    SELECT person_id, min(n) AS n FROM found GROUP BY person_id
)
SELECT p.person_id, p.first_name, p.last_name, p.created_at, p.updated_at,
       coalesce(a.aliases, '{}') AS aliases, coalesce(a.types, '{}') AS types, coalesce(a.since, '{}') AS since
FROM owners o
JOIN persons p ON p.workspace_id = $1 AND p.person_id = o.person_id
LEFT JOIN LATERAL (
    SELECT array_agg(x.alias ORDER BY x.created_at, x.alias) AS aliases,
           array_agg(x.alias_type ORDER BY x.created_at, x.alias) AS types,
           array_agg(x.created_at ORDER BY x.created_at, x.alias) AS since
    FROM aliases x WHERE x.workspace_id = $1 AND x.person_id = p.person_id
) a ON true
ORDER BY o.n;

-- name: list_persons --
-- One page of live persons, assembled by persons.py: the WHERE conditions come from the RSQL compiler,
-- the ORDER BY from a fixed list of columns, LIMIT and OFFSET are parameters; $1 is the workspace.
SELECT p.person_id FROM persons p
WHERE p.workspace_id = $1 AND p.merged_into IS NULL{where}
ORDER BY {order}
LIMIT {limit} OFFSET {offset};

-- name: current_persons --
-- Each known id with the person that holds its aliases now (itself, or the one it was merged into).
SELECT person_id, coalesce(merged_into, person_id) AS current_id
FROM persons WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: merged_persons --
-- The retired ids that resolve to a person (every person merged into it, directly or not).
SELECT person_id FROM persons WHERE workspace_id = $1 AND merged_into = $2 ORDER BY person_id;

-- name: lock_person_aliases --
-- Taken before lock_persons, as ingest takes alias rows before person rows; sorted, so writers queue.
SELECT alias FROM aliases WHERE workspace_id = $1 AND person_id = ANY($2::text[]) ORDER BY alias FOR UPDATE;

-- name: aliases_with_events --
SELECT DISTINCT identity AS alias FROM events WHERE workspace_id = $1 AND identity = ANY($2::text[]);

-- name: delete_aliases --
DELETE FROM aliases WHERE workspace_id = $1 AND person_id = $2 AND alias = ANY($3::text[]) RETURNING alias;

-- name: delete_person --
-- A person, the ids merged into it, and (by cascade) its aliases.
DELETE FROM persons WHERE workspace_id = $1 AND (person_id = $2 OR merged_into = $2);

-- name: rename_person --
-- $3/$5 say whether to set first_name/last_name to $4/$6.
UPDATE persons SET first_name = CASE WHEN $3 THEN $4 ELSE first_name END,
                   last_name = CASE WHEN $5 THEN $6 ELSE last_name END, updated_at = now()
WHERE workspace_id = $1 AND person_id = $2;

-- name: touch_persons --
UPDATE persons SET updated_at = now() WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: persons_without_aliases --
SELECT p.person_id FROM persons p
WHERE p.workspace_id = $1 AND p.person_id = ANY($2::text[]) AND p.merged_into IS NULL
  AND NOT EXISTS (SELECT FROM aliases a WHERE a.workspace_id = p.workspace_id AND a.person_id = p.person_id);

-- name: alias_events --
-- Every event of some aliases, oldest first, with the columns of feed_events.
SELECT e.seq, e.received_at, e.id, e.source, e.specversion, e.type, e.time, e.identity_raw,
       e.identity_type, e.previous_identity, e.subject, e.datacontenttype, e.dataschema, e.data,
       e.data_base64, e.extensions
FROM events e WHERE e.workspace_id = $1 AND e.identity = ANY($2::text[])
ORDER BY e.time, e.seq;

-- name: erase_events --
DELETE FROM events WHERE workspace_id = $1 AND identity = ANY($2::text[]) RETURNING identity_raw;

-- name: forget_previous_identity --
-- Other events that name an erased alias as their previousidentity (stripped, case-folded, or a phone
-- number's digits with '+'; $2 holds the aliases and the spellings they were sent in): forget it.
-- Reads the workspace's events that have a previousidentity: erasure is rare.
UPDATE events SET previous_identity = NULL
WHERE workspace_id = $1 AND previous_identity IS NOT NULL
  AND (btrim(previous_identity) = ANY($2::text[]) OR lower(btrim(previous_identity)) = ANY($2::text[])
       OR '+' || regexp_replace(previous_identity, '[^0-9]', '', 'g') = ANY($2::text[]));

-- name: erase_identity_changes --
-- The changes of the erased persons; other persons' changes lose the erased aliases and the erased events.
WITH gone AS (
    DELETE FROM identity_changes
    WHERE workspace_id = $1 AND (person_id = ANY($2::text[]) OR other_person_id = ANY($2::text[]))
    RETURNING 1
), scrubbed AS (
    UPDATE identity_changes c
    SET aliases = ARRAY(SELECT a FROM unnest(c.aliases) AS a WHERE a <> ALL($3::text[])),
        by_event = CASE WHEN c.by_event IN (
            SELECT e.seq FROM events e WHERE e.workspace_id = $1 AND e.identity = ANY($3::text[])
        ) THEN NULL ELSE c.by_event END
    WHERE c.workspace_id = $1 AND c.person_id <> ALL($2::text[])
      AND (c.other_person_id IS NULL OR c.other_person_id <> ALL($2::text[]))
      AND (c.aliases && $3::text[] OR c.by_event IN (
            SELECT e.seq FROM events e WHERE e.workspace_id = $1 AND e.identity = ANY($3::text[])))
)
SELECT count(*) FROM gone;

-- name: erase_aliases --
-- The aliases of the locked persons $2 only: a subject with no person had no alias rows when it was
-- found, and one there now belongs to a person claimed since, which the erase did not lock.
DELETE FROM aliases WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: erase_persons --
DELETE FROM persons WHERE workspace_id = $1 AND (person_id = ANY($2::text[]) OR merged_into = ANY($2::text[]));

-- name: lock_owners_aliases --
-- Every alias of the persons owning any of $2, sorted and locked: what a change of those persons may move.
SELECT alias FROM aliases
WHERE workspace_id = $1
  AND person_id IN (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = ANY($2::text[]))
ORDER BY alias FOR UPDATE;

-- name: count_person_aliases --
SELECT count(*) FROM aliases WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: person_by_alias --
-- persons_by_aliases for one asked alias ($2, else its other spelling $3): the hot path of a flow looking
-- up its caller. Scalar parameters let PostgreSQL keep one generic plan instead of planning every call.
WITH found AS (
    (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = $2)
    UNION ALL
    (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = $3)
    LIMIT 1
)
SELECT p.person_id, p.first_name, p.last_name, p.created_at, p.updated_at,
       coalesce(a.aliases, '{}') AS aliases, coalesce(a.types, '{}') AS types, coalesce(a.since, '{}') AS since
FROM found f
JOIN persons p ON p.workspace_id = $1 AND p.person_id = f.person_id
LEFT JOIN LATERAL (
    SELECT array_agg(x.alias ORDER BY x.created_at, x.alias) AS aliases,
           array_agg(x.alias_type ORDER BY x.created_at, x.alias) AS types,
           array_agg(x.created_at ORDER BY x.created_at, x.alias) AS since
    FROM aliases x WHERE x.workspace_id = $1 AND x.person_id = p.person_id
) a ON true;
