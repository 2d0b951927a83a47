-- A routed append's targets: the streams $1 by ordinal, each with its
-- revision before the append.
SELECT s.ord, s.stream, coalesce(
    (SELECT e.revision FROM {schema}.factos_events e WHERE e.stream = s.stream
     ORDER BY e.revision DESC LIMIT 1),
    -1) AS revision
FROM unnest($1::text[]) WITH ORDINALITY AS s(stream, ord)
