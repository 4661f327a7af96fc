-- name: insert_events --
-- $1: the batch as one JSON array of rows (events.py `_rows_json`), in the column order below.
INSERT INTO events (
    workspace_id, id, source, specversion, type, time, identity, identity_raw, identity_type,
    previous_identity, subject, datacontenttype, dataschema, data, data_base64, extensions, content_hash
)
SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, (r ->> 5)::timestamptz, r ->> 6, r ->> 7, r ->> 8, r ->> 9,
       r ->> 10, r ->> 11, r ->> 12, nullif(r -> 13, 'null'), r ->> 14, nullif(r -> 15, 'null'),
       decode(r ->> 16, 'hex')
FROM jsonb_array_elements($1::text::jsonb) AS r
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

-- name: owner_aliases --
-- Every alias of the person owning the identity spelled $2 (else $3): the aliases whose events a feed query
-- for that identity returns. Scalars, not an array, so the statement keeps one generic plan.
SELECT alias FROM aliases
WHERE workspace_id = $1 AND person_id = coalesce(
    (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = $2),
    (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = $3)
);
