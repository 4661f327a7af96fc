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
