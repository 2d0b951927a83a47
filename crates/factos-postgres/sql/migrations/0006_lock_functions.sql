-- factos schema, version 6: the table locks of the locking protocol, taken
-- through functions that run with the schema owner's rights.
--
-- `LOCK TABLE ... IN EXCLUSIVE MODE` needs UPDATE, DELETE or TRUNCATE on the
-- table and `ROW EXCLUSIVE` needs table-level INSERT; the application role
-- has neither (it may insert every column but `position`, so it cannot
-- choose positions). These functions take exactly those locks and nothing
-- else; a lock taken inside a function is held until the transaction ends.
-- `search_path` is pinned (the migration sets it to the schema, then
-- pg_temp), so a caller's temporary table cannot stand in for the log. The
-- functions belong to the role that runs this migration, which must own
-- `factos_events` (or hold UPDATE on it) for the locks to be granted.

CREATE OR REPLACE FUNCTION factos_lock_events_exclusive()
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
BEGIN
    LOCK TABLE factos_events IN EXCLUSIVE MODE;
END $$;

CREATE OR REPLACE FUNCTION factos_lock_events_for_writing()
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
BEGIN
    LOCK TABLE factos_events IN ROW EXCLUSIVE MODE;
END $$;

-- Functions are executable by PUBLIC by default; these run with the owner's
-- rights, so only roles granted EXECUTE (the application role) may call them.
REVOKE EXECUTE ON FUNCTION factos_lock_events_exclusive() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION factos_lock_events_for_writing() FROM PUBLIC;
