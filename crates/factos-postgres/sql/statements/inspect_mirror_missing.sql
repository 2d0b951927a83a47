-- Event tags without their mirror row, for positions in ($1, $2]: position
-- and tag, at most 20 (`PostgresStore::verify`).
SELECT e.position, t.tag
FROM {schema}.factos_events e
CROSS JOIN LATERAL unnest(e.tags) AS t(tag)
LEFT JOIN {schema}.factos_event_tags m ON m.tag = t.tag AND m.position = e.position
WHERE e.position > $1 AND e.position <= $2 AND m.position IS NULL
ORDER BY e.position
LIMIT 20
