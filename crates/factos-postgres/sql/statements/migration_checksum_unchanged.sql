-- Whether applied migration $1 was applied with text $2.
SELECT checksum = encode(sha256(convert_to($2::text, 'UTF8')), 'hex')
FROM {schema}.factos_schema_migrations
WHERE version = $1
