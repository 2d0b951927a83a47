-- The migration bookkeeping, created before the first migration. Migrations
-- run with search_path set to the schema, then pg_temp (the SECURITY DEFINER
-- functions pin that path), and use unqualified names.
SET LOCAL search_path TO {schema}, pg_temp;
CREATE TABLE IF NOT EXISTS {schema}.factos_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {schema}.factos_schema_migrations ADD COLUMN IF NOT EXISTS checksum text
