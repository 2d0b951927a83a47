-- The bigint advisory locks sessions of this database hold now (an active
-- subscriber holds its key). pg_locks shows a bigint key as its high
-- (classid) and low (objid) 32 bits, with objsubid 1.
SELECT (classid::bigint << 32) | objid::bigint
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
