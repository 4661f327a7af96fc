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

-- Existing events: one person per distinct identity (links of earlier previousidentity values are not
-- replayed; re-send or merge them through the person API).
WITH first_seen AS (
    SELECT DISTINCT ON (workspace_id, identity) workspace_id, identity, identity_type
    FROM events ORDER BY workspace_id, identity, seq
), made AS (
    SELECT workspace_id, identity, identity_type,
           substr(md5(random()::text || clock_timestamp()::text || identity), 1, 24) AS person_id
    FROM first_seen
), new_persons AS (
    INSERT INTO persons (workspace_id, person_id) SELECT workspace_id, person_id FROM made
)
INSERT INTO aliases (workspace_id, alias, alias_type, person_id)
SELECT workspace_id, identity, identity_type, person_id FROM made;
