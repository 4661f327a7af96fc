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
