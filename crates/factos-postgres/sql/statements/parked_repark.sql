-- Parks subscriber $1's requeued event $2 again after a failed retry:
-- error $3, $4 more attempts, no longer requeued. No row when it was
-- dropped meanwhile (a dropped event stays dropped).
UPDATE {schema}.factos_parked_events
SET error = $3, attempts = attempts + $4, requeued = false, parked_at = now()
WHERE subscriber = $1 AND position = $2
RETURNING position
