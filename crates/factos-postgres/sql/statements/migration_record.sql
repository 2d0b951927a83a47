-- Records migration $1 (name $2) as applied, with its text $3's checksum.
INSERT INTO {schema}.factos_schema_migrations (version, name, checksum)
VALUES ($1, $2, encode(sha256(convert_to($3::text, 'UTF8')), 'hex'))
