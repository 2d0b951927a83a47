-- Whether schema $1 has been migrated (has the migrations table).
SELECT to_regclass(format('%I.factos_schema_migrations', $1::text)) IS NOT NULL
