-- factos schema, version 11: persistent snapshots of decision states.

-- One row per (decider, state version, query): a state folded up to a
-- settled position, serialized by the dispatcher. Kept only while no
-- further folded one replaced it; a changed state version is another key,
-- so old snapshots are never loaded (and may be deleted at will). The query
-- is keyed by a digest of its encoding (any length fits the index) and
-- kept whole, compared on every load.
CREATE TABLE IF NOT EXISTS factos_snapshots (
    decider       text NOT NULL CHECK (length(decider) BETWEEN 1 AND 128),
    state_version bigint NOT NULL CHECK (state_version >= 0),
    query_digest  uuid NOT NULL,
    query         text NOT NULL,
    position      bigint NOT NULL CHECK (position > 0),
    events        bigint NOT NULL CHECK (events >= 0),
    state         bytea NOT NULL,
    saved_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (decider, state_version, query_digest)
);
