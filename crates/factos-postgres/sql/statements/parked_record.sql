-- Parks event $2 (id $3) of subscriber $1 with error $4 after $5 attempts;
-- parked again (a retry that failed), it keeps one row: the new error, the
-- attempts added, no longer requeued.
INSERT INTO {schema}.factos_parked_events (subscriber, position, event_id, error, attempts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (subscriber, position) DO UPDATE
SET error = EXCLUDED.error,
    attempts = {schema}.factos_parked_events.attempts + EXCLUDED.attempts,
    requeued = false,
    parked_at = now()
