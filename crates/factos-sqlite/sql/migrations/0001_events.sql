-- factos SQLite schema, version 1: the event log and its tag mirror.

-- The log. `position` is the rowid: the single writer (BEGIN IMMEDIATE)
-- assigns max + 1 inside its transaction, so positions increase in commit
-- order and a reader's snapshot never has a position in flight below its
-- head (every read is settled).
CREATE TABLE IF NOT EXISTS factos_events (
    position    INTEGER PRIMARY KEY,
    id          BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
    stream      TEXT NOT NULL CHECK (length(stream) BETWEEN 1 AND 256),
    revision    INTEGER NOT NULL CHECK (revision >= 0),
    type        TEXT NOT NULL CHECK (length(type) BETWEEN 1 AND 128),
    version     INTEGER NOT NULL CHECK (version >= 0),
    -- A JSON array of the tags (the mirror below is what queries use).
    tags        TEXT NOT NULL,
    -- A JSON object of string values.
    metadata    TEXT NOT NULL,
    data        BLOB NOT NULL,
    -- Microseconds since the Unix epoch, by the writer's clock.
    recorded_at INTEGER NOT NULL,
    UNIQUE (stream, revision)
);

-- Queries by type alone read this index in position order.
CREATE INDEX IF NOT EXISTS factos_events_type ON factos_events (type, position);

-- The tag mirror: one row per (tag, event), so a query's tags are index
-- lookups whatever the size of the log.
CREATE TABLE IF NOT EXISTS factos_event_tags (
    tag      TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID;

-- Append-only, for every connection.
CREATE TRIGGER IF NOT EXISTS factos_events_no_update BEFORE UPDATE ON factos_events
BEGIN SELECT RAISE(ABORT, 'factos_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS factos_events_no_delete BEFORE DELETE ON factos_events
BEGIN SELECT RAISE(ABORT, 'factos_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS factos_event_tags_no_update BEFORE UPDATE ON factos_event_tags
BEGIN SELECT RAISE(ABORT, 'factos_event_tags is append-only'); END;
CREATE TRIGGER IF NOT EXISTS factos_event_tags_no_delete BEFORE DELETE ON factos_event_tags
BEGIN SELECT RAISE(ABORT, 'factos_event_tags is append-only'); END;
