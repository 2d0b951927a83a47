-- Records subscriber $1's query $2 if none is recorded; returns the one
-- recorded now (its own, or another that was there).
UPDATE {schema}.factos_subscriptions
SET query = coalesce(query, $2)
WHERE name = $1
RETURNING query
