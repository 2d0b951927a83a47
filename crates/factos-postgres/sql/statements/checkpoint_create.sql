-- Creates subscriber $1's checkpoint at 0 if it has none.
INSERT INTO {schema}.factos_subscriptions (name) VALUES ($1)
ON CONFLICT (name) DO NOTHING
