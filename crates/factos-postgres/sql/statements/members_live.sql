-- Which member slots of a partitioned subscriber are held (by a running
-- process): $1 and $2 are each slot's session advisory key split into its
-- high and low 32 bits (as pg_locks shows a bigint key); returns the slots'
-- 1-based ordinals, ascending.
SELECT k.slot
FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS k(high, low, slot)
WHERE EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = k.high AND l.objid::bigint = k.low)
ORDER BY k.slot
