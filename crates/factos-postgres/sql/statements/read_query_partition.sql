-- A partition's events matching a query after a position, forwards, with
-- the head taken in the same snapshot. Always returns at least one row.
-- $1 types, $2 tags, $3 after, $4 limit (NULL: none), $5 tag prefix,
-- $6 partition, $7 partitions. The partition test needs each event's tags,
-- so it comes before the limit (a limit first would end batches early).
SELECT h.head, e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at
FROM (SELECT max(position) AS head FROM {schema}.factos_events) h
LEFT JOIN LATERAL (
    SELECT ev.*
    FROM (
        SELECT DISTINCT ON (p.position) p.position FROM ({matching}) p
        ORDER BY p.position ASC
    ) p
    CROSS JOIN LATERAL (
        SELECT * FROM {schema}.factos_events x WHERE x.position = p.position OFFSET 0
    ) ev
    WHERE {in_partition}
    ORDER BY ev.position ASC
    LIMIT $4
) e ON true
ORDER BY e.position ASC
