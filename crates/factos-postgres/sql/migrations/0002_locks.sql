-- factos schema, version 2: the functions of the scoped locking protocol.
-- See DESIGN.md for the protocol and why it keeps the guarantee.

-- Takes advisory transaction locks in the order given (callers sort the keys,
-- so every blocking acquisition follows one global order and cannot
-- deadlock), each exclusive or shared.
CREATE OR REPLACE FUNCTION factos_lock_keys(keys bigint[], exclusive boolean[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        IF exclusive[i] THEN
            PERFORM pg_advisory_xact_lock(keys[i]);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(keys[i]);
        END IF;
    END LOOP;
END $$;

-- Tries to take advisory transaction locks without waiting; false if any is
-- held in a conflicting mode by another transaction (the caller then rolls
-- back and retries instead of risking a deadlock).
CREATE OR REPLACE FUNCTION factos_try_lock_keys(keys bigint[], exclusive boolean[])
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        IF exclusive[i] THEN
            IF NOT pg_try_advisory_xact_lock(keys[i]) THEN RETURN false; END IF;
        ELSIF NOT pg_try_advisory_xact_lock_shared(keys[i]) THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END $$;

-- The settled position: waits until every writer that is between allocating
-- positions and committing has finished (they hold the barrier key shared),
-- then returns the last allocated position. Every position at or below it
-- belongs to a finished transaction, so no event can later appear there.
-- Run it as its own statement: the lock is released when it commits.
CREATE OR REPLACE FUNCTION factos_settled_position(barrier bigint)
RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    mark bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(barrier);
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO mark
    FROM factos_events_position_seq;
    RETURN mark;
END $$;
