-- Whether schema $1 exists (checked first: CREATE SCHEMA IF NOT EXISTS alone
-- needs CREATE on the database even when the schema exists).
SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)
