-- Events appended per bucket of $1 seconds over the last $2 seconds, among
-- the newest 1,000,000 positions (the event table has no index on the
-- time: the position bound keeps this from reading the whole log).
SELECT floor(extract(epoch FROM e.recorded_at) / $1::bigint)::bigint * $1::bigint AS bucket_start, count(*) AS events
FROM {schema}.factos_events e
WHERE e.position > (SELECT coalesce(max(position), 0) - 1000000 FROM {schema}.factos_events)
  AND e.recorded_at > now() - make_interval(secs => $2::bigint::double precision)
GROUP BY 1
ORDER BY 1
