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
-- (migrations 8 and 9). The pair is taken only when the batch is going in,
-- so a condition failure assigns no transaction id.
--
-- $1 the stream (or, routed, the streams: the decision's first, then its
-- other streams); $2..$7 the events as parallel arrays (id, type, version,
-- tags joined with U+001F, metadata, data); $8 expected revision of the
-- (first) stream (NULL: any, -1: no events yet); $9 condition after
-- (exclusive); $10, $11 the events' lock keys and modes; $12 the writer
-- class; routed, $13 each event's stream as an ordinal into $1; the
-- condition's query (if any) is in the conflict expression (types and tags
-- after those). `AppendParams` in src/store/append.rs names each of them.
--
-- The template's slots make the two shapes: {targets} lists the streams
-- written to as (ord, stream, revision before), {route_column} and
-- {route_alias} add the routed events' ordinals, {route_of_event} picks an
-- event's target, {rank} numbers an event within its stream,
-- {stream_revisions} reports the targets' revisions before the append. The
-- plain shape writes every event to $1 (rank: the event's ordinal, no window
-- function) and reports no revisions array (NULL: the caller has the one).
--
-- When an event with any of the batch's ids exists, nothing is appended and
-- `replayed` says so; the caller reads the stored events and tells a replay
-- of this very append from an id conflict.
--
-- Returns one row per appended event, or a single row with NULL position when
-- nothing was appended, with the columns (read by name): ok (the events' keys
-- and the writer's own pair were free), conflict, revision_conflict,
-- current_revision (of the first stream, before the append), position,
-- stream, revision, recorded_at, replayed, stream_revisions (routed: every target's
-- revision before the append, by ordinal; plain: NULL).
WITH replayed AS (
    SELECT EXISTS (SELECT 1 FROM {schema}.factos_events WHERE id = ANY ($2::uuid[])) AS yes
),
locked AS (
    -- No call when the guard already holds every key (the usual decision):
    -- a PL/pgSQL call costs even with nothing to lock.
    SELECT CASE WHEN cardinality($10::bigint[]) = 0 THEN true
                ELSE {schema}.factos_try_lock_keys($10::bigint[], $11::boolean[]) END AS ok
),
targets AS (
    {targets}
),
current AS (
    SELECT revision FROM targets WHERE ord = 1
),
checked AS (
    SELECT ({conflict}) AS conflict,
           ($8::bigint IS NOT NULL AND $8::bigint <> (SELECT revision FROM current)) AS revision_conflict
),
writer AS (
    -- Taken only by a batch that is going in; `pg_current_xact_id()` assigns
    -- the transaction id first. The pair is busy only when a settled read
    -- holds it for its instant: try again for up to 10 ms (migration 9),
    -- then start over (a new id).
    SELECT CASE WHEN replayed.yes OR NOT locked.ok OR checked.conflict
                     OR checked.revision_conflict
                THEN true
                WHEN pg_try_advisory_xact_lock(
                         $12::integer,
                         (pg_current_xact_id()::text::bigint % 4294967296 - 2147483648)::integer)
                THEN true
                ELSE {schema}.factos_take_writer_key(
                         $12::integer,
                         (pg_current_xact_id()::text::bigint % 4294967296 - 2147483648)::integer)
                END AS ok
    FROM replayed, locked, checked
),
inserted AS (
    INSERT INTO {schema}.factos_events (id, stream, revision, type, version, tags, metadata, data)
    SELECT u.id, t.stream, t.revision + {rank}, u.type, u.version,
           string_to_array(u.tags, E'\x1f'), u.metadata, u.data
    FROM replayed, locked, writer, checked,
         unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::jsonb[], $7::bytea[]{route_column})
             WITH ORDINALITY AS u(id, type, version, tags, metadata, data{route_alias}, n)
         JOIN targets t ON t.ord = {route_of_event}
    WHERE NOT replayed.yes AND locked.ok AND writer.ok AND NOT checked.conflict
      AND NOT checked.revision_conflict
    ORDER BY u.n
    RETURNING position, stream, revision, tags, recorded_at
),
mirrored AS (
    INSERT INTO {schema}.factos_event_tags (tag, position)
    SELECT unnest(inserted.tags), inserted.position FROM inserted
)
SELECT locked.ok AND writer.ok AS ok, checked.conflict, checked.revision_conflict,
       current.revision AS current_revision, inserted.position, inserted.stream,
       inserted.revision, inserted.recorded_at, replayed.yes AS replayed,
       {stream_revisions} AS stream_revisions
FROM replayed CROSS JOIN locked CROSS JOIN writer CROSS JOIN checked CROSS JOIN current LEFT JOIN inserted ON true
ORDER BY inserted.position
