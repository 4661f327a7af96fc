-- name: profile_view --
-- A profile view in one statement (one snapshot, one round trip). The template: $2 as an id or a name,
-- only as a name when $3. The person: the person id $4 followed through merges, else the owner of the
-- identity spelled $5, else spelled $6 (scalars, not an array: the statement keeps one generic plan).
-- Its stored values under the template, and its newest $7 firings of the template's actions. The spec as
-- text: store.parse_template decodes it only for a version it has not validated yet.
-- One row always: a null template_id or person_id says which is unknown.
WITH t AS (
    SELECT template_id, name, spec::text AS spec, created_at, created_by, updated_at, updated_by
    FROM templates
    WHERE workspace_id = $1 AND (name = $2 OR (NOT $3::boolean AND template_id = $2))
    ORDER BY template_id = $2 DESC LIMIT 1
), p AS (
    SELECT coalesce(
        (SELECT coalesce(merged_into, person_id) FROM persons WHERE workspace_id = $1 AND person_id = $4),
        (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = $5),
        (SELECT person_id FROM aliases WHERE workspace_id = $1 AND alias = $6)
    ) AS person_id
)
SELECT t.template_id, t.name, t.spec, t.created_at, t.created_by, t.updated_at, t.updated_by, p.person_id,
       v.vals, v.computed_at, v.next_change_at, v.template_version,
       f.action_ids, f.fired_at, f.cooldowns
FROM p
LEFT JOIN t ON true
LEFT JOIN profile_values v
    ON v.workspace_id = $1 AND v.template_id = t.template_id AND v.person_id = p.person_id
LEFT JOIN LATERAL (
    SELECT array_agg(action_id ORDER BY fired_at DESC) AS action_ids,
           array_agg(fired_at ORDER BY fired_at DESC) AS fired_at,
           array_agg(cooldown_minutes ORDER BY fired_at DESC) AS cooldowns
    FROM (
        SELECT action_id, fired_at, cooldown_minutes FROM firings
        WHERE workspace_id = $1 AND person_id = p.person_id AND template_id = t.template_id
        ORDER BY fired_at DESC LIMIT $7
    ) newest
) f ON $7 > 0;
