-- factos SQLite schema, version 2: persistent snapshots of decision states.

-- One snapshot per (decider, state version, query encoding); a write keeps
-- the snapshot folded furthest (an older one never replaces it).
CREATE TABLE IF NOT EXISTS factos_snapshots (
    decider       TEXT NOT NULL CHECK (length(decider) BETWEEN 1 AND 128),
    state_version INTEGER NOT NULL CHECK (state_version >= 0),
    query         TEXT NOT NULL,
    position      INTEGER NOT NULL CHECK (position > 0),
    events        INTEGER NOT NULL CHECK (events >= 0),
    state         BLOB NOT NULL,
    saved_at      INTEGER NOT NULL,
    PRIMARY KEY (decider, state_version, query)
);
