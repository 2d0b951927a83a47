-- Connections to this database (every client, not only factos's).
SELECT count(*) AS connections FROM pg_stat_activity WHERE datname = current_database()
