-- A scoped guard: the event table in ROW EXCLUSIVE mode, then the advisory
-- keys $1 in order (shared where $2 is false), in one call to the owner's
-- function (see DESIGN.md, locks in order).
SELECT {schema}.factos_lock_for_writing($1::bigint[], $2::boolean[])
