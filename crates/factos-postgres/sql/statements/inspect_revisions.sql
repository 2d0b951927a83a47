-- Streams whose revisions are not exactly 0..n-1 in position order, at most
-- 20 (`PostgresStore::verify`): stream, events, first and last revision, and
-- whether positions increase with revisions.
SELECT stream, count(*) AS events, min(revision) AS first, max(revision) AS last,
       bool_and(previous IS NULL OR previous < position) AS positions_increase
FROM (
    SELECT stream, revision, position,
           lag(position) OVER (PARTITION BY stream ORDER BY revision) AS previous
    FROM {schema}.factos_events
) s
GROUP BY stream
HAVING min(revision) <> 0 OR max(revision) <> count(*) - 1
    OR NOT bool_and(previous IS NULL OR previous < position)
ORDER BY stream
LIMIT 20
