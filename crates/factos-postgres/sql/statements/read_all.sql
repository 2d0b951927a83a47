-- Every event within a position bound, with the head taken in the same
-- snapshot. Always returns at least one row: (head, NULL...) when empty.
-- $1 the position bound, $2 limit (NULL: none).
SELECT h.head, e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at
FROM (SELECT max(position) AS head FROM {schema}.factos_events) h
LEFT JOIN LATERAL (
    SELECT * FROM {schema}.factos_events
    WHERE position {bound}
    ORDER BY position {direction}
    LIMIT $2
) e ON true
ORDER BY e.position {direction}
