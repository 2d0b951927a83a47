-- factos schema, version 5: durable subscriptions and the outbox.

-- One row per named subscriber: the position up to which it has handled
-- every matching event (everything at or below it is settled, so no event
-- can appear there later). Advanced with a compare-and-set on the previous
-- position, so an instance that lost its lease cannot move it.
CREATE TABLE IF NOT EXISTS factos_subscriptions (
    name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    position   bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Effects recorded in the transaction of the dispatch that caused them, then
-- leased by workers, deleted when acknowledged, retried with backoff when they
-- fail, and parked (kept, not retried) after too many failures.
CREATE TABLE IF NOT EXISTS factos_outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The event whose reaction this is.
    event_position bigint NOT NULL,
    topic          text NOT NULL CHECK (length(topic) BETWEEN 1 AND 128),
    payload        bytea NOT NULL,
    -- How many times it was leased.
    attempts       integer NOT NULL DEFAULT 0,
    -- Not handed out before: the backoff after a failure, or a lease's end.
    available_at   timestamptz NOT NULL DEFAULT now(),
    -- The current lease; acknowledging or failing needs it.
    lease_token    uuid,
    last_error     text,
    parked_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Workers take due messages of a topic in order of availability.
CREATE INDEX IF NOT EXISTS factos_outbox_due
    ON factos_outbox (topic, available_at, id) WHERE parked_at IS NULL;
