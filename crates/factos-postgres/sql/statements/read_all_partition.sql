-- A partition's events after a position, forwards, with the head taken in
-- the same snapshot. Always returns at least one row.
-- $1 after, $2 limit (NULL: none), $3 tag prefix, $4 partition, $5 partitions.
SELECT h.head, e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at
FROM (SELECT max(position) AS head FROM {schema}.factos_events) h
LEFT JOIN LATERAL (
    SELECT * FROM {schema}.factos_events ev
    WHERE ev.position > $1 AND {in_partition}
    ORDER BY ev.position ASC
    LIMIT $2
) e ON true
ORDER BY e.position ASC
