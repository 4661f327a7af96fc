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

INSERT INTO schema_version (version) VALUES (1);
