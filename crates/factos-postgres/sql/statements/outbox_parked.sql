-- The parked messages of topic $1, oldest first.
SELECT id FROM {schema}.factos_outbox
WHERE topic = $1 AND parked_at IS NOT NULL
ORDER BY id
