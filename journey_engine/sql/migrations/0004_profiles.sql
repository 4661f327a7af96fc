-- Profile view templates and the stored profile values of each person under each template.
CREATE TABLE templates (
    workspace_id  text NOT NULL REFERENCES workspaces (workspace_id) ON DELETE CASCADE,
    template_id   text NOT NULL CHECK (template_id ~ '^[0-9a-f]{24}$'),
    name          text NOT NULL,
    -- The validated template (JDS attribute shape), attributes in their order.
    spec          jsonb NOT NULL,
    -- The event types the attributes aggregate: which templates an event can change.
    event_types   text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text,
    PRIMARY KEY (workspace_id, template_id)
);

CREATE UNIQUE INDEX templates_name_key ON templates (workspace_id, name);

-- One row per (template, person): every attribute's value, exact until `next_change_at`, when an event
-- leaves (or a future-stamped one enters) a window; the sweeper recomputes rows once that time passes.
CREATE TABLE profile_values (
    workspace_id    text NOT NULL,
    template_id     text NOT NULL,
    person_id       text NOT NULL,
    vals            jsonb NOT NULL,
    computed_at     timestamptz NOT NULL,
    next_change_at  timestamptz,
    PRIMARY KEY (workspace_id, template_id, person_id),
    FOREIGN KEY (workspace_id, template_id) REFERENCES templates (workspace_id, template_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, person_id) REFERENCES persons (workspace_id, person_id) ON DELETE CASCADE
);

CREATE INDEX profile_values_due ON profile_values (next_change_at) WHERE next_change_at IS NOT NULL;
CREATE INDEX profile_values_person ON profile_values (workspace_id, person_id);

-- Every workspace starts with journey-default-template (new workspaces get it from the engine).
INSERT INTO templates (workspace_id, template_id, name, spec, event_types, created_by)
SELECT workspace_id, substr(md5(random()::text || clock_timestamp()::text || workspace_id), 1, 24),
       'journey-default-template', '{"name":"journey-default-template","attributes":[{"version":"0.1","event":"task:new","metaDataType":"string","metaData":"origin","limit":0,"displayName":"No of times contacted in the last 24 hours","lookBackDurationType":"hours","lookBackPeriod":24,"aggregationMode":"Count","verbose":false,"widgetAttributes":{"type":"table"},"rules":null},{"version":"0.1","event":"task:new","metaDataType":"string","metaData":"origin","limit":0,"displayName":"No of times contacted in the last 10 days","lookBackDurationType":"days","lookBackPeriod":10,"aggregationMode":"Count","verbose":false,"widgetAttributes":{"type":"table"},"rules":null}]}'::jsonb, ARRAY['task:new'], 'migration 0004'
FROM workspaces;
