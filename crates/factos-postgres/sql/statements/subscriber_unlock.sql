-- Gives subscriber key $1 up.
SELECT pg_advisory_unlock($1)
