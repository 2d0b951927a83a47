-- Records migration $1's checksum (SHA-256 of its text $2, in hex) when a
-- factos from before checksums applied it (trusted on first use).
UPDATE {schema}.factos_schema_migrations
SET checksum = encode(sha256(convert_to($2::text, 'UTF8')), 'hex')
WHERE version = $1 AND checksum IS NULL
