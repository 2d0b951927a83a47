-- Positions of events matching a query of items, within a one-sided
-- position bound ({bound}: `> $n` or `<= $n`). One-sided on purpose: a
-- generic plan estimates a two-sided parameter range as tiny and would scan
-- the position index over it instead of the type and tag indexes.
-- Items come as two parallel arrays: item i accepts the types in
-- {types}[i] and requires the tags in {tags}[i], each list joined with the
-- unit separator (U+001F, a control character no type or tag may contain);
-- an empty string means "no constraint". Items with tags start from the
-- mirror's (tag, position) index on their first tag; type-only items use the
-- (type, position) index.
-- A position matching several items comes once per item (`UNION ALL`):
-- EXISTS needs no deduplication, and reads deduplicate with DISTINCT ON,
-- which sorts. `UNION` made a generic plan hash an estimated third of the
-- log: building and scanning that (nearly empty) hash table was ~25 % of a
-- cached dispatch's server CPU at 1 client (perf, issue 15).
SELECT g.position
FROM unnest({types}::text[], {tags}::text[]) AS q(types, tags)
JOIN {schema}.factos_event_tags g
  ON g.tag = split_part(q.tags, E'\x1f', 1) AND g.position {bound}
JOIN {schema}.factos_events m ON m.position = g.position
WHERE q.tags <> ''
  AND m.tags @> string_to_array(q.tags, E'\x1f')
  AND (q.types = '' OR m.type = ANY (string_to_array(q.types, E'\x1f')))
UNION ALL
SELECT m.position
FROM unnest({types}::text[], {tags}::text[]) AS q(types, tags)
CROSS JOIN LATERAL unnest(string_to_array(q.types, E'\x1f')) AS t(type)
CROSS JOIN LATERAL (
    -- OFFSET 0 keeps this a per-type (type, position) index scan: without it
    -- the planner may flatten it into a hash join over a position range.
    SELECT m.position FROM {schema}.factos_events m
    WHERE m.type = t.type AND m.position {bound}
    OFFSET 0
) m
WHERE q.tags = ''
