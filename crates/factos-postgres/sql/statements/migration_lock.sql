-- Serializes migrations of one schema (key $1) until the transaction ends.
SELECT pg_advisory_xact_lock($1)
