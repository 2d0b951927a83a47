-- The filter of an admin tool's event page: $1 type, $2 tag, $3 stream
-- (each NULL: any), positions between $4 and $5 (inclusive).
($1::text IS NULL OR e.type = $1)
AND ($2::text IS NULL OR EXISTS (
    SELECT 1 FROM {schema}.factos_event_tags t WHERE t.tag = $2 AND t.position = e.position))
AND ($3::text IS NULL OR e.stream = $3)
AND e.position BETWEEN $4 AND $5
