-- Stored values remember the template definition they were computed with (its updated_at), so a
-- computation that read a template just replaced cannot overwrite the values of the new definition.
ALTER TABLE profile_values ADD COLUMN template_version timestamptz NOT NULL DEFAULT '-infinity';

UPDATE profile_values v SET template_version = t.updated_at
FROM templates t WHERE t.workspace_id = v.workspace_id AND t.template_id = v.template_id;
