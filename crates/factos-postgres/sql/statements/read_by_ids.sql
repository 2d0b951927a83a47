-- Stored events by id, in position order (an idempotent retry reporting
-- what the earlier attempt committed). $1 ids.
SELECT position, id, stream, revision, type, version, tags, metadata, data, recorded_at
FROM {schema}.factos_events
WHERE id = ANY ($1::uuid[])
ORDER BY position
