-- Subscriber $1's requeued parked events, in position order, at most $2.
SELECT position, event_id
FROM {schema}.factos_parked_events
WHERE subscriber = $1 AND requeued
ORDER BY position
LIMIT $2
