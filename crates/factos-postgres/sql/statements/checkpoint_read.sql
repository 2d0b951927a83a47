-- Subscriber $1's checkpoint.
SELECT position FROM {schema}.factos_subscriptions WHERE name = $1
