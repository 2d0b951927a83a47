-- Whether a session of this database holds the advisory lock $1 (a
-- subscriber's active instance). pg_locks shows a bigint key as its high
-- (classid) and low (objid) 32 bits, with objsubid 1.
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((classid::bigint << 32) | objid::bigint) = $1
)
