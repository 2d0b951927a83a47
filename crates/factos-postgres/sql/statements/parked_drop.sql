-- Forgets subscriber $1's parked event $2 (the subscriber never sees it again).
DELETE FROM {schema}.factos_parked_events
WHERE subscriber = $1 AND position = $2
RETURNING position
