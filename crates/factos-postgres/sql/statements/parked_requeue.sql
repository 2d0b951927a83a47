-- Asks subscriber $1 to hand parked event $2 over again.
UPDATE {schema}.factos_parked_events
SET requeued = true
WHERE subscriber = $1 AND position = $2
RETURNING position
