-- Creates the schema (run only when schema_exists says it is missing).
CREATE SCHEMA IF NOT EXISTS {schema}
