-- Every event in (lower, upper], with the head taken in the same snapshot.
-- $1 lower (exclusive), $2 upper (inclusive), $3 limit.
SELECT h.head, e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data
FROM (SELECT max(position) AS head FROM {schema}.factos_events) h
LEFT JOIN LATERAL (
    SELECT * FROM {schema}.factos_events
    WHERE position > $1 AND position <= $2
    ORDER BY position {direction}
    LIMIT $3
) e ON true
ORDER BY e.position {direction}
