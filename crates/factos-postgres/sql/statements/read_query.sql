-- Events matching a query, with the head taken in the same snapshot. Always
-- returns at least one row: (head, NULL...) when no event matches.
-- $1 types, $2 tags, $3 lower (exclusive), $4 upper (inclusive), $5 limit.
SELECT h.head, e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data
FROM (SELECT max(position) AS head FROM {schema}.factos_events) h
LEFT JOIN LATERAL (
    SELECT * FROM {schema}.factos_events
    WHERE position IN ({matching})
    ORDER BY position {direction}
    LIMIT $5
) e ON true
ORDER BY e.position {direction}
