-- How far a standby has replayed its primary's WAL, in bytes; NULL on a
-- server that is not in recovery.
SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed
