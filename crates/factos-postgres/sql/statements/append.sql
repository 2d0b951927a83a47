-- The insert that follows the checks of `append_checks.sql` (the two are
-- joined into one statement): the events and their tag-mirror rows, only if
-- the checks passed. Returns one row per appended event, or a single row with
-- NULL position when nothing was appended: (locked, conflict,
-- revision_conflict, current_revision, position, revision, replayed).
,
inserted AS (
    INSERT INTO {schema}.factos_events (id, stream, revision, type, version, tags, metadata, data)
    SELECT u.id, $1, current.revision + u.n, u.type, u.version,
           string_to_array(u.tags, E'\x1f'), u.metadata, u.data
    FROM replayed, locked, barrier, current, checked,
         unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::jsonb[], $7::bytea[])
             WITH ORDINALITY AS u(id, type, version, tags, metadata, data, n)
    WHERE NOT replayed.yes AND locked.ok AND NOT checked.conflict AND NOT checked.revision_conflict
    ORDER BY u.n
    RETURNING position, revision, tags
),
mirrored AS (
    INSERT INTO {schema}.factos_event_tags (tag, position)
    SELECT unnest(inserted.tags), inserted.position FROM inserted
)
SELECT locked.ok, checked.conflict, checked.revision_conflict, current.revision AS current_revision,
       inserted.position, inserted.revision, replayed.yes AS replayed
FROM replayed CROSS JOIN locked CROSS JOIN checked CROSS JOIN current LEFT JOIN inserted ON true
ORDER BY inserted.revision
