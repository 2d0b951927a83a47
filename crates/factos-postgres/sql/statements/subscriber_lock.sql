-- Tries subscriber key $1 as a session lock: one instance runs a subscriber.
SELECT pg_try_advisory_lock($1)
