-- The highest applied migration.
SELECT max(version) FROM {schema}.factos_schema_migrations
