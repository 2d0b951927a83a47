-- factos schema, version 1: the event log and its tag mirror.
--
-- Apply it with `search_path` set to the schema that should hold the tables
-- (`factos_postgres::PostgresStore::migrate` does that for you).

-- The append-only log. `position` is global and strictly increasing in
-- commit order under every locking strategy; gaps are allowed (an aborted
-- append leaves one). `tags` keeps the event's tags on the row itself for
-- readers; matching uses the mirror below.
CREATE TABLE IF NOT EXISTS factos_events (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          uuid        NOT NULL,
    stream      text        NOT NULL,
    revision    bigint      NOT NULL CHECK (revision >= 0),
    type        text        NOT NULL,
    version     integer     NOT NULL,
    tags        text[]      NOT NULL DEFAULT '{}',
    metadata    jsonb       NOT NULL DEFAULT '{}',
    data        bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT factos_events_stream_revision UNIQUE (stream, revision)
);

-- Type-only query items and condition checks: an index range per type.
CREATE INDEX IF NOT EXISTS factos_events_type_position ON factos_events (type, position);

-- One row per (tag, event): a b-tree over (tag, position) keeps tag lookups
-- logarithmic in the log size however many events a tag accumulates (a GIN
-- index over `tags` slows down as a tag grows). No foreign key: the log is
-- append-only and `factos verify` checks the mirror; the key would cost a
-- lookup per tag row on every append.
CREATE TABLE IF NOT EXISTS factos_event_tags (
    tag      text   NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (tag, position)
);

-- Backfill the mirror from the events (a no-op on a fresh schema; it fills
-- the mirror of a log written before the mirror existed).
INSERT INTO factos_event_tags (tag, position)
SELECT DISTINCT unnest(e.tags), e.position FROM factos_events e
ON CONFLICT DO NOTHING;
