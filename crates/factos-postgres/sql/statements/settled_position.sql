-- The highest position below which no transaction can still commit, up to
-- the head $1 read before (see DESIGN.md, settled positions).
SELECT {schema}.factos_settled_position($1::bigint)
