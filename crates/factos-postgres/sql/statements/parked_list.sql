-- Subscriber $1's parked events, in position order.
SELECT position, event_id, error, attempts, requeued, parked_at
FROM {schema}.factos_parked_events
WHERE subscriber = $1
ORDER BY position
