-- name: claim_deliveries --
-- Due deliveries, and ones whose worker died mid-attempt (its lease ran out), for one worker each, with
-- what is read at send time (so rotated secrets, changed credentials and pauses apply to retries): the
-- action's secrets, the trigger's attributes (null: the action or the trigger was deleted), its state.
UPDATE deliveries d SET status = 'delivering', next_attempt_at = $2
FROM (
    SELECT workspace_id, delivery_id, action_id, trigger_index FROM deliveries
    WHERE status IN ('pending', 'delivering') AND next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT $3
    FOR UPDATE SKIP LOCKED
) due
LEFT JOIN actions a ON a.workspace_id = due.workspace_id AND a.action_id = due.action_id
LEFT JOIN action_triggers t
    ON t.workspace_id = due.workspace_id AND t.action_id = due.action_id AND t.trigger_index = due.trigger_index
WHERE d.workspace_id = due.workspace_id AND d.delivery_id = due.delivery_id
RETURNING d.workspace_id, d.delivery_id, d.action_id, d.trigger_index, d.method, d.url, d.body, d.attempts,
          d.retry_base, a.secrets, a.spec -> 'actionTriggers' -> d.trigger_index -> 'attributes' AS attributes,
          t.paused, t.disabled_reason;

-- name: finish_attempt --
-- An attempt's outcome in one statement: its record (unless $8, a paused delivery that was not tried),
-- the trigger disabled when $9 names why (410 Gone), the delivery's new state.
WITH recorded AS (
    INSERT INTO delivery_attempts (workspace_id, delivery_id, attempt, started_at, status_code, latency_ms, error)
    SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT $8::boolean
), disabled AS (
    INSERT INTO action_triggers (workspace_id, action_id, trigger_index, disabled_reason)
    SELECT $1, $10, $11, $9::text WHERE $9::text IS NOT NULL
    ON CONFLICT (workspace_id, action_id, trigger_index) DO UPDATE SET disabled_reason = excluded.disabled_reason
)
UPDATE deliveries SET status = $12, attempts = $13, next_attempt_at = $14, last_error = $7,
       finished_at = CASE WHEN $12 IN ('delivered', 'dead') THEN now() END
WHERE workspace_id = $1 AND delivery_id = $2 AND status = 'delivering';

-- name: next_due_delivery --
SELECT min(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'delivering');

-- name: list_deliveries --
-- An action's deliveries, newest first; $4/$5: the (created_at, delivery_id) of the last one already shown.
SELECT delivery_id, firing_id, person_id, trigger_index, method, url, status, attempts, next_attempt_at,
       created_at, finished_at, last_error
FROM deliveries
WHERE workspace_id = $1 AND action_id = $2 AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, delivery_id) < ($4, $5::text))
ORDER BY created_at DESC, delivery_id DESC
LIMIT $6;

-- name: delivery_attempts --
SELECT delivery_id, attempt, started_at, status_code, latency_ms, error FROM delivery_attempts
WHERE workspace_id = $1 AND delivery_id = ANY($2::text[])
ORDER BY delivery_id, attempt;

-- name: delivery_status --
SELECT status FROM deliveries WHERE workspace_id = $1 AND action_id = $2 AND delivery_id = $3;

-- name: redeliver --
-- A finished delivery is due again at once, under the same delivery (webhook) id, with a fresh retry
-- schedule; the attempt log goes on counting.
UPDATE deliveries SET status = 'pending', next_attempt_at = now(), finished_at = NULL, retry_base = attempts
WHERE workspace_id = $1 AND action_id = $2 AND delivery_id = $3 AND status IN ('dead', 'delivered')
RETURNING delivery_id;

-- name: redeliver_dead --
WITH due AS (
    UPDATE deliveries SET status = 'pending', next_attempt_at = now(), finished_at = NULL, retry_base = attempts
    WHERE workspace_id = $1 AND action_id = $2 AND status = 'dead'
    RETURNING 1
)
SELECT count(*) FROM due;

-- name: enable_trigger --
UPDATE action_triggers SET disabled_reason = NULL
WHERE workspace_id = $1 AND action_id = $2 AND trigger_index = $3;
