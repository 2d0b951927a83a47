-- factos schema, version 8: settled positions from transaction ids, with no
-- lock every writer shares.
--
-- Up to version 7 every writer held one barrier key shared from position
-- allocation to commit, and a settled read took it exclusively for an
-- instant: all writers met on one lock entry, and writers that started while
-- a settled read waited queued behind its exclusive request. From version 8
-- each writer holds a key of its own, the pair (the schema's writer class,
-- the low 32 bits of its transaction id), taken exclusively and without
-- waiting after its transaction id is assigned and before it allocates a
-- position (`sql/statements/append.sql`). A settled read waits for exactly
-- the writers that may still commit at or below the position it hands out
-- and blocks nobody.
--
-- Processes running a factos older than this migration take the barrier key
-- instead, which this function does not wait for: stop them before migrating
-- (an older factos refuses this schema in `migrate`).
--
-- Why the mark is settled (DESIGN.md, "Settled positions"). Let L be the last
-- allocated position, read first. A writer W with a position at or below L
-- got its transaction id x and then its key before allocating it, so before L
-- was read. The running transactions are read next, from a snapshot taken
-- after L: the snapshot's in-progress list covers ids below its xmax, and the
-- ids from xmax up to the next id to be assigned (measured after L too, by
-- `age`) are the ones a snapshot leaves out. If W is still running, x is
-- among them, and waiting for W's key (shared; free at once for a transaction
-- that is not a factos writer, or one that has finished) returns only after W
-- has finished, its commit visible to any later snapshot. So every position at
-- or below L belongs to a finished transaction. A writer still between its id
-- and its key when its pair is taken here allocates after L; its own try then
-- fails and it starts over with a new transaction (rare: the window is one
-- statement's evaluation).
--
-- The reader holds the pairs it took until its statement ends; no writer ever
-- waits for a pair (they only try their own), so a settled read is in no wait
-- cycle.
CREATE OR REPLACE FUNCTION factos_settled_mark(writers integer)
RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    mark bigint;
BEGIN
    -- The running transactions must come from a snapshot taken after L:
    -- each statement below takes a new snapshot only under READ COMMITTED.
    -- And `age` measures from the next id as of its first call in the
    -- transaction, so the caller runs this as a transaction of its own
    -- (factos sends it as one autocommit statement).
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'factos_settled_mark must run under READ COMMITTED, not %',
            current_setting('transaction_isolation')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO mark
    FROM factos_events_position_seq;
    PERFORM pg_advisory_xact_lock_shared(writers, (running.id % 4294967296 - 2147483648)::integer)
    FROM pg_current_snapshot() AS now(s)
    CROSS JOIN LATERAL (
        SELECT x::text::bigint AS id FROM pg_snapshot_xip(now.s) AS x
        UNION ALL
        SELECT generate_series(
            pg_snapshot_xmax(now.s)::text::bigint,
            pg_snapshot_xmax(now.s)::text::bigint + age(xid(pg_snapshot_xmax(now.s))) - 1)
    ) AS running;
    RETURN mark;
END $$;
