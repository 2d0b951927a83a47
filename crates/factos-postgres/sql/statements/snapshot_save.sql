-- Keeps a snapshot (position $5, events $6, state $7) under decider $1,
-- state version $2, query digest $3 and encoding $4, unless the kept one of
-- that query is folded further.
INSERT INTO {schema}.factos_snapshots
    (decider, state_version, query_digest, query, position, events, state)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (decider, state_version, query_digest) DO UPDATE
SET query = EXCLUDED.query,
    position = EXCLUDED.position,
    events = EXCLUDED.events,
    state = EXCLUDED.state,
    saved_at = now()
WHERE {schema}.factos_snapshots.position < EXCLUDED.position
   OR {schema}.factos_snapshots.query <> EXCLUDED.query
