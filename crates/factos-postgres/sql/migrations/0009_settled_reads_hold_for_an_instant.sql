-- factos schema, version 9: a settled read holds a writer's key for an
-- instant only, and a writer that finds its key taken waits for that instant.
--
-- In version 8 a settled read took each running transaction's writer key
-- shared and held it to the end of its statement, while it waited for the
-- others. A writer between its transaction id and its key in that moment
-- found its key taken and started over (a new transaction): rare, but on
-- disjoint boundaries, where no attempt should ever begin again, the oracle's
-- 16 optimistic writers (a settled read per decision) saw one such retry in
-- a full test run. Now the read takes each key and releases it at once (a
-- session-level lock and unlock on the same row, with no interrupt check
-- between them), so it holds at most one key, for microseconds, and never
-- while it waits; and a writer whose try fails tries again for up to 10 ms
-- before starting over. Still nothing waits for a writer key while holding
-- one, so neither side is in a wait cycle.
--
-- If a read is cancelled between the lock and the unlock of a key, its
-- session keeps a shared hold on that key until the connection closes; the
-- only writer it can stop is the one holding that transaction id, which then
-- starts over with a new one.
CREATE OR REPLACE FUNCTION factos_settled_mark(writers integer)
RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    mark bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'factos_settled_mark must run under READ COMMITTED, not %',
            current_setting('transaction_isolation')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO mark
    FROM factos_events_position_seq;
    -- Per row: the inner projection waits for and takes the key, the outer
    -- one releases it before the next row is fetched.
    PERFORM pg_advisory_unlock_shared(writers, held.key) AND held.taken IS NOT NULL
    FROM (
        SELECT running.key, pg_advisory_lock_shared(writers, running.key) AS taken
        FROM (
            SELECT (ids.id % 4294967296 - 2147483648)::integer AS key
            FROM pg_current_snapshot() AS now(s),
                 LATERAL (
                     SELECT x::text::bigint FROM pg_snapshot_xip(now.s) AS x
                     UNION ALL
                     SELECT generate_series(
                         pg_snapshot_xmax(now.s)::text::bigint,
                         pg_snapshot_xmax(now.s)::text::bigint
                             + age(xid(pg_snapshot_xmax(now.s))) - 1)
                 ) AS ids(id)
        ) AS running
        OFFSET 0
    ) AS held;
    RETURN mark;
END $$;

-- A writer's key when its first try failed: a settled read holds it for an
-- instant. True once taken; false after 10 ms (the writer starts over).
CREATE OR REPLACE FUNCTION factos_take_writer_key(writers integer, key integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR attempt IN 1 .. 100 LOOP
        IF pg_try_advisory_xact_lock(writers, key) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.0001);
    END LOOP;
    RETURN false;
END $$;
