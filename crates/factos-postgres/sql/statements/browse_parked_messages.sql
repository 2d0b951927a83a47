-- The parked outbox messages of topic $1 with their errors, oldest first,
-- at most $2.
SELECT id, event_position, attempts, last_error, parked_at, payload
FROM {schema}.factos_outbox
WHERE topic = $1 AND parked_at IS NOT NULL
ORDER BY id
LIMIT $2
