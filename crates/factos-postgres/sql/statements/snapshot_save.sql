-- Keeps a snapshot (position $4, events $5, state $6) under decider $1,
-- state version $2, query text $3, unless the kept one is folded further.
INSERT INTO {schema}.factos_snapshots (decider, state_version, query, position, events, state)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (decider, state_version, query) DO UPDATE
SET position = EXCLUDED.position,
    events = EXCLUDED.events,
    state = EXCLUDED.state,
    saved_at = now()
WHERE {schema}.factos_snapshots.position < EXCLUDED.position
