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
