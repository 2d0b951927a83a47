-- Events matching a query, with the head taken in the same snapshot. Always
-- returns at least one row: (head, NULL...) when no event matches.
-- $1 types, $2 tags, $3 the position bound, $4 limit (NULL: none).
-- Matching positions are sorted and limited first, then each row is fetched
-- by its primary key, so the plan never walks the log in position order.
SELECT h.head, e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at
FROM (SELECT max(position) AS head FROM {schema}.factos_events) h
LEFT JOIN LATERAL (
    SELECT ev.*
    FROM (
        -- DISTINCT ON: a position matching two items comes once, by a sort
        -- (never a hash, see the matching fragment).
        SELECT DISTINCT ON (p.position) p.position FROM ({matching}) p
        ORDER BY p.position {direction}
        LIMIT $4
    ) p
    CROSS JOIN LATERAL (
        -- OFFSET 0: one primary-key lookup per matching position, never a
        -- hash of the whole table.
        SELECT * FROM {schema}.factos_events x WHERE x.position = p.position OFFSET 0
    ) ev
) e ON true
ORDER BY e.position {direction}
