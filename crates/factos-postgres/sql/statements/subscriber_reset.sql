-- Moves subscriber $1's checkpoint to $2 and forgets its query (its next
-- run records its own).
UPDATE {schema}.factos_subscriptions
SET position = $2, query = NULL, updated_at = now()
WHERE name = $1
RETURNING name
