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
