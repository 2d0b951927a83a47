-- The append's one target: stream $1 and its revision before the append.
SELECT 1::bigint AS ord, $1::text AS stream, coalesce(
    (SELECT revision FROM {schema}.factos_events WHERE stream = $1 ORDER BY revision DESC LIMIT 1),
    -1) AS revision
