-- After a COPY of a large batch into `factos_events` (revisions after $2,
-- under the stream's lock, so no one else appended to stream $1 meanwhile):
-- mirrors the batch's tags and returns its positions and revisions.
WITH copied AS (
    SELECT position, revision, tags FROM {schema}.factos_events
    WHERE stream = $1 AND revision > $2
),
mirrored AS (
    INSERT INTO {schema}.factos_event_tags (tag, position)
    SELECT unnest(copied.tags), copied.position FROM copied
)
SELECT position, revision FROM copied ORDER BY revision
