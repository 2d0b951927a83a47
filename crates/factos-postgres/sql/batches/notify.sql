-- Announces a commit to the schema's listeners (the payload is unused: a
-- listener reads from its checkpoint).
SELECT pg_notify('{channel}', '')
