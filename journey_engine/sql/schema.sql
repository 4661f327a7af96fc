-- The whole schema of a fresh database. Keep it equal to the migrations applied in order:
-- tests/integration/test_schema.py builds one database each way and compares them.

CREATE TABLE schema_version (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    workspace_id  text PRIMARY KEY CHECK (workspace_id ~ '^[0-9a-f]{24}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX workspaces_name_key ON workspaces (name);

-- A key's token is `je_<key_id>_<secret>`; only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    workspace_id  text NOT NULL REFERENCES workspaces (workspace_id) ON DELETE CASCADE,
    key_id        text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
    secret_sha256 bytea NOT NULL,
    name          text NOT NULL DEFAULT '',
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    PRIMARY KEY (workspace_id, key_id)
);

CREATE UNIQUE INDEX api_keys_key_id_key ON api_keys (key_id);

-- Events: every accepted CloudEvent, stored once.
CREATE TABLE events (
    workspace_id      text NOT NULL REFERENCES workspaces (workspace_id) ON DELETE CASCADE,
    seq               bigint GENERATED ALWAYS AS IDENTITY,
    id                text NOT NULL,
    source            text NOT NULL,
    specversion       text NOT NULL,
    type              text NOT NULL,
    time              timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    identity          text NOT NULL,
    identity_raw      text NOT NULL,
    identity_type     text NOT NULL,
    previous_identity text,
    subject           text,
    datacontenttype   text,
    dataschema        text,
    data              jsonb,
    data_base64       text,
    extensions        jsonb,
    content_hash      bytea NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);

-- Deduplication: an event whose every member equals a stored one (same source, id, time, data...) is a
-- retry and is stored once; events that merely share an id are distinct and all kept.
CREATE UNIQUE INDEX events_content_key ON events (workspace_id, content_hash);
-- The feed of one identity, newest first; and of a whole workspace.
CREATE INDEX events_identity_time ON events (workspace_id, identity, time DESC, seq DESC);
CREATE INDEX events_time ON events (workspace_id, time DESC, seq DESC);

-- Persons and their aliases. Events stay keyed by the alias they were sent under, so a merge or an
-- unmerge moves aliases between persons and every event follows its alias without being rewritten.
CREATE TABLE persons (
    workspace_id  text NOT NULL REFERENCES workspaces (workspace_id) ON DELETE CASCADE,
    person_id     text NOT NULL CHECK (person_id ~ '^[0-9a-f]{24}$'),
    first_name    text,
    last_name     text,
    -- Set when this person was merged into another; the row stays so the old id still resolves.
    merged_into   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, person_id)
);

CREATE INDEX persons_merged_into ON persons (workspace_id, merged_into) WHERE merged_into IS NOT NULL;

-- An alias belongs to at most one person in a workspace.
CREATE TABLE aliases (
    workspace_id  text NOT NULL,
    alias         text NOT NULL,
    alias_type    text NOT NULL,
    person_id     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, alias),
    FOREIGN KEY (workspace_id, person_id) REFERENCES persons (workspace_id, person_id)
        ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX aliases_person ON aliases (workspace_id, person_id);

-- Every change to who owns which alias: creations, links, merges, unmerges, alias edits.
CREATE TABLE identity_changes (
    workspace_id     text NOT NULL REFERENCES workspaces (workspace_id) ON DELETE CASCADE,
    change_id        bigint GENERATED ALWAYS AS IDENTITY,
    person_id        text NOT NULL,
    other_person_id  text,
    kind             text NOT NULL CHECK (kind IN (
        'created', 'linked', 'merged', 'unmerged', 'alias_added', 'alias_removed', 'renamed'
    )),
    aliases          text[] NOT NULL DEFAULT '{}',
    by_key           text,
    by_event         bigint,
    at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, change_id)
);

CREATE INDEX identity_changes_person ON identity_changes (workspace_id, person_id, change_id);
CREATE INDEX identity_changes_other ON identity_changes (workspace_id, other_person_id, change_id)
    WHERE other_person_id IS NOT NULL;

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
-- `vals`: per attribute `[value, events, error]` (plus the events' seqs when verbose), as json, not jsonb:
-- nothing reads into it in SQL, and parsing jsonb cost more than the insert (0010).
-- Written at every event a template counts, so it has no foreign keys (a query per inserted row): the
-- writers hold locks on the template and the person, and deleting either deletes its values (0009); no
-- cascade reaches them, so deleting a workspace must delete its values too.
-- Half of each page is left free when filled: a recomputation that keeps `next_change_at` is then a HOT
-- update, with no new index entry, even when a batch updates every row of a page (0011).
CREATE TABLE profile_values (
    workspace_id    text NOT NULL,
    template_id     text NOT NULL,
    person_id       text NOT NULL,
    vals            json NOT NULL,
    computed_at     timestamptz NOT NULL,
    next_change_at  timestamptz,
    template_version timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (workspace_id, person_id, template_id)
) WITH (fillfactor = 50);

CREATE INDEX profile_values_due ON profile_values (next_change_at) WHERE next_change_at IS NOT NULL;

-- Journey actions: rules on a template's values that fire signed webhooks through an outbox.
CREATE TABLE actions (
    workspace_id   text NOT NULL,
    action_id      text NOT NULL CHECK (action_id ~ '^[0-9a-f]{24}$'),
    template_id    text NOT NULL,
    name           text NOT NULL,
    is_active      boolean NOT NULL,
    -- The action as the JDS API sends it (rules, cooldown, triggers), plus our `fire` option.
    spec           jsonb NOT NULL,
    -- Standard Webhooks signing secrets (whsec_...), newest first; during a rotation both sign.
    secrets        text[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text,
    PRIMARY KEY (workspace_id, action_id),
    FOREIGN KEY (workspace_id, template_id) REFERENCES templates (workspace_id, template_id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX actions_name_key ON actions (workspace_id, template_id, name);

-- The state of each trigger of an action: paused by a user, or disabled by a 410 Gone.
CREATE TABLE action_triggers (
    workspace_id    text NOT NULL,
    action_id       text NOT NULL,
    trigger_index   integer NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    disabled_reason text,
    PRIMARY KEY (workspace_id, action_id, trigger_index),
    FOREIGN KEY (workspace_id, action_id) REFERENCES actions (workspace_id, action_id) ON DELETE CASCADE
);

-- Each firing of an action for a person, recorded in the transaction of the change that caused it.
CREATE TABLE firings (
    workspace_id    text NOT NULL,
    firing_id       bigint GENERATED ALWAYS AS IDENTITY,
    action_id       text NOT NULL,
    person_id       text NOT NULL,
    template_id     text NOT NULL,
    fired_at        timestamptz NOT NULL,
    cooldown_minutes integer NOT NULL,
    cause           text NOT NULL,
    cause_event     bigint,
    PRIMARY KEY (workspace_id, firing_id),
    FOREIGN KEY (workspace_id, person_id) REFERENCES persons (workspace_id, person_id) ON DELETE CASCADE
);

CREATE INDEX firings_action_person ON firings (workspace_id, action_id, person_id, fired_at DESC);
CREATE INDEX firings_person ON firings (workspace_id, person_id, fired_at DESC);

-- The outbox: one delivery per firing and trigger, delivered at least once under a stable webhook id.
CREATE TABLE deliveries (
    workspace_id     text NOT NULL,
    delivery_id      text NOT NULL,
    firing_id        bigint NOT NULL,
    action_id        text NOT NULL,
    trigger_index    integer NOT NULL,
    person_id        text NOT NULL,
    method           text NOT NULL,
    url              text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'dead', 'paused')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    last_error       text,
    retry_base       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, delivery_id),
    FOREIGN KEY (workspace_id, person_id) REFERENCES persons (workspace_id, person_id) ON DELETE CASCADE
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX deliveries_action ON deliveries (workspace_id, action_id, created_at DESC);
CREATE INDEX deliveries_person ON deliveries (workspace_id, person_id);

CREATE TABLE delivery_attempts (
    workspace_id   text NOT NULL,
    delivery_id    text NOT NULL,
    attempt        integer NOT NULL,
    started_at     timestamptz NOT NULL,
    status_code    integer,
    latency_ms     double precision NOT NULL,
    error          text,
    PRIMARY KEY (workspace_id, delivery_id, attempt),
    FOREIGN KEY (workspace_id, delivery_id) REFERENCES deliveries (workspace_id, delivery_id) ON DELETE CASCADE
);

-- Rich Customer History: revocable per-workspace tokens the history widget carries in its base URL
-- (`/rch/<token>/...`). A token reads `jh_<token_id>_<secret>`; only the SHA-256 of the secret is stored.
CREATE TABLE history_tokens (
    workspace_id  text NOT NULL REFERENCES workspaces (workspace_id) ON DELETE CASCADE,
    token_id      text NOT NULL CHECK (token_id ~ '^[0-9a-f]{16}$'),
    secret_sha256 bytea NOT NULL,
    name          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    PRIMARY KEY (workspace_id, token_id)
);

CREATE UNIQUE INDEX history_tokens_token_id_key ON history_tokens (token_id);

INSERT INTO schema_version (version) VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11);
