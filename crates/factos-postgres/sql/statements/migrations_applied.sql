-- The versions applied to the schema.
SELECT version FROM {schema}.factos_schema_migrations ORDER BY version
