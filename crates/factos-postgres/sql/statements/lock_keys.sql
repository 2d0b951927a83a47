-- Takes advisory transaction keys $1 in order, shared where $2 is true.
SELECT {schema}.factos_lock_keys($1::bigint[], $2::boolean[])
