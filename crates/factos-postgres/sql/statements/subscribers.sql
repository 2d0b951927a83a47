-- Every subscriber's name and checkpoint.
SELECT name, position FROM {schema}.factos_subscriptions ORDER BY name
