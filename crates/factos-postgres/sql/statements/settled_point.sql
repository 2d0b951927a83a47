-- A settled point for replica reads: the settled mark ($1: the schema's
-- writer class), then the primary's WAL insert position in bytes and its
-- timeline (the first 8 hex digits of the WAL file name). OFFSET 0 keeps the
-- mark a subquery evaluated first: the WAL position is taken after every
-- writer the mark waited for has finished, so their commit records lie
-- before it (see store/replica.rs).
SELECT m.mark,
       (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS wal_bytes,
       substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8) AS timeline
FROM (SELECT {schema}.factos_settled_mark($1::integer) AS mark OFFSET 0) m
