-- name: export_profile_values --
SELECT t.name, t.template_id, t.spec, t.updated_at, v.vals, v.computed_at, v.next_change_at,
       v.template_version
FROM profile_values v JOIN templates t ON t.workspace_id = v.workspace_id AND t.template_id = v.template_id
WHERE v.workspace_id = $1 AND v.person_id = ANY($2::text[])
ORDER BY t.name;

-- name: erase_profile_values --
DELETE FROM profile_values WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: export_firings --
SELECT firing_id, action_id, template_id, fired_at, cooldown_minutes, cause, cause_event FROM firings
WHERE workspace_id = $1 AND person_id = ANY($2::text[])
ORDER BY firing_id;

-- name: erase_firings --
DELETE FROM firings WHERE workspace_id = $1 AND person_id = ANY($2::text[]);

-- name: export_deliveries --
SELECT d.delivery_id, d.firing_id, d.action_id, d.trigger_index, d.method, d.url, d.body, d.status, d.attempts,
       d.created_at, d.finished_at, d.last_error,
       coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'startedAt', a.started_at,
                                                     'statusCode', a.status_code, 'latencyMs', a.latency_ms,
                                                     'error', a.error) ORDER BY a.attempt)
                 FROM delivery_attempts a
                 WHERE a.workspace_id = d.workspace_id AND a.delivery_id = d.delivery_id), '[]') AS attempts_log
FROM deliveries d
WHERE d.workspace_id = $1 AND d.person_id = ANY($2::text[])
ORDER BY d.created_at, d.delivery_id;

-- name: erase_deliveries --
-- Their attempts go with them (ON DELETE CASCADE).
DELETE FROM deliveries WHERE workspace_id = $1 AND person_id = ANY($2::text[]);
