-- Checks a condition and appends a batch to a stream in one statement.
--
-- The caller already holds the locks that make the check valid until commit
-- (taken in earlier statements: a lock taken inside this statement would not
-- protect this statement's own snapshot), including the stream's lock, so
-- the revision read here cannot move before the commit.
--
-- Here the writer side of the protocol happens: the events' advisory keys
-- are tried without waiting (a decision holding one exclusively is reading a
-- context these events belong to: the caller rolls back and retries rather
-- than risk a deadlock), and the writer takes its own key, the pair (writer
-- class $12, its transaction id's low 32 bits), exclusively and without
-- waiting, after its transaction id is assigned and before it allocates a
-- position; held to commit, it lets settled reads wait for this writer alone
-- (migration 8). The pair is taken only when the batch is going in, so a
-- condition failure assigns no transaction id.
--
-- $1 stream; $2..$7 the events as parallel arrays (id, type, version, tags
-- joined with U+001F, metadata, data); $8 expected revision (NULL: any, -1: no
-- events yet); $9 condition after (exclusive); $10, $11 the events' lock keys
-- and modes; $12 the writer class; the condition's query (if any) is in the
-- conflict expression ($13 types, $14 tags). `AppendParams` in
-- src/store/append.rs names each of them.
--
-- When an event with any of the batch's ids exists, nothing is appended and
-- `replayed` says so; the caller reads the stored events and tells a replay
-- of this very append from an id conflict.
--
-- Returns one row per appended event, or a single row with NULL position when
-- nothing was appended, with the columns (read by name): ok (the events' keys
-- and the writer's own pair were free), conflict, revision_conflict,
-- current_revision, position, revision, replayed.
WITH replayed AS (
    SELECT EXISTS (SELECT 1 FROM {schema}.factos_events WHERE id = ANY ($2::uuid[])) AS yes
),
locked AS (
    -- No call when the guard already holds every key (the usual decision):
    -- a PL/pgSQL call costs even with nothing to lock.
    SELECT CASE WHEN cardinality($10::bigint[]) = 0 THEN true
                ELSE {schema}.factos_try_lock_keys($10::bigint[], $11::boolean[]) END AS ok
),
current AS (
    SELECT coalesce(
        (SELECT revision FROM {schema}.factos_events WHERE stream = $1 ORDER BY revision DESC LIMIT 1),
        -1) AS revision
),
checked AS (
    SELECT ({conflict}) AS conflict,
           ($8::bigint IS NOT NULL AND $8::bigint <> (SELECT revision FROM current)) AS revision_conflict
),
writer AS (
    -- Taken only by a batch that is going in; `pg_current_xact_id()` assigns
    -- the transaction id first. The pair is busy only when a settled read
    -- took it in the instant between the two: start over (a new id).
    SELECT CASE WHEN NOT replayed.yes AND locked.ok AND NOT checked.conflict
                     AND NOT checked.revision_conflict
                THEN pg_try_advisory_xact_lock(
                         $12::integer,
                         (pg_current_xact_id()::text::bigint % 4294967296 - 2147483648)::integer)
                ELSE true END AS ok
    FROM replayed, locked, checked
),
inserted AS (
    INSERT INTO {schema}.factos_events (id, stream, revision, type, version, tags, metadata, data)
    SELECT u.id, $1, current.revision + u.n, u.type, u.version,
           string_to_array(u.tags, E'\x1f'), u.metadata, u.data
    FROM replayed, locked, writer, current, checked,
         unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::jsonb[], $7::bytea[])
             WITH ORDINALITY AS u(id, type, version, tags, metadata, data, n)
    WHERE NOT replayed.yes AND locked.ok AND writer.ok AND NOT checked.conflict
      AND NOT checked.revision_conflict
    ORDER BY u.n
    RETURNING position, revision, tags
),
mirrored AS (
    INSERT INTO {schema}.factos_event_tags (tag, position)
    SELECT unnest(inserted.tags), inserted.position FROM inserted
)
SELECT locked.ok AND writer.ok AS ok, checked.conflict, checked.revision_conflict,
       current.revision AS current_revision, inserted.position, inserted.revision, replayed.yes AS replayed
FROM replayed CROSS JOIN locked CROSS JOIN writer CROSS JOIN checked CROSS JOIN current LEFT JOIN inserted ON true
ORDER BY inserted.revision
