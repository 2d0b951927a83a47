-- Leases up to $2 due messages of topic $1 for $4 milliseconds under token $3.
-- SKIP LOCKED: concurrent workers take different messages instead of waiting
-- for each other. A lease that runs out makes the message due again, so a
-- worker that died mid-message does not lose it.
WITH due AS (
    SELECT id FROM {schema}.factos_outbox
    WHERE topic = $1 AND parked_at IS NULL AND available_at <= now()
    ORDER BY available_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.factos_outbox o
SET lease_token = $3,
    available_at = now() + make_interval(secs => $4::bigint / 1000.0),
    attempts = o.attempts + 1
FROM due
WHERE o.id = due.id
RETURNING o.id, o.event_position, o.topic, o.payload, o.attempts, o.last_error
