-- Whether event `ev` belongs to partition {index} of {count} by the tags
-- starting with {prefix}: some such tag hashes to it (the first 32 bits of
-- the tag's MD5, as an unsigned number, modulo the count), or the event has
-- no such tag and the partition is the first. MD5 because it is the same on
-- every PostgreSQL version and platform: a partition's events never move to
-- another partition while its checkpoint stands.
coalesce(
    (SELECT bool_or(('x' || left(md5(t), 8))::bit(32)::bigint % {count}::integer = {index}::integer)
     FROM unnest(ev.tags) AS t
     WHERE starts_with(t, {prefix})),
    {index}::integer = 0)
