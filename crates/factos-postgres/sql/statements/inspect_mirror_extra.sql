-- Mirror rows whose event does not exist or does not carry the tag, for
-- positions in ($1, $2]: position and tag, at most 20 (`PostgresStore::verify`).
SELECT m.position, m.tag
FROM {schema}.factos_event_tags m
LEFT JOIN {schema}.factos_events e ON e.position = m.position
WHERE m.position > $1 AND m.position <= $2 AND (e.position IS NULL OR NOT (m.tag = ANY (e.tags)))
ORDER BY m.position
LIMIT 20
