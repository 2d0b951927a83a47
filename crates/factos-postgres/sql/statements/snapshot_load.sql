-- The snapshot of decider $1 at state version $2 for the query with digest
-- $3 and encoding $4 (a digest shared by another query's encoding is not it).
SELECT position, events, state
FROM {schema}.factos_snapshots
WHERE decider = $1 AND state_version = $2 AND query_digest = $3 AND query = $4
