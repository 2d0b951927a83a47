-- Forgets subscriber $1: its parked events, then its checkpoint row (the
-- name is free again: a subscription under it starts from the beginning).
WITH parked AS (
    DELETE FROM {schema}.factos_parked_events WHERE subscriber = $1
)
DELETE FROM {schema}.factos_subscriptions
WHERE name = $1
RETURNING name
