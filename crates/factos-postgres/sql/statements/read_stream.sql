-- One stream's events in revision order. $1 stream.
SELECT position, id, stream, revision, type, version, tags, metadata, data, recorded_at
FROM {schema}.factos_events
WHERE stream = $1
ORDER BY revision
