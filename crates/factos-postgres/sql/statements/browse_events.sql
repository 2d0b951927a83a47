-- A page of events for admin tools (`factos ui`), ordered {direction} by
-- position; $6 the page size. See fragments/browse_filter.sql.
SELECT e.position, e.id, e.stream, e.revision, e.type, e.version, e.tags, e.metadata, e.data, e.recorded_at
FROM {schema}.factos_events e
WHERE {filter}
ORDER BY e.position {direction}
LIMIT $6
