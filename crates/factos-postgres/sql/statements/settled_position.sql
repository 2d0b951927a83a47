-- The highest position at or below which no transaction can still commit:
-- the last allocated position, once every writer that may hold one at or
-- below it has finished ($1: the schema's writer class; see migration 8 and
-- DESIGN.md, settled positions). Runs as its own transaction.
SELECT {schema}.factos_settled_mark($1::integer)
