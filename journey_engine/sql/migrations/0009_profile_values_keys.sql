-- Profile values are written for every event a template counts, so each index and each foreign-key
-- check on them costs at every event (an insert cost 33 µs of PostgreSQL with them, 17 without):
-- - the primary key leads with the person, so it also serves what the person index did (a person's
--   values, their deletion); only dropping every value of one template (rare) scans the workspace;
-- - no foreign keys: each was a per-row query at every insert. Values are written only under locks that
--   keep their template and person (`templates_for_types` holds each template with a shared advisory
--   lock, which a template delete takes exclusively; persons are locked FOR NO KEY UPDATE before their
--   values are computed, FOR KEY SHARE by `mark_template_due`), and deleting a template or a person
--   deletes their values after the row (profiles/catalog.py, journey_engine/person_changes.py); no
--   cascade reaches them, so a workspace delete must delete them;
-- - fillfactor 80: a recomputation that leaves `next_change_at` as it was is a HOT update then (no index
--   entry), which needs room on the row's page.
ALTER TABLE profile_values
    DROP CONSTRAINT profile_values_workspace_id_template_id_fkey,
    DROP CONSTRAINT profile_values_workspace_id_person_id_fkey,
    DROP CONSTRAINT profile_values_pkey,
    ADD PRIMARY KEY (workspace_id, person_id, template_id);
DROP INDEX profile_values_person;
ALTER TABLE profile_values SET (fillfactor = 80);
