-- name: active_actions --
-- With the state of each trigger that has one (paused, or disabled by a 410 Gone).
SELECT a.action_id, a.template_id, a.spec, a.updated_at, coalesce(t.indexes, '{}') AS trigger_indexes,
       coalesce(t.paused, '{}') AS trigger_paused, coalesce(t.disabled, '{}') AS trigger_disabled
FROM actions a
LEFT JOIN LATERAL (
    SELECT array_agg(trigger_index) AS indexes, array_agg(paused) AS paused,
           array_agg(disabled_reason IS NOT NULL) AS disabled
    FROM action_triggers t WHERE t.workspace_id = a.workspace_id AND t.action_id = a.action_id
) t ON true
WHERE a.workspace_id = $1 AND a.template_id = ANY($2::text[]) AND a.is_active
ORDER BY a.action_id;

-- name: trigger_states --
SELECT action_id, trigger_index, paused, disabled_reason FROM action_triggers
WHERE workspace_id = $1 AND action_id = ANY($2::text[]);

-- name: last_firings --
SELECT f.action_id, f.person_id, max(f.fired_at) AS fired_at
FROM unnest($2::text[], $3::text[]) AS k (a, p)
JOIN firings f ON f.workspace_id = $1 AND f.action_id = k.a AND f.person_id = k.p
GROUP BY f.action_id, f.person_id;

-- name: insert_firings --
-- One row per (action, person): the caller maps the returned ids back by that pair.
INSERT INTO firings (workspace_id, action_id, person_id, template_id, fired_at, cooldown_minutes, cause, cause_event)
SELECT $1, a, p, t, $2, c, $3, e
FROM unnest($4::text[], $5::text[], $6::text[], $7::int[], $8::bigint[]) WITH ORDINALITY AS u (a, p, t, c, e, n)
ORDER BY n
RETURNING action_id, person_id, firing_id;

-- name: insert_deliveries --
-- The outbox rows of a batch's firings; wakes the delivery workers when a row was written.
WITH inserted AS (
    INSERT INTO deliveries (workspace_id, delivery_id, firing_id, action_id, trigger_index, person_id, method,
                            url, body, status, next_attempt_at)
    SELECT $1, d, f, a, i, p, m, u, b, s, $2
    FROM unnest($3::text[], $4::bigint[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::text[]) AS x (d, f, a, i, p, m, u, b, s)
    RETURNING 1
)
SELECT pg_notify('journey_deliveries_v1', '') FROM (SELECT 1 FROM inserted LIMIT 1) AS any_row;

-- name: notify_deliveries --
SELECT pg_notify('journey_deliveries_v1', $1);

-- name: render_aliases --
SELECT person_id, alias_type, alias FROM aliases
WHERE workspace_id = $1 AND person_id = ANY($2::text[]) ORDER BY created_at, alias;

-- name: render_events --
SELECT seq, id, type, source, time, identity_raw, data FROM events WHERE workspace_id = $1 AND seq = ANY($2::bigint[]);

-- name: insert_action --
INSERT INTO actions (workspace_id, action_id, template_id, name, is_active, spec, secrets, created_by, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
RETURNING action_id, template_id, name, is_active, spec, secrets, created_at, created_by, updated_at, updated_by;

-- name: update_action --
UPDATE actions SET name = $4, is_active = $5, spec = $6, updated_at = now(), updated_by = $7
WHERE workspace_id = $1 AND template_id = $2 AND action_id = $3
RETURNING action_id, template_id, name, is_active, spec, secrets, created_at, created_by, updated_at, updated_by;

-- name: delete_action --
DELETE FROM actions WHERE workspace_id = $1 AND template_id = $2 AND action_id = $3 RETURNING action_id;

-- name: get_action --
SELECT action_id, template_id, name, is_active, spec, secrets, created_at, created_by, updated_at, updated_by
FROM actions WHERE workspace_id = $1 AND action_id = $2;

-- name: get_action_by_name --
SELECT action_id, template_id, name, is_active, spec, secrets, created_at, created_by, updated_at, updated_by
FROM actions WHERE workspace_id = $1 AND template_id = $2 AND name = $3;

-- name: list_actions --
SELECT action_id, template_id, name, is_active, spec, secrets, created_at, created_by, updated_at, updated_by
FROM actions WHERE workspace_id = $1 AND ($2::text IS NULL OR template_id = $2)
ORDER BY created_at, action_id;

-- name: rotate_secret --
-- A new secret signs from now on; the previous one keeps signing too until the next rotation, so
-- receivers can switch over without a gap.
UPDATE actions SET secrets = ARRAY[$3::text, secrets[1]], updated_at = now()
WHERE workspace_id = $1 AND action_id = $2
RETURNING secrets;

-- name: set_trigger_paused --
INSERT INTO action_triggers (workspace_id, action_id, trigger_index, paused) VALUES ($1, $2, $3, $4)
ON CONFLICT (workspace_id, action_id, trigger_index) DO UPDATE SET paused = excluded.paused;

-- name: pause_pending --
UPDATE deliveries SET status = 'paused'
WHERE workspace_id = $1 AND action_id = $2 AND trigger_index = $3 AND status = 'pending';

-- name: resume_paused --
UPDATE deliveries SET status = 'pending', next_attempt_at = now()
WHERE workspace_id = $1 AND action_id = $2 AND trigger_index = $3 AND status = 'paused';

-- name: reset_trigger_states --
-- Pause and 410 state belongs to a trigger's destination: a PUT that changes the destination at an index
-- (or removes the trigger) drops the state kept for that index.
DELETE FROM action_triggers WHERE workspace_id = $1 AND action_id = $2 AND trigger_index = ANY($3::int[]);
