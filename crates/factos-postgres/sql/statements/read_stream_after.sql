-- One stream's events after a position, in revision order (a decision's
-- incremental catch-up). $1 stream, $2 position (exclusive).
SELECT position, id, stream, revision, type, version, tags, metadata, data, recorded_at
FROM {schema}.factos_events
WHERE stream = $1 AND position > $2
ORDER BY revision
