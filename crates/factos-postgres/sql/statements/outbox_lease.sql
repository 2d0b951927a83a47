-- Leases up to $2 due messages of topic $1 for $4 milliseconds under token $3.
-- SKIP LOCKED: concurrent workers take different messages instead of waiting
-- for each other. A lease that runs out makes the message due again, so a
-- worker that died mid-message does not lose it; it counts as a failed
-- attempt: its error is recorded, and a message whose lease ran out on its
-- $5th attempt is parked instead of leased. Returns the leased and the parked
-- rows (`parked` tells them apart).
WITH due AS (
    SELECT id, lease_token IS NOT NULL AS lease_ran_out,
           lease_token IS NOT NULL AND attempts >= $5::integer AS exhausted
    FROM {schema}.factos_outbox
    WHERE topic = $1 AND parked_at IS NULL AND available_at <= now()
    ORDER BY available_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.factos_outbox o
SET lease_token = CASE WHEN due.exhausted THEN NULL ELSE $3::uuid END,
    available_at = CASE WHEN due.exhausted THEN o.available_at
                        ELSE now() + make_interval(secs => $4::bigint / 1000.0) END,
    attempts = CASE WHEN due.exhausted THEN o.attempts ELSE o.attempts + 1 END,
    last_error = CASE WHEN due.lease_ran_out
                      THEN 'the lease ran out before the outcome of attempt ' || o.attempts || ' was recorded'
                      ELSE o.last_error END,
    parked_at = CASE WHEN due.exhausted THEN now() END
FROM due
WHERE o.id = due.id
RETURNING o.id, o.event_position, o.topic, o.payload, o.attempts, o.last_error, due.exhausted AS parked
