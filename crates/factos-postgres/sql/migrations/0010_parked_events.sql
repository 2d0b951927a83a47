-- factos schema, version 10: poison events of subscriptions.

-- An event a subscriber's handler failed on every time it was tried, under
-- the `Park` policy: recorded here, and the subscriber's checkpoint moved
-- past it in the same transaction, so the subscriber goes on. `requeued`
-- asks the subscriber to hand it over again (out of position order); a
-- retry that succeeds deletes the row with the handler's writes (exactly
-- once), one that fails keeps it with the new error.
CREATE TABLE IF NOT EXISTS factos_parked_events (
    subscriber text NOT NULL CHECK (length(subscriber) BETWEEN 1 AND 128),
    position   bigint NOT NULL CHECK (position > 0),
    event_id   uuid NOT NULL,
    error      text NOT NULL,
    -- How many times the handler was given the event, over every retry.
    attempts   integer NOT NULL CHECK (attempts > 0),
    requeued   boolean NOT NULL DEFAULT false,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, position)
);
