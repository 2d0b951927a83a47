-- The snapshot of decider $1 at state version $2 for query text $3.
SELECT position, events, state
FROM {schema}.factos_snapshots
WHERE decider = $1 AND state_version = $2 AND query = $3
