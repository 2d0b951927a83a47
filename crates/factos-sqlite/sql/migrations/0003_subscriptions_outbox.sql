-- factos SQLite schema, version 3: durable subscriptions and the outbox.

-- One row per named subscriber: the position up to which it has handled
-- every matching event (every read is settled, so no event can appear at
-- or below it later), the query it runs, and the instance holding it.
-- SQLite has no session locks: the holder renews a lease (`held_until`,
-- microseconds since the epoch) and a standby takes over once it ran out.
-- The checkpoint moves by compare-and-set on the previous position and the
-- holder, so an instance that lost its lease cannot move it.
CREATE TABLE IF NOT EXISTS factos_subscriptions (
    name       TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    position   INTEGER NOT NULL DEFAULT 0 CHECK (position >= 0),
    -- The query's encoding, recorded by the first run.
    query      TEXT,
    holder     BLOB CHECK (holder IS NULL OR length(holder) = 16),
    held_until INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- Effects recorded in the transaction of the dispatch that caused them,
-- leased by workers, deleted when acknowledged, retried with backoff when
-- they fail, and parked (kept, not retried) after too many attempts.
-- Times are microseconds since the epoch.
CREATE TABLE IF NOT EXISTS factos_outbox (
    id             INTEGER PRIMARY KEY,
    -- The event whose reaction this is.
    event_position INTEGER NOT NULL CHECK (event_position > 0),
    topic          TEXT NOT NULL CHECK (length(topic) BETWEEN 1 AND 128),
    payload        BLOB NOT NULL,
    -- How many times it was leased.
    attempts       INTEGER NOT NULL DEFAULT 0,
    -- Not handed out before: the backoff after a failure, or a lease's end.
    available_at   INTEGER NOT NULL,
    -- The current lease; acknowledging or failing needs it.
    lease_token    BLOB CHECK (lease_token IS NULL OR length(lease_token) = 16),
    last_error     TEXT,
    parked_at      INTEGER,
    created_at     INTEGER NOT NULL
);

-- Workers take due messages of a topic in order of availability.
CREATE INDEX IF NOT EXISTS factos_outbox_due
    ON factos_outbox (topic, available_at, id) WHERE parked_at IS NULL;
