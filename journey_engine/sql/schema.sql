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

INSERT INTO schema_version (version) VALUES (1), (2);
