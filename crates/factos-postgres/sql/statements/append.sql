-- Checks a condition and appends a batch to a stream in one statement. The
-- caller holds the lock that makes the check valid until commit (taken in an
-- earlier statement: a lock taken inside this one would not protect its own
-- snapshot).
--
-- $1 stream; $2..$7 the events as parallel arrays (id, type, version, tags
-- joined with U+001F, metadata, data); $8 expected revision (-2: any, -1: no
-- events yet); $9 condition after (exclusive); then the condition's query:
-- {conflict} is an EXISTS over matching positions after $9.
--
-- Returns one row per appended event, or a single row with NULL position when
-- nothing was appended: (conflict, revision_conflict, current_revision, position, revision).
WITH current AS (
    SELECT coalesce(
        (SELECT revision FROM {schema}.factos_events WHERE stream = $1 ORDER BY revision DESC LIMIT 1),
        -1) AS revision
),
checked AS (
    SELECT ({conflict}) AS conflict,
           ($8::bigint <> -2 AND $8::bigint <> (SELECT revision FROM current)) AS revision_conflict
),
inserted AS (
    INSERT INTO {schema}.factos_events (id, stream, revision, type, version, tags, metadata, data)
    SELECT u.id, $1, current.revision + u.n, u.type, u.version,
           string_to_array(u.tags, E'\x1f'), u.metadata, u.data
    FROM current, checked,
         unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::jsonb[], $7::bytea[])
             WITH ORDINALITY AS u(id, type, version, tags, metadata, data, n)
    WHERE NOT checked.conflict AND NOT checked.revision_conflict
    ORDER BY u.n
    RETURNING position, revision, tags
),
mirrored AS (
    INSERT INTO {schema}.factos_event_tags (tag, position)
    SELECT unnest(inserted.tags), inserted.position FROM inserted
)
SELECT checked.conflict, checked.revision_conflict, current.revision AS current_revision,
       inserted.position, inserted.revision
FROM checked CROSS JOIN current LEFT JOIN inserted ON true
ORDER BY inserted.revision
